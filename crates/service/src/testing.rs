//! The fixture the unit tests of the mail path start from: a store and a
//! spool in a temporary directory, a validated configuration, the event
//! writer, the token key and the suppression lists, with account `shop`
//! owning sending domain `shop.test` (RSA and Ed25519 keys, made the way
//! `carteiro domain add` makes them). The parts under test are built from
//! it the way `carteiro serve` wires them.
//!
//! Delivery goes through the real engine to a smarthost route on loopback:
//! a recording sink when a test wants to see what leaves, otherwise a port
//! nobody listens on, so messages stay queued (deferred) where a test can
//! look at them. Nothing here runs an external process.

use crate::outcome::{Recorder, StoreEvents};
use crate::{Inbound, Incoming, Intake, SendingPolicy, Signers, Suppressions};
use bytes::Bytes;
use carteiro_config::Config;
use carteiro_delivery::Resolver;
use carteiro_delivery::engine::EngineHandle;
use carteiro_mail::clock::{Clock, ManualClock, now_millis};
use carteiro_mail::dkim::{DkimAlgorithm, GeneratedKey, generate_key};
use carteiro_mail::verp::TokenKey;
use carteiro_mail::{Envelope, MessageId, Recipient};
use carteiro_smtp_server::AccountRef;
use carteiro_spool::{Spool, SpoolOptions};
use carteiro_store::{
    Domain, EventKind, EventRecord, EventWriter, MessageRecord, MessageSource, NewDkimKey,
    NewMessage, Store,
};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tempfile::TempDir;

/// The recipients of a message record with their states, in order.
pub fn states(record: &MessageRecord) -> Vec<(&str, &str)> {
    record
        .recipients
        .iter()
        .map(|r| (r.address.as_str(), r.state.as_str()))
        .collect()
}

/// `hostname`: a domain Carteiro receives complaints for.
pub const HOSTNAME: &str = "mx.carteiro.test";
/// `http.public_url`.
pub const PUBLIC_URL: &str = "https://mail.carteiro.test";
/// The sending domain of account `shop`.
pub const SHOP_DOMAIN: &str = "shop.test";
/// Its return-path (VERP) domain.
pub const SHOP_BOUNCES: &str = "bounces.shop.test";
/// An account whose mail is bulk mail by default (`domains.bulk_accounts`).
pub const NEWS_ACCOUNT: &str = "news";
/// How long a test waits for something another task does.
pub const WAIT: Duration = Duration::from_secs(10);

/// What a test wants different from the usual fixture.
#[derive(Default)]
pub struct Options {
    /// Where the `*` route relays to; `None`: a closed loopback port.
    pub relay: Option<SocketAddr>,
    /// `spool.max_size` in bytes; 0 for no limit.
    pub spool_max_size: u64,
}

pub struct Fixture {
    pub config: Arc<Config>,
    pub store: Store,
    pub events: EventWriter,
    pub spool: Spool,
    pub tokens: Arc<TokenKey>,
    pub suppressions: Arc<Suppressions>,
    pub recorder: Recorder,
    /// What the inbound and tracking parts are told the time is: now
    /// when the fixture was made, until a test moves it. (Messages the
    /// engine queues carry the real time: it expires old ones.)
    pub clock: Arc<ManualClock>,
    /// Owns `shop.test`.
    pub shop: AccountRef,
    /// Bulk by default; owns no domain.
    pub news: AccountRef,
    /// `smtp.default_account`, exempt from the From-domain rule.
    pub default: AccountRef,
    /// Last: the directory goes after everything that uses it.
    _dir: TempDir,
}

/// One RSA and one Ed25519 key for every test of the binary: RSA
/// generation takes a good part of a second on a busy machine.
fn dkim_keys() -> &'static [GeneratedKey; 2] {
    static KEYS: OnceLock<[GeneratedKey; 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            generate_key(DkimAlgorithm::Rsa).expect("rsa key"),
            generate_key(DkimAlgorithm::Ed25519).expect("ed25519 key"),
        ]
    })
}

