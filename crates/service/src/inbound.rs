//! Mail Carteiro receives for itself on the relay listener, from anyone:
//! bounces to a VERP return path (`b-TOKEN@bounces.shop.example`), feedback
//! loop complaints (ARF, to `complaints@<hostname>` or a VERP address) and
//! mailto unsubscribes (`u-TOKEN@…`). Each becomes events and, where the
//! address itself is at fault, a suppression entry. Nothing here is ever
//! relayed: these messages are processed and dropped.

use crate::outcome::Recorder;
use crate::sending::Signers;
use carteiro_config::Config;
use carteiro_mail::bounce::{ParsedReport, ReportKind, parse_report};
use carteiro_mail::clock::Clock;
use carteiro_mail::verp::{Purpose, TokenKey};
use carteiro_mail::{LogSafe, MessageId, Reply, split_address};
use carteiro_store::{
    BounceReportDetails, ComplaintDetails, EventDetails, EventKind, NewEvent, Store, StoreError,
    UnsubscribeDetails,
};
use std::sync::Arc;

/// The local part that takes feedback-loop (ARF) reports.
pub const COMPLAINTS_LOCAL_PART: &str = "complaints";

/// What a local address is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Local {
    Bounce(MessageId, u16),
    Unsubscribe(MessageId, u16),
    Complaints,
}

pub struct Inbound {
    config: Arc<Config>,
    tokens: Arc<TokenKey>,
    signers: Arc<Signers>,
    store: Store,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
}

