//! Bounce classes and the classifier that maps a remote reply (code, enhanced
//! status, text) to one of them. The same classifier serves asynchronous
//! bounces (a DSN's `Diagnostic-Code`) and synchronous failures (the `Reply`
//! a remote server gave during delivery).
//!
//! The decision, in order:
//! 1. a few provider replies whose wording misleads the rules below;
//! 2. the enhanced status when it is specific and not about the address
//!    (`5.2.2` full, `5.3.4` too large, `5.7.26` authentication, …);
//! 3. text about the *sender* or the message: blocklists, SPF/DKIM/DMARC,
//!    rate limits, relaying, spam and policy. These veto any hard class:
//!    a 5xx for a blocklisted IP says nothing about the address;
//! 4. the enhanced status when it is specific and about the address
//!    (`5.1.1` unknown user, `5.1.2` domain, `5.2.1` disabled);
//! 5. text about the address or the delivery (unknown user, full, disabled,
//!    domain not found, too large, temporary);
//! 6. what the status class alone says.
//!
//! A 4xx (or a `4.x.x` status) is never hard: an "unknown user" under 421 is
//! a temporary failure. Matching is on ASCII-lowercased substrings, no
//! regular expressions; nothing here does I/O.

use crate::reply::{Reply, Status};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a failed delivery says about the recipient, the sender or the
/// message. `as_str()` gives the snake_case name used in JSON and events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BounceClass {
    /// The mailbox does not exist at the destination.
    UnknownUser,
    /// The mailbox exists but is over quota.
    MailboxFull,
    /// The mailbox exists but is disabled, suspended or closed.
    MailboxDisabled,
    /// The recipient's domain does not exist or accepts no mail.
    DomainNotFound,
    /// Refused for its content or by the receiver's policy (spam, reputation).
    SpamBlock,
    /// The sending IP or domain is on a blocklist.
    BlocklistedSender,
    /// SPF, DKIM, DMARC or reverse-DNS checks failed.
    AuthFailure,
    /// The message is larger than the receiver accepts.
    MessageTooLarge,
    /// The receiver throttles the sender: too many messages or connections.
    RateLimited,
    /// The receiver does not relay for this domain.
    RelayDenied,
    /// A transient condition: timeouts, greylisting, expired retries.
    TemporaryFailure,
    /// Anything else.
    Other,
}

impl BounceClass {
    /// Every class, in documentation order.
    pub const ALL: [BounceClass; 12] = [
        BounceClass::UnknownUser,
        BounceClass::MailboxFull,
        BounceClass::MailboxDisabled,
        BounceClass::DomainNotFound,
        BounceClass::SpamBlock,
        BounceClass::BlocklistedSender,
        BounceClass::AuthFailure,
        BounceClass::MessageTooLarge,
        BounceClass::RateLimited,
        BounceClass::RelayDenied,
        BounceClass::TemporaryFailure,
        BounceClass::Other,
    ];

