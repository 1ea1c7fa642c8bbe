//! The sending policy shared by SMTP and the HTTP API, applied once per
//! message before it is spooled: the `From:` domain must be a sending
//! domain of the account (unless the account is exempt), a missing
//! `Message-ID:` or `Date:` is added, tracked mail gets its pixel and
//! tracked links, and the message is DKIM-signed with every key of its
//! domain. Nothing is changed after signing.

use crate::tracking::TrackingPlan;
use bytes::Bytes;
use carteiro_config::Config;
use carteiro_mail::dkim::{DkimAlgorithm, DomainSigner, SigningKeySpec};
use carteiro_mail::headers::{self, HeaderSummary};
use carteiro_mail::{MessageId, Reply, Status};
use carteiro_smtp_server::AccountRef;
use carteiro_store::{KeyState, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::watch;

/// How often a running server looks for changed domains and keys (added
/// with the CLI beside it).
const REFRESH_INTERVAL: Duration = Duration::from_secs(2);
const MISS_RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// The header naming Carteiro's message id in every message it sends.
pub const REFERENCE_HEADER: &str = "X-Carteiro-Id";

/// A sending domain, ready to sign.
pub struct SigningDomain {
    pub account_id: i64,
    pub signer: DomainSigner,
}

/// Every sending domain with its loaded keys, reloaded when the store's
/// generation changes.
pub struct Signers {
    domains: RwLock<Arc<HashMap<String, Arc<SigningDomain>>>>,
    /// When a look-up miss last caused a reload (at most one a second, so
    /// mail from unknown domains cannot keep the store busy).
    last_miss_reload: Mutex<Option<Instant>>,
}

impl Signers {
    pub async fn load(store: &Store) -> Result<Arc<Signers>, StoreError> {
        let signers = Arc::new(Signers {
            domains: RwLock::new(Arc::new(HashMap::new())),
            last_miss_reload: Mutex::new(None),
        });
        signers.reload(store).await?;
        Ok(signers)
    }

    async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let mut map = HashMap::new();
        for mut domain in store.list_domains(None).await? {
            // Only active keys sign: pending ones wait for their DNS records,
            // retired ones were replaced.
            domain.keys.retain(|key| key.state == KeyState::Active);
            let algorithms: Vec<DkimAlgorithm> = match domain
                .keys
                .iter()
                .map(|key| key.algorithm.as_str().parse())
                .collect::<Result<_, _>>()
            {
                Ok(algorithms) => algorithms,
                Err(err) => {
                    tracing::error!(domain = %domain.name, error = %err, "unknown DKIM algorithm; the domain will not sign");
                    continue;
                }
            };
            let specs: Vec<SigningKeySpec<'_>> = domain
                .keys
                .iter()
                .zip(&algorithms)
                .map(|(key, &algorithm)| SigningKeySpec {
                    selector: &key.selector,
                    algorithm,
                    private_key: &key.private_key,
                })
                .collect();
            match DomainSigner::new(&domain.name, &specs) {
                Ok(signer) => {
                    map.insert(
                        domain.name.clone(),
                        Arc::new(SigningDomain {
                            account_id: domain.account_id,
                            signer,
                        }),
                    );
                }
                Err(err) => {
                    tracing::error!(domain = %domain.name, error = %err, "cannot load DKIM keys; the domain will not sign");
                }
            }
        }
        let count = map.len();
        *self.domains.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
        tracing::debug!(domains = count, "sending domains loaded");
        Ok(())
    }

    /// Keeps the domains current until `stop` turns true.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        store: Store,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let signers = Arc::clone(self);
        tokio::spawn(async move {
            let mut seen = store.generation().await.ok();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(REFRESH_INTERVAL) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let now = match store.generation().await {
                    Ok(generation) => Some(generation),
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot check for changed domains");
                        continue;
                    }
                };
                if now != seen {
                    match signers.reload(&store).await {
                        Ok(()) => seen = now,
                        Err(err) => tracing::warn!(error = %err, "cannot reload domains"),
                    }
                }
            }
        })
    }

    /// Whether `domain` is a sending domain (of any account).
    pub fn contains(&self, domain: &str) -> bool {
        self.get(domain).is_some()
    }

    fn get(&self, domain: &str) -> Option<Arc<SigningDomain>> {
        let map = Arc::clone(&self.domains.read().unwrap_or_else(|e| e.into_inner()));
        map.get(domain).cloned()
    }

    /// Like `get`, but an unknown domain makes the store be read again (a
    /// domain added a moment ago works at once), at most once a second.
    async fn get_fresh(&self, store: &Store, domain: &str) -> Option<Arc<SigningDomain>> {
        if let Some(found) = self.get(domain) {
            return Some(found);
        }
        {
            let mut last = self
                .last_miss_reload
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < MISS_RELOAD_INTERVAL) {
                return None;
            }
            *last = Some(Instant::now());
        }
        if let Err(err) = self.reload(store).await {
            tracing::warn!(error = %err, "cannot reload domains");
        }
        self.get(domain)
    }
}

