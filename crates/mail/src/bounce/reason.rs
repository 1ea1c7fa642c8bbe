//! Why a delivery failed, in the vocabulary of sisimai, the reference
//! library for reading bounces (its reason names, so that people who know
//! them, and tools built on them, read Carteiro's reports the same way).
//! Finer than [`BounceClass`], which decides suppression: a reason names
//! what happened (`expired`, `requireptr`, `securityerror`, ...), a class
//! what it means for the address.
//!
//! Decided from the class, the enhanced status, the action and the reply's
//! words, in that order of trust where they disagree. Pure; the rules are
//! our own, learned from sisimai's documentation and corpus.

use super::BounceClass;
use crate::reply::Status;
use serde::{Deserialize, Serialize};

/// A reason, named as sisimai names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    AuthFailure,
    BadReputation,
    Blocked,
    ContentError,
    Delivered,
    ExceedLimit,
    Expired,
    Filtered,
    HasMoved,
    HostUnknown,
    MailboxFull,
    MailerError,
    MesgTooBig,
    NetworkError,
    NoRelaying,
    NotAccept,
    PolicyViolation,
    RateLimited,
    Rejected,
    RequirePtr,
    SecurityError,
    SpamDetected,
    Suspend,
    SystemError,
    SystemFull,
    TooManyConn,
    Undefined,
    UserUnknown,
    VirusDetected,
}

impl Reason {
    /// sisimai's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::AuthFailure => "authfailure",
            Reason::BadReputation => "badreputation",
            Reason::Blocked => "blocked",
            Reason::ContentError => "contenterror",
            Reason::Delivered => "delivered",
            Reason::ExceedLimit => "exceedlimit",
            Reason::Expired => "expired",
            Reason::Filtered => "filtered",
            Reason::HasMoved => "hasmoved",
            Reason::HostUnknown => "hostunknown",
            Reason::MailboxFull => "mailboxfull",
            Reason::MailerError => "mailererror",
            Reason::MesgTooBig => "mesgtoobig",
            Reason::NetworkError => "networkerror",
            Reason::NoRelaying => "norelaying",
            Reason::NotAccept => "notaccept",
            Reason::PolicyViolation => "policyviolation",
            Reason::RateLimited => "ratelimited",
            Reason::Rejected => "rejected",
            Reason::RequirePtr => "requireptr",
            Reason::SecurityError => "securityerror",
            Reason::SpamDetected => "spamdetected",
            Reason::Suspend => "suspend",
            Reason::SystemError => "systemerror",
            Reason::SystemFull => "systemfull",
            Reason::TooManyConn => "toomanyconn",
            Reason::Undefined => "undefined",
            Reason::UserUnknown => "userunknown",
            Reason::VirusDetected => "virusdetected",
        }
    }
}

/// Words that name a reason outright, checked first (lowercase substrings).
const WORDS: &[(Reason, &[&str])] = &[
    (Reason::VirusDetected, &["virus", "malware", "infected"]),
    (
        Reason::RequirePtr,
        &["reverse dns", "ptr record", "reverse hostname", "no ptr"],
    ),
    (
        Reason::Expired,
        &[
            "retry timeout exceeded",
            "envelope expired",
            "delivery time expired",
            "message expired",
            "too long in queue",
            "could not be delivered for",
            "could not deliver for",
            "retry time not reached",
            "giving up",
            "failing for a long time",
            "will be retried",
            "did not accept our requests to connect",
        ],
    ),
    // Refused at MAIL FROM, or for the sender's address.
    (
        Reason::Rejected,
        &[
            "after mail from",
            "in reply to mail from",
            "sender address rejected",
            "unroutable sender",
            "sender rejected",
            "sender verify failed",
            "permission to post",
        ],
    ),
    (
        Reason::NetworkError,
        &[
            "hop count exceeded",
            "routing loop",
            "mail loop",
            "too many hops",
        ],
    ),
    (
        Reason::HostUnknown,
        &[
            "dns lookup failure",
            "no such domain",
            "domain not found",
            "unrouteable address",
        ],
    ),
    (
        Reason::SecurityError,
        &[
            "starttls",
            "tls required",
            "encryption required",
            "must issue a starttls",
        ],
    ),
    (
        Reason::TooManyConn,
        &[
            "too many connections",
            "too many concurrent",
            "connection limit",
        ],
    ),
    (
        Reason::HasMoved,
        &["has moved", "no longer at this address", "changed address"],
    ),
    (
        Reason::NotAccept,
        &[
            "does not accept mail",
            "accepts no mail",
            "null mx",
            "not accepting mail",
        ],
    ),
];

