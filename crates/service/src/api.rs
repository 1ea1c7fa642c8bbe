//! The HTTP API's way into the daemon: a message composed by the API goes
//! through the same intake as SMTP mail (sending policy, DKIM, spool,
//! record, queue), then the event writer is flushed so that a `GET` right
//! after the `202` finds the message. Unsubscribe links go to `inbound`,
//! opens and clicks to `tracking`.

use crate::inbound::Inbound;
use crate::intake::{Incoming, Intake, IntakeError};
use crate::tracking::Tracker;
use bytes::Bytes;
use carteiro_delivery::engine::QueueEntry;
use carteiro_http::{
    DomainCheck, QueuedMessage, QueuedRecipient, Submission, SubmitError, Submitter,
};
use carteiro_mail::MessageId;
use carteiro_mail::clock::now_millis;
use carteiro_mail::{BodyType, Envelope, Recipient};
use carteiro_spool::SpoolError;
use carteiro_store::MessageSource;
use std::sync::Arc;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

pub struct ApiSubmitter {
    /// What the dashboard's requests beyond sending need (sending domains,
    /// webhook test events): the configuration, the store, DNS.
    tools: Option<DaemonTools>,
    intake: Arc<Intake>,
    inbound: Arc<Inbound>,
    tracker: Arc<Tracker>,
    hostname: String,
    max_message_size: u64,
}

/// What the dashboard's domain pages need from the daemon.
struct DaemonTools {
    config: Arc<carteiro_config::Config>,
    store: carteiro_store::Store,
    resolver: carteiro_delivery::Resolver,
}

impl ApiSubmitter {
    /// Lets the dashboard add sending domains, check their DNS, and send
    /// webhook test events.
    pub fn with_domains(
        mut self,
        config: Arc<carteiro_config::Config>,
        store: carteiro_store::Store,
        resolver: carteiro_delivery::Resolver,
    ) -> ApiSubmitter {
        self.tools = Some(DaemonTools {
            config,
            store,
            resolver,
        });
        self
    }

    pub fn new(
        intake: Arc<Intake>,
        inbound: Arc<Inbound>,
        tracker: Arc<Tracker>,
        hostname: String,
        max_message_size: u64,
    ) -> ApiSubmitter {
        ApiSubmitter {
            tools: None,
            intake,
            inbound,
            tracker,
            hostname,
            max_message_size,
        }
    }
}

/// A domain change's answer: a user's mistake (a bad or taken name, a
/// rotation already waiting) refused naming `domain`, an unreachable store
/// unavailable, anything else internal.
fn store_answer(
    answer: Result<carteiro_store::Domain, carteiro_store::StoreError>,
) -> Result<carteiro_store::Domain, SubmitError> {
    use carteiro_store::StoreError;
    match answer {
        Ok(domain) => Ok(domain),
        Err(
            error @ (StoreError::InvalidDomain(_)
            | StoreError::DomainExists(_)
            | StoreError::InvalidDkimKey(_)),
        ) => Err(SubmitError::Refused {
            field: "domain".to_owned(),
            message: error.to_string(),
        }),
        Err(error) if error.is_transient() => Err(SubmitError::Unavailable(
            "the database is unreachable; try again later".to_owned(),
        )),
        Err(error) => Err(SubmitError::Internal(error.to_string())),
    }
}

/// The dashboard's view of a queue entry.
fn queued_view(entry: QueueEntry) -> QueuedMessage {
    QueuedMessage {
        id: entry.id.to_string(),
        account: entry.account,
        sender: entry.sender,
        size: entry.size,
        received_at_ms: entry.received_at,
        recipients: entry
            .recipients
            .into_iter()
            .map(|r| QueuedRecipient {
                address: r.address,
                state: r.state,
                attempts: r.attempts,
                next_attempt_ms: r.next_attempt,
                last_reply: r.last_reply,
                remote: r.remote,
            })
            .collect(),
    }
}

impl Submitter for ApiSubmitter {
    async fn send_test_webhook(
        &self,
        hook: &carteiro_store::Webhook,
        account: &str,
    ) -> Result<(), String> {
        let Some(tools) = &self.tools else {
            return Err("test events cannot be sent from here".to_owned());
        };
        crate::webhooks::send_test(&tools.config.webhooks, hook, account).await
    }

    fn domain_records(
        &self,
        domain: &carteiro_store::Domain,
    ) -> Vec<carteiro_mail::dns_records::DnsRecord> {
        let Some(tools) = &self.tools else {
            return Vec::new();
        };
        crate::domains::records(&tools.config, domain).unwrap_or_else(|error| {
            tracing::error!(%error, domain = %domain.name, "cannot make the domain's records");
            Vec::new()
        })
    }

    async fn check_domain(&self, domain: &carteiro_store::Domain) -> Option<DomainCheck> {
        let tools = self.tools.as_ref()?;
        match crate::domains::check_domain(&tools.config, &tools.store, &tools.resolver, domain)
            .await
        {
            Ok(report) => Some(DomainCheck {
                records: report.records,
                checklist: report.checklist,
            }),
            Err(error) => {
                tracing::warn!(%error, domain = %domain.name, "domain check failed");
                None
            }
        }
    }