/// Why a message may not be sent as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoFrom,
    UnownedFrom { domain: String, account: String },
    Signing(String),
}

impl Refusal {
    pub fn smtp_reply(&self) -> Reply {
        match self {
            Refusal::NoFrom => Reply::new(
                550,
                Some(Status(5, 7, 1)),
                "message has no valid From: header; it is needed to choose the DKIM domain",
            ),
            Refusal::UnownedFrom { domain, account } => Reply::new(
                550,
                Some(Status(5, 7, 1)),
                format!(
                    "From: domain {domain} is not a sending domain of account {account}; \
                     add it with 'carteiro domain add {account} {domain}'"
                ),
            ),
            Refusal::Signing(_) => Reply::LOCAL_ERROR.with_text("cannot DKIM-sign the message"),
        }
    }

    /// The request field at fault, for the HTTP API.
    pub fn field(&self) -> &'static str {
        match self {
            Refusal::NoFrom | Refusal::UnownedFrom { .. } => "from",
            Refusal::Signing(_) => "",
        }
    }

    /// A message for the HTTP API.
    pub fn message(&self) -> String {
        match self {
            Refusal::NoFrom => "a From address is required".into(),
            Refusal::UnownedFrom { domain, account } => {
                format!("{domain} is not a sending domain of account {account}")
            }
            Refusal::Signing(err) => format!("cannot sign the message: {err}"),
        }
    }

    /// Whether the sender is at fault (4xx), not Carteiro (5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Refusal::Signing(_))
    }
}

/// A message ready for the spool.
pub struct Prepared {
    pub body: Bytes,
    /// Where `body`'s header section ends (just past its empty line), with
    /// the fields Carteiro added and the DKIM signature counted in.
    pub header_end: usize,
    /// The client's header section as read before anything was added.
    pub summary: HeaderSummary,
    /// The DKIM domain, when signed.
    pub signed_by: Option<String>,
}

pub struct SendingPolicy {
    config: Arc<Config>,
    signers: Arc<Signers>,
    store: Store,
}

impl SendingPolicy {
    pub fn new(config: Arc<Config>, signers: Arc<Signers>, store: Store) -> SendingPolicy {
        SendingPolicy {
            config,
            signers,
            store,
        }
    }

    pub fn hostname(&self) -> &str {
        &self.config.hostname
    }

    /// Whether the account's mail is bulk mail by default.
    pub fn is_bulk_account(&self, account: &str) -> bool {
        self.config.domains.is_bulk_account(account)
    }

    /// Whether messages' header sections are kept with their records
    /// (`store.keep_headers`).
    pub fn keeps_headers(&self) -> bool {
        self.config.store.keep_headers
    }

    /// Whether the account's HTML mail is open-tracked by default.
    pub fn tracks_opens(&self, account: &str) -> bool {
        self.config.tracking.tracks_opens(account)
    }

    /// Whether the account's HTML mail is click-tracked by default.
    pub fn tracks_clicks(&self, account: &str) -> bool {
        self.config.tracking.tracks_clicks(account)
    }

    /// `http.public_url`, the base of tracking and unsubscribe links.
    pub fn public_url(&self) -> &str {
        &self.config.http.public_url
    }

    /// The return-path (VERP) domain of sending domain `domain`.
    pub fn return_path_domain(&self, domain: &str) -> String {
        self.config.domains.return_path_domain(domain)
    }