    /// The snake_case name used in JSON, events and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            BounceClass::UnknownUser => "unknown_user",
            BounceClass::MailboxFull => "mailbox_full",
            BounceClass::MailboxDisabled => "mailbox_disabled",
            BounceClass::DomainNotFound => "domain_not_found",
            BounceClass::SpamBlock => "spam_block",
            BounceClass::BlocklistedSender => "blocklisted_sender",
            BounceClass::AuthFailure => "auth_failure",
            BounceClass::MessageTooLarge => "message_too_large",
            BounceClass::RateLimited => "rate_limited",
            BounceClass::RelayDenied => "relay_denied",
            BounceClass::TemporaryFailure => "temporary_failure",
            BounceClass::Other => "other",
        }
    }

    /// The address itself is bad for good: suppress it. Only unknown user,
    /// disabled mailbox and unknown domain are; spam, blocklist,
    /// authentication, rate and size failures are about the sender or the
    /// message and must never suppress the address.
    pub fn is_hard(self) -> bool {
        matches!(
            self,
            BounceClass::UnknownUser | BounceClass::MailboxDisabled | BounceClass::DomainNotFound
        )
    }

    /// One line for documentation and the CLI.
    pub fn description(self) -> &'static str {
        match self {
            BounceClass::UnknownUser => "the mailbox does not exist (hard: suppress the address)",
            BounceClass::MailboxFull => "the mailbox is over quota (soft)",
            BounceClass::MailboxDisabled => {
                "the mailbox is disabled, suspended or closed (hard: suppress the address)"
            }
            BounceClass::DomainNotFound => {
                "the recipient domain does not exist or takes no mail (hard: suppress the address)"
            }
            BounceClass::SpamBlock => {
                "refused as spam or by the receiver's policy (about the sender)"
            }
            BounceClass::BlocklistedSender => {
                "the sending IP or domain is on a blocklist (about the sender)"
            }
            BounceClass::AuthFailure => "SPF, DKIM, DMARC or reverse DNS failed (about the sender)",
            BounceClass::MessageTooLarge => "the message is larger than the receiver accepts",
            BounceClass::RateLimited => "the receiver throttles the sender; slow down",
            BounceClass::RelayDenied => "the receiver does not relay for this domain",
            BounceClass::TemporaryFailure => {
                "a transient failure: timeout, greylisting, expired retries"
            }
            BounceClass::Other => "not recognised",
        }
    }
}

impl fmt::Display for BounceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies a remote reply. `code` and `status` are what the reply or
/// the DSN gave; missing ones are looked for in `text` (which may start with
/// the code, as a `Diagnostic-Code` does). A generic status such as `5.0.0`
/// gives way to a specific one found in the text.
pub fn classify(code: Option<u16>, status: Option<Status>, text: &str) -> BounceClass {
    let lower = text.to_ascii_lowercase();
    let code = code
        .filter(|code| (200..600).contains(code))
        .or_else(|| find_code(&lower));
    let status = best_status(status, find_status(&lower));
    let temporary = code.is_some_and(|code| (400..500).contains(&code))
        || status.is_some_and(|status| status.0 == 4)
        || (code.is_none() && status.is_none() && contains_any(&lower, TEMPORARY_HINTS));
    let class = decide(&lower, status, temporary);
    // A 4xx is never hard: the address may well work tomorrow.
    if temporary && class.is_hard() {
        BounceClass::TemporaryFailure
    } else {
        class
    }
}

/// [`classify`] for a reply received during delivery.
pub fn classify_reply(reply: &Reply) -> BounceClass {
    classify(Some(reply.code), reply.status, &reply.text)
}

fn decide(lower: &str, status: Option<Status>, temporary: bool) -> BounceClass {
    if let Some(class) = first_match(lower, PROVIDER_RULES) {
        return class;
    }
    let specific = status.and_then(specific_status);
    if let Some(class) = specific.filter(|class| !class.is_hard()) {
        return class;
    }
    if let Some(class) = first_match(lower, SENDER_RULES) {
        return class;
    }
    if let Some(class) = specific {
        return class;
    }
    if let Some(class) = first_match(lower, ADDRESS_RULES) {
        return class;
    }
    match status {
        Some(Status(4, 7, 0)) => BounceClass::RateLimited,
        Some(Status(_, 4, 1 | 2 | 7)) => BounceClass::TemporaryFailure,
        Some(Status(5, 7, _)) => BounceClass::SpamBlock,
        _ if temporary => BounceClass::TemporaryFailure,
        _ => BounceClass::Other,
    }
}