/// The reason of a recipient reported with `class`, `status`, `action` and
/// the remote reply `text`.
pub fn reason_of(class: BounceClass, status: Option<Status>, action: &str, text: &str) -> Reason {
    if action.eq_ignore_ascii_case("delivered") || action.eq_ignore_ascii_case("relayed") {
        return Reason::Delivered;
    }
    let lower = text.to_ascii_lowercase();
    let words = |among: &[Reason]| {
        WORDS
            .iter()
            .filter(|(reason, _)| among.contains(reason))
            .find(|(_, words)| words.iter().any(|w| lower.contains(w)))
            .map(|(reason, _)| *reason)
    };
    // Words that say more than any class: a virus, a missing PTR, TLS.
    if let Some(reason) = words(&[
        Reason::VirusDetected,
        Reason::RequirePtr,
        Reason::SecurityError,
        Reason::TooManyConn,
        Reason::HasMoved,
        Reason::NotAccept,
    ]) {
        return reason;
    }
    // A class about the address says what went wrong, however long it took.
    let about_address = matches!(
        class,
        BounceClass::UnknownUser
            | BounceClass::MailboxFull
            | BounceClass::DomainNotFound
            | BounceClass::MessageTooLarge
    );
    if !about_address
        && let Some(reason) = words(&[
            Reason::Expired,
            Reason::Rejected,
            Reason::NetworkError,
            Reason::HostUnknown,
        ])
    {
        return reason;
    }
    if let Some(reason) = status.and_then(by_status) {
        return reason;
    }
    match class {
        BounceClass::UnknownUser => Reason::UserUnknown,
        BounceClass::MailboxFull => Reason::MailboxFull,
        BounceClass::MailboxDisabled => Reason::Suspend,
        BounceClass::DomainNotFound => Reason::HostUnknown,
        BounceClass::MessageTooLarge => Reason::MesgTooBig,
        BounceClass::RelayDenied => Reason::NoRelaying,
        BounceClass::AuthFailure => Reason::AuthFailure,
        BounceClass::RateLimited => Reason::RateLimited,
        BounceClass::BlocklistedSender => Reason::Blocked,
        BounceClass::SpamBlock if lower.contains("spam") => Reason::SpamDetected,
        BounceClass::SpamBlock if lower.contains("reputation") => Reason::BadReputation,
        BounceClass::SpamBlock if lower.contains("sender") => Reason::Rejected,
        BounceClass::SpamBlock if lower.contains("polic") => Reason::PolicyViolation,
        BounceClass::SpamBlock => Reason::Blocked,
        BounceClass::TemporaryFailure if lower.contains("expired") => Reason::Expired,
        BounceClass::TemporaryFailure => match status {
            Some(Status(_, 4, _)) => Reason::NetworkError,
            _ => Reason::Undefined,
        },
        BounceClass::Other => Reason::Undefined,
    }
}

/// Statuses that name a reason on their own (RFC 3463).
fn by_status(status: Status) -> Option<Reason> {
    let Status(_, subject, detail) = status;
    Some(match (subject, detail) {
        (1, 1 | 3 | 10) => Reason::UserUnknown,
        (1, 2) => Reason::HostUnknown,
        (1, 6) => Reason::HasMoved,
        (1, 7 | 8) => Reason::Rejected,
        (2, 1) => Reason::Suspend,
        (2, 2) => Reason::MailboxFull,
        (2, 3) => Reason::ExceedLimit,
        (3, 1) => Reason::SystemFull,
        (3, 4) => Reason::MesgTooBig,
        (3, _) => Reason::SystemError,
        (4, 7) => Reason::Expired,
        (4, 1..=4) => Reason::NetworkError,
        (5, 3) => Reason::RateLimited,
        (6, _) => Reason::ContentError,
        (7, 1) => return None,
        (7, 25) => Reason::RequirePtr,
        (7, 7 | 20..=27) => Reason::AuthFailure,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_words_then_status_then_class() {
        let reason = |class, status: &str, action, text| {
            reason_of(class, Status::parse(status), action, text).as_str()
        };
        use BounceClass::*;
        assert_eq!(reason(Other, "2.0.0", "delivered", ""), "delivered");
        assert_eq!(
            reason(SpamBlock, "5.7.1", "failed", "554 5.7.1 Virus found"),
            "virusdetected"
        );
        assert_eq!(
            reason(AuthFailure, "5.7.25", "failed", "550 5.7.25 no PTR record"),
            "requireptr"
        );
        // Words of a long delay give way to a class about the address.
        assert_eq!(
            reason(
                TemporaryFailure,
                "4.0.0",
                "delayed",
                "will be retried for 2 days"
            ),
            "expired"
        );
        assert_eq!(
            reason(UnknownUser, "5.1.1", "failed", "user unknown; giving up"),
            "userunknown"
        );
        assert_eq!(
            reason(Other, "5.2.3", "failed", "too big for me"),
            "exceedlimit"
        );
        assert_eq!(
            reason(SpamBlock, "5.0.0", "failed", "550 Sender address rejected"),
            "rejected"
        );
        assert_eq!(reason(MailboxDisabled, "5.0.0", "failed", ""), "suspend");
        assert_eq!(reason(Other, "5.0.0", "failed", "?"), "undefined");
    }
}