/// The keys of a new sending domain, as `carteiro domain add` stores them.
pub fn new_dkim_keys() -> Vec<NewDkimKey> {
    dkim_keys()
        .iter()
        .zip(["crt202611r", "crt202611e"])
        .map(|(key, selector)| NewDkimKey {
            selector: selector.to_owned(),
            algorithm: key.algorithm.as_str().parse().expect("algorithm"),
            private_key: key.private_key.clone(),
            public_key: key.public_key.clone(),
        })
        .collect()
}

/// A loopback port with nothing listening on it (connections are refused).
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

impl Fixture {
    /// The usual fixture: deliveries go to a closed port.
    pub async fn new() -> Fixture {
        Fixture::with(Options::default()).await
    }

    pub async fn with(options: Options) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let relay = options.relay.unwrap_or_else(closed_port);
        let text = format!(
            r#"
hostname = "{HOSTNAME}"
data_dir = "{data_dir}"

[smtp]
default_account = "default"

[http]
public_url = "{PUBLIC_URL}/"

[dns]
# Nothing is resolved: the only route relays to an IP address.
nameservers = ["127.0.0.1:9"]

[domains]
bulk_accounts = ["{NEWS_ACCOUNT}"]

[spool]
max_size = {max_size}

[webhooks]
# The tests' receivers listen on loopback.
allow_private_targets = true
timeout = "5s"

[delivery]
retry_initial = "1h"
retry_max = "4h"
connect_timeout = "5s"

[[delivery.routes]]
domains = ["*"]
relay = "{relay}"
tls = "none"
"#,
            data_dir = dir.path().display(),
            max_size = options.spool_max_size,
        );
        let config = Arc::new(Config::from_toml_str(&text, None).expect("config"));
        let store = Store::open(&dir.path().join("carteiro.db"))
            .await
            .expect("store");
        let account = |name: &'static str| {
            let store = store.clone();
            async move {
                let account = store.ensure_account(name).await.expect("account");
                AccountRef::new(account.id, account.name)
            }
        };
        let shop = account("shop").await;
        let news = account(NEWS_ACCOUNT).await;
        let default = account("default").await;
        store
            .add_domain("shop", SHOP_DOMAIN, new_dkim_keys())
            .await
            .expect("domain");
        let spool = Spool::open_with(
            &dir.path().join("spool"),
            SpoolOptions {
                segment_size: config.spool.segment_size,
                max_size: (config.spool.max_size > 0).then_some(config.spool.max_size),
                reserve: 0,
            },
            |_| {},
        )
        .expect("spool");
        let (events, _task) = EventWriter::start(store.clone());
        let tokens = Arc::new(TokenKey::new(&store.secret("tokens").await.expect("key")));
        let suppressions = Suppressions::load(store.clone())
            .await
            .expect("suppressions");
        let recorder = Recorder::new(events.clone(), Arc::clone(&suppressions));
        Fixture {
            config,
            store,
            events,
            spool,
            tokens,
            suppressions,
            recorder,
            clock: Arc::new(ManualClock::new(now_millis())),
            shop,
            news,
            default,
            _dir: dir,
        }
    }

    /// The sending domains as the server loads them at start.
    pub async fn signers(&self) -> Arc<Signers> {
        Signers::load(&self.store).await.expect("signers")
    }

    pub async fn policy(&self) -> SendingPolicy {
        SendingPolicy::new(
            Arc::clone(&self.config),
            self.signers().await,
            self.store.clone(),
        )
    }

    /// The delivery engine, its events going to the store like the server's.
    pub fn engine(&self) -> EngineHandle {
        let resolver = Resolver::new(&self.config.dns.nameservers).expect("resolver");
        let (engine, _task) = carteiro_delivery::engine::start(
            Arc::clone(&self.config),
            self.spool.clone(),
            resolver,
            Arc::new(StoreEvents::new(self.recorder.clone())),
            Arc::clone(&self.tokens),
            Vec::new(),
        );
        engine
    }

    /// The intake wired as `carteiro serve` wires it, and its engine.
    pub async fn intake(&self) -> (Arc<Intake>, EngineHandle) {
        let engine = self.engine();
        let intake = Intake::new(
            self.policy().await,
            Arc::clone(&self.tokens),
            Arc::clone(&self.suppressions),
            self.spool.clone(),
            engine.clone(),
            self.events.clone(),
        );
        (Arc::new(intake), engine)
    }

    pub async fn inbound(&self) -> Inbound {
        let clock: Arc<dyn Clock> = self.clock.clone();
        Inbound::new(
            Arc::clone(&self.config),
            Arc::clone(&self.tokens),
            self.signers().await,
            self.store.clone(),
            self.recorder.clone(),
            clock,
        )
    }

    /// Records a message of `account` to `recipients` (as the intake would
    /// have) and waits until it is committed.
    pub async fn record_message(&self, account: &AccountRef, recipients: &[&str]) -> MessageId {
        let id = MessageId::generate();
        self.events.message(NewMessage {
            id: id.to_string(),
            account_id: account.id,
            sender: format!("orders@{SHOP_DOMAIN}"),
            recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
            subject: Some("Your order".to_owned()),
            header_message_id: Some(format!("<{id}@{SHOP_DOMAIN}>")),
            tags: Vec::new(),
            sending_domain: Some(SHOP_DOMAIN.to_owned()),
            metadata: serde_json::Value::Null,
            source: MessageSource::Api,
            size: 100,
            received_at_ms: self.clock.now_millis() as i64,
            headers: None,
        });
        self.events.flush().await;
        id
    }

    /// The committed record of message `id` of `account` (after a flush).
    pub async fn message(&self, account: &AccountRef, id: MessageId) -> Option<MessageRecord> {
        self.events.flush().await;
        self.store
            .message(account.id, &id.to_string())
            .await
            .expect("message lookup")
    }

    /// Every committed event of `account` of one kind (after a flush).
    pub async fn events_of(&self, account: &AccountRef, kind: EventKind) -> Vec<EventRecord> {
        self.events.flush().await;
        self.store
            .events(account.id, None, &[kind], None, 1000)
            .await
            .expect("events")
    }

    /// The stored sending domain `shop.test`, with its public keys.
    pub async fn shop_domain(&self) -> Domain {
        self.store
            .domain(SHOP_DOMAIN)
            .await
            .expect("domain lookup")
            .expect("shop.test")
    }
}