/// Statuses that say what happened on their own (RFC 3463, RFC 7372 and the
/// large providers' own registrations).
fn specific_status(status: Status) -> Option<BounceClass> {
    let Status(class, subject, detail) = status;
    Some(match (subject, detail) {
        (1, 1 | 3 | 10) => BounceClass::UnknownUser,
        // The sender's address (bad syntax, bad system): about us, never hard.
        (1, 7 | 8) => BounceClass::SpamBlock,
        (1, 2) => BounceClass::DomainNotFound,
        (1, 6) | (2, 1) => BounceClass::MailboxDisabled,
        (2, 2) => BounceClass::MailboxFull,
        (2, 3) | (3, 4) => BounceClass::MessageTooLarge,
        (4, 4) => BounceClass::DomainNotFound,
        (5, 3) => BounceClass::RateLimited,
        // RFC 7372 (DKIM, SPF, reverse DNS, ARC), Gmail's 5.7.30/32/40,
        // Microsoft's 5.7.509 (DMARC) and 5.7.515 (authentication level).
        (7, 20..=27 | 29 | 30 | 32 | 40 | 509 | 515) => BounceClass::AuthFailure,
        (7, 28) if class == 4 => BounceClass::RateLimited,
        (7, 28) => BounceClass::SpamBlock,
        // Microsoft: 4.7.5xx-8xx "access denied, try again later", 4.7.650
        // "rate limited due to IP reputation".
        (7, 500..=899) if class == 4 => BounceClass::RateLimited,
        // Microsoft: banned sender, customer block list, banned sending IP.
        (7, 511 | 513 | 606..=708) => BounceClass::BlocklistedSender,
        _ => return None,
    })
}

/// Replies whose wording would mislead the generic rules.
const PROVIDER_RULES: &[(BounceClass, &[&str])] = &[(
    BounceClass::UnknownUser,
    // Exchange Online directory-based edge blocking: the recipient does
    // not exist, although the text says "access denied".
    &["as(201806281)"],
)];

/// About the sender, its IP, its domain or the message: never hard.
const SENDER_RULES: &[(BounceClass, &[&str])] = &[
    (
        BounceClass::BlocklistedSender,
        &[
            "spamhaus",
            "spamcop",
            "sorbs.net",
            "uceprotect",
            "barracudacentral",
            "barracuda reputation",
            "blacklist",
            "blocklist",
            "black list",
            "block list",
            "denylist",
            "deny list",
            "blocked using",
            "dnsbl",
            "abuseat.org",
            "listed at",
            "listed on",
            "ip is listed",
            "address is listed",
            "banned sending ip",
            "banned sender",
            "(s3150)",
            "(s3140)",
            "senderbase",
            "ipcheck.proofpoint",
            "blocked - see",
            "not authorized to send email directly",
            "mailspike",
            "psbl.",
        ],
    ),
    (
        BounceClass::AuthFailure,
        &[
            "spf",
            "dkim",
            "dmarc",
            "domainkeys",
            "sender policy framework",
            "unauthenticated mail",
            "unauthenticated email",
            "sender is unauthenticated",
            "authentication checks",
            "authentication requirements",
            "required authentication level",
            "reverse dns",
            "reverse hostname",
            "ptr record",
        ],
    ),
    (
        BounceClass::SpamBlock,
        // The sender address or domain was refused: our side, not theirs.
        &[
            "sender address rejected",
            "sender rejected",
            "sender domain",
            "sender verify failed",
            "sender verification",
        ],
    ),
    (
        BounceClass::RateLimited,
        &[
            "rate limit",
            "ratelimit",
            "rate-limit",
            "unusual rate",
            "too many messages",
            "too many emails",
            "too many mails",
            "too many connections",
            "too many concurrent",
            "too many recipients",
            "unexpected volume",
            "due to user complaints",
            "[ts01]",
            "[ts02]",
            "[ts03]",
            "[tss04]",
            "throttl",
            "receiving mail too quickly",
            "receiving mail at a rate",
            "sending rate",
            "message rate",
            "rate exceeded",
            "exceeded the rate",
            "sending quota",
            "max message per connection",
            "try again slower",
            "slow down",
            "trop de connexions",
        ],
    ),
    (
        BounceClass::RelayDenied,
        &[
            "relay access denied",
            "relaying denied",
            "relay denied",
            "unable to relay",
            "relay not permitted",
            "not permitted to relay",
            "relaying not allowed",
            "relay not allowed",
            "not allowed to relay",
            "relay prohibited",
            "we do not relay",
            "does not relay",
            "no relaying",
            "open relay",
            "client was not authenticated",
        ],
    ),
    (
        BounceClass::SpamBlock,
        &[
            "spam",
            "unsolicited",
            "bulk mail",
            "bulk email",
            "junk mail",
            "policy",
            "reputation",
            "content rejected",
            "message content",
            "content filter",
            "content restriction",
            "unacceptable content",
            "virus",
            "malware",
            "phish",
            "suspicious",
            "blocked",
            "administrative prohibition",
            "access denied",
            "rejected for policy",
            "high probability",
        ],
    ),
];