    async fn rotate_domain_keys(&self, name: &str) -> Result<carteiro_store::Domain, SubmitError> {
        let Some(tools) = &self.tools else {
            return Err(SubmitError::Unavailable(
                "keys cannot be made here".to_owned(),
            ));
        };
        let keys = tokio::task::spawn_blocking(|| {
            crate::domains::rotation_keys(time::OffsetDateTime::now_utc())
        })
        .await
        .map_err(|e| SubmitError::Internal(e.to_string()))?
        .map_err(|e| SubmitError::Internal(e.to_string()))?;
        store_answer(tools.store.add_pending_keys(name, keys).await)
    }

    async fn add_domain(
        &self,
        account: &str,
        name: &str,
    ) -> Result<carteiro_store::Domain, SubmitError> {
        let Some(tools) = &self.tools else {
            return Err(SubmitError::Unavailable(
                "domains cannot be added here".to_owned(),
            ));
        };
        let keys = tokio::task::spawn_blocking(|| {
            crate::domains::new_keys(time::OffsetDateTime::now_utc())
        })
        .await
        .map_err(|e| SubmitError::Internal(e.to_string()))?
        .map_err(|e| SubmitError::Internal(e.to_string()))?;
        store_answer(tools.store.add_domain(account, name, keys).await)
    }

    async fn queued(&self) -> Vec<QueuedMessage> {
        self.intake
            .engine()
            .list()
            .await
            .into_iter()
            .map(queued_view)
            .collect()
    }

    async fn queued_message(&self, id: &str) -> Option<QueuedMessage> {
        let id = id.parse::<MessageId>().ok()?;
        self.intake.engine().show(id).await.map(queued_view)
    }

    async fn retry_queued(&self, id: &str) -> bool {
        match id.parse::<MessageId>() {
            Ok(id) => self.intake.engine().retry(Some(id)).await > 0,
            Err(_) => false,
        }
    }

    async fn delete_queued(&self, id: &str) -> bool {
        match id.parse::<MessageId>() {
            Ok(id) => self.intake.engine().delete(id).await.is_some(),
            Err(_) => false,
        }
    }

    async fn suppressions_changed(&self) {
        if let Err(err) = self.intake.suppressions().catch_up().await {
            tracing::warn!(error = %err, "cannot read suppression changes; the next poll will");
        }
    }

    async fn unsubscribe_target(&self, token: &str) -> Option<String> {
        self.inbound.unsubscribe_target(token).await
    }

    async fn unsubscribe(&self, token: &str) -> Result<Option<String>, SubmitError> {
        self.inbound
            .unsubscribe_token(token)
            .await
            .map_err(|_| SubmitError::Unavailable("the unsubscribe could not be stored now".into()))
    }

    async fn opened(&self, token: &str, user_agent: Option<&str>) {
        self.tracker.opened(token, user_agent).await;
    }

    async fn clicked(&self, token: &str, user_agent: Option<&str>) -> Option<String> {
        self.tracker.clicked(token, user_agent).await
    }

    fn click_target(&self, token: &str) -> Option<String> {
        self.tracker.click_target(token)
    }

    async fn submit(&self, submission: Submission) -> Result<Vec<String>, SubmitError> {
        if submission.message.len() as u64 > self.max_message_size {
            return Err(SubmitError::Refused {
                field: "attachments".into(),
                message: format!(
                    "the composed message is {} bytes, above the limit of {}",
                    submission.message.len(),
                    self.max_message_size
                ),
            });
        }
        let mut envelope = Envelope::new(submission.envelope_from.clone());
        envelope.recipients = submission
            .recipients
            .iter()
            .map(|r| Recipient::new(r.clone()))
            .collect();
        envelope.smtputf8 = submission.needs_smtputf8;
        envelope.body_type = if submission.message.is_ascii() {
            BodyType::SevenBit
        } else {
            BodyType::EightBitMime
        };
        // A trace field for mail that came over HTTP (RFC 5321 §4.4 allows
        // "by ... with" without "from" for other protocols).
        let date = OffsetDateTime::now_utc()
            .format(&Rfc2822)
            .unwrap_or_default();
        let received = format!(
            "Received: by {} (Carteiro) with HTTP\r\n\tid {};\r\n\t{date}\r\n",
            self.hostname, submission.id
        );
        let mut body = Vec::with_capacity(received.len() + submission.message.len());
        body.extend_from_slice(received.as_bytes());
        body.extend_from_slice(&submission.message);
        let incoming = Incoming {
            id: submission.id,
            account: submission.account,
            envelope,
            body: Bytes::from(body),
            insert_at: received.len(),
            source: MessageSource::Api,
            tags: submission.tags,
            metadata: submission.metadata,
            received_at_ms: now_millis(),
            client: None,
            list_unsubscribe: submission.list_unsubscribe,
            track_opens: submission.track_opens,
            track_clicks: submission.track_clicks,
        };
        match self.intake.accept(incoming).await {
            Ok(ids) => {
                self.intake.events().flush().await;
                // Bulk and tracked mail became one message per recipient.
                Ok(ids.iter().map(|id| format!("{id}-0")).collect())
            }
            Err(IntakeError::Refused(refusal)) if refusal.is_client_error() => {
                Err(SubmitError::Refused {
                    field: refusal.field().into(),
                    message: refusal.message(),
                })
            }
            Err(IntakeError::Refused(refusal)) => Err(SubmitError::Internal(refusal.message())),
            Err(IntakeError::Spool(SpoolError::Full(text))) => Err(SubmitError::Unavailable(
                format!("the spool is full, try again later ({text})"),
            )),
            Err(IntakeError::Spool(err)) => {
                tracing::error!(error = %err, "spool write failed, API message refused");
                Err(SubmitError::Unavailable(
                    "cannot store the message now, try again later".into(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;