impl Inbound {
    pub fn new(
        config: Arc<Config>,
        tokens: Arc<TokenKey>,
        signers: Arc<Signers>,
        store: Store,
        recorder: Recorder,
        clock: Arc<dyn Clock>,
    ) -> Inbound {
        Inbound {
            config,
            tokens,
            signers,
            store,
            recorder,
            clock,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_millis() as i64
    }

    /// Whether `domain` is one of ours: the host name, `smtp.local_domains`,
    /// or the return-path domain of a sending domain.
    /// Asked for every recipient of every message (at RCPT and again at
    /// the end of data), so it allocates only for a domain that starts
    /// with the return-path label.
    fn is_our_domain(&self, domain: &str) -> bool {
        if self.config.is_local_domain(domain) {
            return true;
        }
        let label = self.config.domains.return_path_label.as_bytes();
        let bytes = domain.as_bytes();
        bytes.len() > label.len() + 1
            && bytes[..label.len()].eq_ignore_ascii_case(label)
            && bytes[label.len()] == b'.'
            && self
                .signers
                .contains(&domain[label.len() + 1..].to_ascii_lowercase())
    }

    fn classify(&self, address: &str) -> Option<Result<Local, ()>> {
        let (local, domain) = split_address(address)?;
        if !self.is_our_domain(domain) {
            return None;
        }
        if let Some((id, rcpt)) = self.tokens.decode_address(Purpose::Bounce, address) {
            return Some(Ok(Local::Bounce(id, rcpt)));
        }
        if let Some((id, rcpt)) = self.tokens.decode_address(Purpose::Unsubscribe, address) {
            return Some(Ok(Local::Unsubscribe(id, rcpt)));
        }
        if local.eq_ignore_ascii_case(COMPLAINTS_LOCAL_PART) {
            return Some(Ok(Local::Complaints));
        }
        Some(Err(()))
    }

    /// The SMTP server's question: is this one of our addresses?
    pub fn local_recipient(&self, address: &str) -> Option<Result<(), Reply>> {
        self.classify(address)
            .map(|found| found.map(|_| ()).map_err(|()| Reply::NO_SUCH_USER))
    }

    /// Processes a message received for our own addresses `recipients`.
    /// Problems with the content are logged, never refused: the sender of a
    /// bounce cannot do anything about them.
    pub async fn process(&self, recipients: &[String], body: &[u8]) {
        let report = parse_report(body);
        for address in recipients {
            match self.classify(address) {
                Some(Ok(Local::Bounce(id, rcpt))) => {
                    self.bounce(id, rcpt, report.as_ref()).await;
                }
                Some(Ok(Local::Unsubscribe(id, rcpt))) => {
                    // A failure is logged; the sender of a mailto hears 250
                    // either way (the message was taken).
                    let _ = self.unsubscribe(id, rcpt, "mailto").await;
                }
                Some(Ok(Local::Complaints)) => self.complaint(report.as_ref()).await,
                _ => {}
            }
        }
        self.recorder.events().flush().await;
    }

    /// The account and address of recipient `rcpt` of message `id`.
    async fn recipient(&self, id: MessageId, rcpt: u16) -> Option<(i64, String)> {
        match self.store.message_recipient(&id.to_string(), rcpt).await {
            Ok(found) => {
                if found.is_none() {
                    tracing::info!(message_id = %id, rcpt, "report for a message without a record");
                }
                found.map(|r| (r.account_id, r.address))
            }
            Err(err) => {
                tracing::error!(message_id = %id, error = %err, "cannot look the message up");
                None
            }
        }
    }

    async fn bounce(&self, id: MessageId, rcpt: u16, report: Option<&ParsedReport>) {
        let Some((account_id, address)) = self.recipient(id, rcpt).await else {
            return;
        };
        let Some(report) = report else {
            tracing::info!(message_id = %id, "message to a return path is not a bounce; ignored");
            return;
        };
        if report.kind == ReportKind::Complaint {
            self.complained(account_id, id, &address, report).await;
            return;
        }
        // The report's recipient for our address (a DSN may list several;
        // with VERP there is one per message, but be generous).
        let bounced = report
            .recipients
            .iter()
            .find(|r| r.recipient.eq_ignore_ascii_case(&address))
            .or_else(|| report.recipients.first());
        let Some(bounced) = bounced else {
            tracing::info!(message_id = %id, "bounce without a recipient; ignored");
            return;
        };
        if !bounced.action.eq_ignore_ascii_case("failed") {
            tracing::info!(message_id = %id, action = %LogSafe(&bounced.action), "delay or success report; no event");
            return;
        }
        let class = bounced.class;
        tracing::info!(message_id = %id, recipient = %LogSafe(&address), class = class.as_str(), "bounce received");
        self.recorder
            .record_and_suppress(NewEvent {
                account_id,
                message_id: id.to_string(),
                recipient: Some(address),
                kind: EventKind::Bounced,
                timestamp_ms: self.now(),
                details: EventDetails::BounceReport(BounceReportDetails {
                    is_async: true,
                    class,
                    reason: Some(bounced.reason),
                    status: bounced.status.map(|s| s.to_string()),
                    reply: bounced.diagnostic.clone(),
                    remote_host: bounced.remote_mta.clone(),
                    reporting_mta: report.reporting_mta.clone(),
                }),
            })
            .await
            .ok();
    }

    async fn complaint(&self, report: Option<&ParsedReport>) {
        let Some(report) = report.filter(|r| r.kind == ReportKind::Complaint) else {
            tracing::info!("message to the complaints address is not an ARF report; ignored");
            return;
        };
        // The original's return path names message and recipient; failing
        // that, our reference header and the reported recipient.
        // The original's Return-Path, else the report's Original-Mail-From.
        let by_return_path = [
            report.original_return_path.as_deref(),
            report
                .complaint
                .as_ref()
                .and_then(|c| c.original_mail_from.as_deref()),
        ]
        .into_iter()
        .flatten()
        .map(|p| p.trim().trim_matches(|c| c == '<' || c == '>'))
        .find_map(|p| self.tokens.decode_address(Purpose::Bounce, p));
        let found = match by_return_path {
            Some((id, rcpt)) => self
                .recipient(id, rcpt)
                .await
                .map(|(account, address)| (account, id, address)),
            None => self.by_reference(report).await,
        };
        let Some((account_id, id, address)) = found else {
            tracing::info!("complaint for a message Carteiro cannot identify; ignored");
            return;
        };
        self.complained(account_id, id, &address, report).await;
    }

    /// Finds a complaint's message through `X-Carteiro-Id`, and its
    /// recipient through the report's `Original-Rcpt-To`, or the message's
    /// only recipient. With several recipients and no named one the report
    /// is ambiguous (the original's `To` may list them all): nobody is
    /// blamed rather than the wrong address.
    async fn by_reference(&self, report: &ParsedReport) -> Option<(i64, MessageId, String)> {
        let id: MessageId = report
            .original_carteiro_id
            .as_deref()?
            .trim()
            .parse()
            .ok()?;
        let (account_id, recipients) = self
            .store
            .message_recipients(&id.to_string())
            .await
            .ok()??;
        let named = report
            .complaint
            .as_ref()
            .and_then(|c| c.original_rcpt_to.as_deref())
            .map(|r| r.trim().trim_matches(|c| c == '<' || c == '>'))
            .filter(|r| r.contains('@'));
        let address = match (named, recipients.as_slice()) {
            (Some(named), _) => recipients
                .iter()
                .find(|r| r.eq_ignore_ascii_case(named))
                .cloned(),
            (None, [only]) => Some(only.clone()),
            (None, _) => {
                tracing::info!(message_id = %id, "complaint names no recipient of a message with several; ignored");
                None
            }
        }?;
        Some((account_id, id, address))
    }

    async fn complained(
        &self,
        account_id: i64,
        id: MessageId,
        address: &str,
        report: &ParsedReport,
    ) {
        let complaint = report.complaint.as_ref();
        tracing::info!(message_id = %id, recipient = %LogSafe(address), "complaint received");
        self.recorder
            .record_and_suppress(NewEvent {
                account_id,
                message_id: id.to_string(),
                recipient: Some(address.to_string()),
                kind: EventKind::Complained,
                timestamp_ms: self.now(),
                details: EventDetails::Complaint(ComplaintDetails {
                    feedback_type: complaint.map(|c| c.feedback_type.clone()),
                    user_agent: complaint.and_then(|c| c.user_agent.clone()),
                    reporting_mta: report.reporting_mta.clone(),
                }),
            })
            .await
            .ok();
    }

    /// Unsubscribes recipient `rcpt` of message `id` (one-click POST or a
    /// mailto). Returns the address when the token named a real recipient,
    /// once its suppression is stored; an error when it could not be.
    pub async fn unsubscribe(
        &self,
        id: MessageId,
        rcpt: u16,
        how: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some((account_id, address)) = self.recipient(id, rcpt).await else {
            return Ok(None);
        };
        tracing::info!(message_id = %id, recipient = %LogSafe(&address), how, "unsubscribed");
        self.recorder
            .record_and_suppress(NewEvent {
                account_id,
                message_id: id.to_string(),
                recipient: Some(address.clone()),
                kind: EventKind::Unsubscribed,
                timestamp_ms: self.now(),
                details: EventDetails::Unsubscribe(UnsubscribeDetails {
                    method: how.to_owned(),
                }),
            })
            .await?;
        self.recorder.events().flush().await;
        Ok(Some(address))
    }

    /// The address a one-click unsubscribe token (from the URL in
    /// `List-Unsubscribe`) stands for; `None` for a forged or unknown one.
    pub async fn unsubscribe_target(&self, token: &str) -> Option<String> {
        let (id, rcpt) = self.tokens.decode(Purpose::Unsubscribe, token)?;
        self.recipient(id, rcpt).await.map(|(_, address)| address)
    }

    /// Unsubscribes the recipient a one-click token stands for.
    pub async fn unsubscribe_token(&self, token: &str) -> Result<Option<String>, StoreError> {
        let Some((id, rcpt)) = self.tokens.decode(Purpose::Unsubscribe, token) else {
            return Ok(None);
        };
        self.unsubscribe(id, rcpt, "one-click").await
    }
}

#[cfg(test)]
mod tests;