/// About the address or the delivery itself.
const ADDRESS_RULES: &[(BounceClass, &[&str])] = &[
    (
        BounceClass::MailboxFull,
        &[
            "mailbox full",
            "mailbox is full",
            "mailbox size limit",
            "inbox is full",
            "account is full",
            "mailfolder is full",
            "over quota",
            "overquota",
            "quota",
            "exceeded storage allocation",
            "out of storage",
            "storage space",
            "mailbox has exceeded",
            "mailbox exceeded",
            "storage full",
        ],
    ),
    (
        BounceClass::MessageTooLarge,
        &[
            "message too large",
            "message too big",
            "message is too large",
            "message is too big",
            "message size exceeds",
            "message exceeds",
            "size limit",
            "too large",
            "maximum message size",
            "exceeds the maximum size",
            "message length exceeds",
            "recipsizelimit",
        ],
    ),
    (
        BounceClass::MailboxDisabled,
        &[
            "disabled",
            "deactivated",
            "inactive",
            "account suspended",
            "account has been suspended",
            "mailbox suspended",
            "user suspended",
            "is suspended",
            "no longer valid",
            "no longer accepts mail",
            "no longer active",
            "account expired",
            "account has expired",
            "account closed",
            "account is locked",
            "mailbox is frozen",
            "is terminated",
            "has moved",
        ],
    ),
    (
        BounceClass::DomainNotFound,
        &[
            "host or domain name not found",
            "domain name not found",
            "domain not found",
            "no such domain",
            "domain does not exist",
            "domain doesn't exist",
            "domain name does not exist",
            "unrouteable address",
            "unroutable address",
            "couldn't find any host",
            "could not find any host",
            "nonexistentdomain",
            "nonexistent domain",
            "non-existent domain",
            "no mx record",
            "mx records point to non-existent",
            "all host address lookups failed",
            "unknown domain",
            "invalid domain",
            "name service error",
            "host not found",
            "nxdomain",
        ],
    ),
    (
        BounceClass::UnknownUser,
        &[
            "user unknown",
            "unknown user",
            "no such user",
            "no such recipient",
            "no such mailbox",
            "no such address",
            "no such person",
            "no mailbox",
            "does not exist",
            "doesn't exist",
            "not exist",
            "recipient not found",
            "user not found",
            "mailbox not found",
            "address not found",
            "invalid recipient",
            "invalid mailbox",
            "invalid address",
            "invalid user",
            "unknown recipient",
            "unknown address",
            "unknown mailbox",
            "unknown local part",
            "unknown or illegal alias",
            "recipientnotfound",
            "recipnotfound",
            "recipient unknown",
            "address unknown",
            "addressee unknown",
            "not a valid mailbox",
            "not a valid recipient",
            "not a valid user",
            "doesn't have a",
            "does not have a",
            "couldn't be found",
            "could not be found",
            "not listed in",
            "not our customer",
            "mailbox unavailable",
            "bad destination mailbox",
            "no account by that name",
            "nonexistent user",
            "non-existent user",
            "unrecognized recipient",
        ],
    ),
    (
        BounceClass::TemporaryFailure,
        &[
            "retry timeout exceeded",
            "expired",
            "timed out",
            "timeout",
            "connection refused",
            "connection reset",
            "lost connection",
            "could not connect",
            "unable to connect",
            "no route to host",
            "network is unreachable",
            "temporar",
            "try again",
            "try later",
            "deferred",
            "greylist",
            "graylist",
            "service unavailable",
            "insufficient system storage",
            "server busy",
            "system busy",
            "delayed",
        ],
    ),
];