    /// Applies the policy. `insert_at` is where the client's header section
    /// starts (after our own `Received:` field), where missing fields go.
    /// `unsubscribe` is the one-click token of bulk mail, `tracking` the
    /// tracking of this message's HTML.
    pub async fn prepare(
        &self,
        account: &AccountRef,
        id: MessageId,
        body: Bytes,
        insert_at: usize,
        unsubscribe: Option<&str>,
        tracking: Option<TrackingPlan>,
    ) -> Result<Prepared, Refusal> {
        let summary = headers::summarize(&body);
        let exempt = self.config.domains.allows_unowned_from(&account.name);
        let domain = match summary.from_domain.as_deref() {
            Some(from) if exempt => self.signers.get(from),
            Some(from) => self.signers.get_fresh(&self.store, from).await,
            None => None,
        }
        .filter(|d| d.account_id == account.id);
        if domain.is_none() && !exempt {
            return Err(match &summary.from_domain {
                None => Refusal::NoFrom,
                Some(from) => Refusal::UnownedFrom {
                    domain: from.clone(),
                    account: account.name.to_string(),
                },
            });
        }
        // Tracking rewrites the HTML before anything is added or signed;
        // like signing, it is CPU work kept off the async workers.
        let (body, summary) = match tracking {
            Some(plan) => {
                let original = body.clone();
                match tokio::task::spawn_blocking(move || plan.apply(&original)).await {
                    Ok(Some(tracked)) => {
                        let body = Bytes::from(tracked);
                        let summary = headers::summarize(&body);
                        (body, summary)
                    }
                    Ok(None) => (body, summary),
                    Err(err) => {
                        tracing::error!(message_id = %id, error = %err, "tracking failed; the message goes untracked");
                        (body, summary)
                    }
                }
            }
            None => (body, summary),
        };
        let missing = headers::missing_headers(
            &summary,
            &id.to_string(),
            &self.config.hostname,
            OffsetDateTime::now_utc(),
        );
        // Our reference to the message, so that a complaint about it (whose
        // report carries the original's headers) maps back to it.
        let reference = format!("{REFERENCE_HEADER}: {id}\r\n");
        // One-click unsubscribe (RFC 8058), before signing so the signature
        // covers it; a sender's own List-Unsubscribe is left as it is.
        let list_unsubscribe = match unsubscribe {
            Some(token) if !headers::has_field(&body, b"list-unsubscribe") => {
                let mailto_domain = domain.as_ref().map_or_else(
                    || self.config.hostname.clone(),
                    |d| self.config.domains.return_path_domain(d.signer.domain()),
                );
                format!(
                    "List-Unsubscribe: <{base}/u/{token}>,\r\n <mailto:u-{token}@{mailto_domain}>\r\n\
                     List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
                    base = self.config.http.public_url,
                )
            }
            _ => String::new(),
        };
        let added = [
            reference.as_bytes(),
            missing.as_bytes(),
            list_unsubscribe.as_bytes(),
        ];
        let header_end = summary.header_end + added.iter().map(|f| f.len()).sum::<usize>();
        let body = Bytes::from(headers::insert_at(
            &body,
            insert_at.min(summary.header_end),
            &added,
        ));
        debug_assert_eq!(header_end, headers::summarize(&body).header_end);
        let Some(domain) = domain else {
            return Ok(Prepared {
                body,
                header_end,
                summary,
                signed_by: None,
            });
        };
        // RSA signing costs about a millisecond: never on the async workers.
        let name = domain.signer.domain().to_string();
        let body_len = body.len();
        let signed = tokio::task::spawn_blocking(move || -> Result<Bytes, String> {
            let signatures = domain.signer.sign(&body).map_err(|e| e.to_string())?;
            let mut out = Vec::with_capacity(signatures.len() + body.len());
            out.extend_from_slice(&signatures);
            out.extend_from_slice(&body);
            Ok(Bytes::from(out))
        })
        .await
        .map_err(|e| Refusal::Signing(format!("signing task: {e}")))?
        .map_err(Refusal::Signing)?;
        let header_end = header_end + (signed.len() - body_len);
        debug_assert_eq!(header_end, headers::summarize(&signed).header_end);
        Ok(Prepared {
            header_end,
            body: signed,
            summary,
            signed_by: Some(name),
        })
    }
}

#[cfg(test)]
mod tests;