/// Reports from the bounce corpus of `carteiro-mail` (real MTAs' output).
pub const POSTFIX_UNKNOWN_USER: &str =
    include_str!("../../mail/testdata/bounces/01-postfix-unknown-user.eml");
pub const POSTFIX_MAILBOX_FULL: &str =
    include_str!("../../mail/testdata/bounces/02-postfix-lmtp-mailbox-full.eml");
pub const POSTFIX_DELAYED: &str =
    include_str!("../../mail/testdata/bounces/05-postfix-delayed-greylisted.eml");
pub const ARF_AOL_ABUSE: &str = include_str!("../../mail/testdata/bounces/55-arf-aol-abuse.eml");

/// A corpus report, sent back to `verp` instead of the return path it had
/// (`b+OLD@bounces.shop.test`, in its headers and its returned original).
pub fn report_to(corpus: &str, old_return_path: &str, verp: &str) -> String {
    assert!(corpus.contains(old_return_path), "{old_return_path}");
    corpus.replace(old_return_path, verp)
}

/// The `Received:` field the SMTP server puts before a client's message.
pub fn received_field(id: MessageId) -> String {
    format!(
        "Received: from client.example (client.example [192.0.2.10])\r\n\
         \tby {HOSTNAME} (Carteiro) with ESMTP id {id};\r\n\
         \tThu, 26 Nov 2026 12:00:00 +0000\r\n"
    )
}

/// A message as the SMTP server hands it over: our `Received:` field, then
/// `headers` (each ending in CRLF), a blank line and a short text body.
/// Returns the body and where the client's header section starts.
pub fn smtp_body(id: MessageId, headers: &str) -> (Bytes, usize) {
    let received = received_field(id);
    let body = format!("{received}{headers}\r\nHello,\r\n\r\nyour order has shipped.\r\n");
    (Bytes::from(body), received.len())
}