/// With neither a code nor a status, these words mean the failure is
/// transient.
const TEMPORARY_HINTS: &[&str] = &[
    "temporar",
    "try again later",
    "will be retried",
    "will retry",
    "deferred",
];

fn first_match(lower: &str, rules: &[(BounceClass, &[&str])]) -> Option<BounceClass> {
    rules
        .iter()
        .find(|(_, patterns)| contains_any(lower, patterns))
        .map(|(class, _)| *class)
}

fn contains_any(lower: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|pattern| lower.contains(pattern))
}

/// The status to classify with: the given one, unless it is missing or
/// generic (`x.y.0`) and the text carries a more specific one of the same
/// class (DSNs often say `Status: 5.0.0` over `550 5.1.1 ...`).
pub(super) fn best_status(given: Option<Status>, found: Option<Status>) -> Option<Status> {
    match (given, found) {
        (None, found) => found,
        (Some(given), Some(found)) if given.2 == 0 && found.0 == given.0 && found.2 != 0 => {
            Some(found)
        }
        (given, _) => given,
    }
}

/// The first SMTP reply code in `text`: three digits starting with 2, 4 or
/// 5, standing alone (`550 `, `550-`, `#550`, `:550,`, `'550`). Digits that
/// are part of an IP address, a date or a longer number do not count.
pub(super) fn find_code(text: &str) -> Option<u16> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(2)).find_map(|at| {
        let digits = bytes.get(at..at + 3)?;
        if !matches!(digits.first(), Some(b'2' | b'4' | b'5'))
            || !digits.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let before_ok = at == 0
            || bytes
                .get(at - 1)
                .is_some_and(|b| b" \t([#:;='\"".contains(b));
        let after_ok = bytes
            .get(at + 3)
            .is_none_or(|b| b" \t-\r\n:,)'\"".contains(b));
        if !(before_ok && after_ok) {
            return None;
        }
        let code = digits
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
        Some(code)
    })
}

/// The first enhanced status code in `text` (`5.1.1`, `#5.1.1`,
/// `550-5.7.1`), not counting parts of IP addresses or version numbers.
pub(super) fn find_status(text: &str) -> Option<Status> {
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let Some(&first) = bytes.get(at) else { break };
        let starts = matches!(first, b'2' | b'4' | b'5')
            && bytes.get(at + 1) == Some(&b'.')
            && (at == 0
                || bytes
                    .get(at - 1)
                    .is_some_and(|b| !b.is_ascii_alphanumeric() && *b != b'.'));
        if starts {
            let end = status_end(bytes, at);
            if let Some(status) = end
                .and_then(|end| text.get(at..end))
                .and_then(Status::parse)
            {
                return Some(status);
            }
        }
        at += 1;
    }
    None
}

/// Where a candidate `d.ddd.ddd` starting at `at` ends, if it is one.
fn status_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut pos = at + 2;
    for part in 0..2 {
        let start = pos;
        while bytes.get(pos).is_some_and(u8::is_ascii_digit) && pos - start < 4 {
            pos += 1;
        }
        if pos == start {
            return None;
        }
        if part == 0 {
            if bytes.get(pos) != Some(&b'.') {
                return None;
            }
            pos += 1;
        }
    }
    // `4.16.55.1` or `5.1.1a`: not a status.
    let next = bytes.get(pos);
    if next.is_some_and(|b| b.is_ascii_alphanumeric())
        || (next == Some(&b'.') && bytes.get(pos + 1).is_some_and(u8::is_ascii_digit))
    {
        return None;
    }
    Some(pos)
}
