//! The daemon's answer to the SMTP server's questions: logins are checked
//! against the store (with a short-lived cache, since argon2 costs tens of
//! milliseconds), and a finished message is written to the spool and queued
//! before the client hears 250.

use crate::inbound::Inbound;
use crate::intake::{Incoming, Intake, IntakeError};
use carteiro_mail::clock::now_millis;
use carteiro_mail::{LogSafe, Reply};
use carteiro_smtp_server::{AccountRef, AuthOutcome, Handler, IncomingMessage};
use carteiro_spool::SpoolError;
use carteiro_store::{MessageSource, SmtpClientDetails, Store};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// How long a verified login is remembered (a removed credential stops
/// working after at most this long).
const AUTH_CACHE_TTL: Duration = Duration::from_secs(60);
const AUTH_CACHE_MAX: usize = 10_000;

pub struct SmtpHandler {
    store: Store,
    intake: Arc<Intake>,
    inbound: Arc<Inbound>,
    default_account: AccountRef,
    auth_cache: AuthCache,
}

impl SmtpHandler {
    pub fn new(
        store: Store,
        intake: Arc<Intake>,
        inbound: Arc<Inbound>,
        default_account: AccountRef,
    ) -> SmtpHandler {
        SmtpHandler {
            store,
            intake,
            inbound,
            default_account,
            auth_cache: AuthCache::new(),
        }
    }
}

impl Handler for SmtpHandler {
    async fn authenticate(&self, username: &str, password: &str) -> AuthOutcome {
        if let Some(account) = self.auth_cache.get(username, password) {
            return AuthOutcome::Accepted(account);
        }
        match self.store.verify_credential(username, password).await {
            Ok(Some(account)) => {
                let account = AccountRef {
                    id: account.id,
                    name: account.name.into(),
                };
                self.auth_cache.put(username, password, account.clone());
                AuthOutcome::Accepted(account)
            }
            Ok(None) => AuthOutcome::Rejected,
            Err(err) => {
                tracing::error!(error = %err, "credential check failed");
                AuthOutcome::Unavailable
            }
        }
    }

    fn default_account(&self) -> Option<AccountRef> {
        Some(self.default_account.clone())
    }

    fn local_recipient(&self, address: &str) -> Option<Result<(), Reply>> {
        self.inbound.local_recipient(address)
    }

    async fn accept_message(&self, mut message: IncomingMessage) -> Result<(), Reply> {
        // Our own addresses (bounces, complaints, unsubscribes) are processed
        // here and never relayed; the rest goes out as usual.
        // Nearly all mail has none: the envelope is only taken apart when
        // it does.
        let is_local =
            |address: &str| matches!(self.inbound.local_recipient(address), Some(Ok(())));
        if message
            .envelope
            .recipients
            .iter()
            .any(|r| is_local(&r.address))
        {
            let (local, remote): (Vec<_>, Vec<_>) =
                std::mem::take(&mut message.envelope.recipients)
                    .into_iter()
                    .partition(|r| is_local(&r.address));
            let addresses: Vec<String> = local.into_iter().map(|r| r.address).collect();
            self.inbound.process(&addresses, &message.body).await;
            if remote.is_empty() {
                return Ok(());
            }
            message.envelope.recipients = remote;
        }
        let received_at_ms = message
            .received_at
            .duration_since(UNIX_EPOCH)
            .map_or_else(|_| now_millis(), |d| d.as_millis() as u64);
        let incoming = Incoming {
            id: message.id,
            account: message.account,
            envelope: message.envelope,
            body: message.body,
            insert_at: message.trace_len,
            source: MessageSource::Smtp,
            tags: Vec::new(),
            metadata: serde_json::Value::Null,
            received_at_ms,
            client: Some(SmtpClientDetails {
                client_ip: message.client_ip.to_string(),
                helo: message.helo,
                tls: message.tls,
                auth_user: message.auth_user,
                listener: message.role.name().to_owned(),
            }),
            list_unsubscribe: None,
            track_opens: None,
            track_clicks: None,
        };
        match self.intake.accept(incoming).await {
            Ok(_) => Ok(()),
            Err(IntakeError::Refused(refusal)) => {
                tracing::info!(message_id = %message.id, reason = %LogSafe(&refusal.message()), "message refused");
                Err(refusal.smtp_reply())
            }
            Err(IntakeError::Spool(err)) => {
                match &err {
                    SpoolError::Full(_) if self.intake.disk_full() => {
                        tracing::debug!(error = %err, "spool full, message refused")
                    }
                    SpoolError::Full(_) => {
                        tracing::warn!(error = %err, "spool full, message refused")
                    }
                    _ => tracing::error!(error = %err, "spool write failed, message refused"),
                }
                Err(Reply::SPOOL_ERROR)
            }
        }
    }
}

/// Remembers successful logins by username and a keyed hash of the
/// password (never the password itself).
struct AuthCache {
    keys: (RandomState, RandomState),
    entries: Mutex<HashMap<String, (u128, AccountRef, Instant)>>,
}

impl AuthCache {
    fn new() -> AuthCache {
        AuthCache {
            keys: (RandomState::new(), RandomState::new()),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn fingerprint(&self, password: &str) -> u128 {
        let a = self.keys.0.hash_one(password) as u128;
        let b = self.keys.1.hash_one(password) as u128;
        (a << 64) | b
    }

    fn get(&self, username: &str, password: &str) -> Option<AccountRef> {
        let key = username.to_lowercase();
        let fingerprint = self.fingerprint(password);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&key) {
            Some((stored, account, at))
                if *stored == fingerprint && at.elapsed() < AUTH_CACHE_TTL =>
            {
                Some(account.clone())
            }
            _ => None,
        }
    }

    fn put(&self, username: &str, password: &str, account: AccountRef) {
        let fingerprint = self.fingerprint(password);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= AUTH_CACHE_MAX {
            entries.retain(|_, (_, _, at)| at.elapsed() < AUTH_CACHE_TTL);
            if entries.len() >= AUTH_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(
            username.to_lowercase(),
            (fingerprint, account, Instant::now()),
        );
    }
}

#[cfg(test)]
mod tests;