/// A message from `from` (the `From:` field) to `recipients` as it comes
/// over SMTP from a client of account `account`, with `extra` header
/// fields; no Message-ID or Date (the policy adds them).
pub fn incoming(account: &AccountRef, from: &str, recipients: &[&str], extra: &str) -> Incoming {
    let id = MessageId::generate();
    let headers = format!(
        "From: Shop <{from}>\r\nTo: {}\r\nSubject: Your order\r\n{extra}",
        recipients.join(", ")
    );
    let (body, insert_at) = smtp_body(id, &headers);
    let mut envelope = Envelope::new(from);
    envelope.recipients = recipients.iter().map(|r| Recipient::new(*r)).collect();
    Incoming {
        id,
        account: account.clone(),
        envelope,
        body,
        insert_at,
        source: MessageSource::Smtp,
        tags: Vec::new(),
        metadata: serde_json::Value::Null,
        received_at_ms: now_millis(),
        client: Some(carteiro_store::SmtpClientDetails {
            client_ip: "192.0.2.10".to_owned(),
            helo: "client.example".to_owned(),
            tls: true,
            auth_user: Some("shop-app".to_owned()),
            listener: "submission".to_owned(),
        }),
        list_unsubscribe: None,
        track_opens: None,
        track_clicks: None,
    }
}

/// Every value of header field `name` (case-insensitive) in the header
/// section of `message`, unfolded, in order.
pub fn header_values(message: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push_str(line);
            }
        } else {
            fields.push(line.to_owned());
        }
    }
    fields
        .into_iter()
        .filter_map(|field| {
            let (key, value) = field.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
        .collect()
}

/// The names of the header fields of `message`, in order, lowercase.
pub fn header_names(message: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n")
        .filter(|line| !line.starts_with([' ', '\t']))
        .filter_map(|line| line.split_once(':'))
        .map(|(key, _)| key.trim().to_ascii_lowercase())
        .collect()
}

/// The value of tag `tag` of a DKIM-Signature value, whitespace removed.
pub fn dkim_tag(signature: &str, tag: &str) -> Option<String> {
    let unfolded: String = signature.chars().filter(|c| !c.is_whitespace()).collect();
    unfolded
        .split(';')
        .find_map(|t| t.strip_prefix(&format!("{tag}=")).map(str::to_owned))
}

/// Polls `check` until it gives `Some`, failing the test after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// DKIM verification with mail-auth against `domain`'s stored public keys
/// (fed through its TXT cache: no DNS is asked): the result of each
/// signature of `message`, in header order.
pub async fn verify_dkim(message: &[u8], domain: &Domain) -> Vec<mail_auth::DkimResult> {
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;
    use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
    use mail_auth::{AuthenticatedMessage, MessageAuthenticator};

    let cache = TxtCache(
        domain
            .keys
            .iter()
            .map(|key| {
                let record = format!(
                    "v=DKIM1; k={}; p={}",
                    key.algorithm.as_str(),
                    key.public_key
                );
                let parsed = DomainKey::parse(record.as_bytes()).expect("record parses");
                (
                    format!("{}._domainkey.{}.", key.selector, domain.name).into_boxed_str(),
                    mail_auth::Txt::from(parsed),
                )
            })
            .collect(),
    );
    // No name servers: a lookup that missed the cache fails, never leaks.
    let authenticator = MessageAuthenticator::new(
        ResolverConfig::from_name_servers(Vec::new()),
        ResolverOpts::default(),
    )
    .expect("authenticator");
    let message = AuthenticatedMessage::parse(message).expect("message parses");
    let params = mail_auth::Parameters::new(&message).with_txt_cache(&cache);
    authenticator
        .verify_dkim(params)
        .await
        .iter()
        .map(|output| output.result().clone())
        .collect()
}

/// mail-auth's TXT cache, holding only the records given.
struct TxtCache(std::collections::HashMap<Box<str>, mail_auth::Txt>);

impl mail_auth::ResolverCache<Box<str>, mail_auth::Txt> for TxtCache {
    fn get<Q>(&self, name: &Q) -> Option<mail_auth::Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.get(name).cloned()
    }

    fn remove<Q>(&self, _: &Q) -> Option<mail_auth::Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: mail_auth::Txt, _: std::time::Instant) {}
}
