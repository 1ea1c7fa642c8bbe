//! Tests of the whole router: a real store on a temporary file, a submitter
//! that records what it is given in that store (as the daemon's does) and
//! can be told to refuse, and requests driven through `tower::ServiceExt`
//! (and once over a real socket, in `serve.rs`).

mod auth;
mod read;
mod search;
mod send;
mod serve;
mod stats;
mod suppressions;
mod tracking;
mod ui;
mod unsubscribe;
mod webhooks;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use carteiro_store::{
    EventKind, EventWriter, MessageHeaders, MessageSource, NewEvent, NewMessage, Store,
};
use serde_json::Value;
use tower::ServiceExt;

use crate::{ApiState, Submission, SubmitError, Submitter, router};

/// The hostname of the test configuration.
pub(crate) const HOSTNAME: &str = "relay.carteiro.test";

/// `smtp.max_message_size` of the test configuration: the body limit is
/// 40 000 + 65 536 bytes.
pub(crate) const MAX_MESSAGE_SIZE: u64 = 30_000;

/// What the test submitter answers.
#[derive(Clone, Debug)]
pub(crate) enum Mode {
    Accept,
    Refuse { field: String, message: String },
    Unavailable,
    Fail,
}

/// Records submissions, and writes each accepted one to the store with its
/// `received` event, as the daemon's submitter does.
pub(crate) struct TestSubmitter {
    pub(crate) mode: Mutex<Mode>,
    pub(crate) submissions: Mutex<Vec<Submission>>,
    /// Addresses unsubscribed through [`Submitter::unsubscribe`].
    pub(crate) unsubscribed: Mutex<Vec<String>>,
    /// Opens and clicks recorded (token, user agent), genuine tokens only.
    pub(crate) engagements: Mutex<Vec<(String, Option<String>)>>,
    writer: EventWriter,
}

/// The one unsubscribe token the test submitter knows, and its address.
pub(crate) const UNSUBSCRIBE_TOKEN: &str = "u-valid-token";
pub(crate) const UNSUBSCRIBE_ADDRESS: &str = "alice@shop.test";
/// A genuine token whose unsubscribe the store cannot take now.
pub(crate) const UNSTORABLE_TOKEN: &str = "u-store-down";

/// The one open-tracking token and the one click-tracking token the test
/// submitter knows, and the URL of the latter.
pub(crate) const OPEN_TOKEN: &str = "valid-open-token";
pub(crate) const CLICK_TOKEN: &str = "valid-click-token.aHR0cHM6Ly9zaG9wLnRlc3Qv";
pub(crate) const CLICK_URL: &str = "https://shop.test/landing?a=1&b=2";

impl TestSubmitter {
    pub(crate) fn set_mode(&self, mode: Mode) {
        *self.mode.lock().expect("mode lock") = mode;
    }

    pub(crate) fn submissions(&self) -> Vec<Submission> {
        self.submissions.lock().expect("submissions lock").clone()
    }
}

impl Submitter for TestSubmitter {
    async fn unsubscribe_target(&self, token: &str) -> Option<String> {
        (token == UNSUBSCRIBE_TOKEN).then(|| UNSUBSCRIBE_ADDRESS.to_owned())
    }

    async fn unsubscribe(&self, token: &str) -> Result<Option<String>, SubmitError> {
        if token == UNSTORABLE_TOKEN {
            return Err(SubmitError::Unavailable("the store cannot write".into()));
        }
        let Some(address) = self.unsubscribe_target(token).await else {
            return Ok(None);
        };
        self.unsubscribed
            .lock()
            .expect("unsubscribed lock")
            .push(address.clone());
        Ok(Some(address))
    }

    async fn opened(&self, token: &str, user_agent: Option<&str>) {
        if token == OPEN_TOKEN {
            self.engagements
                .lock()
                .expect("engagements lock")
                .push((token.to_owned(), user_agent.map(str::to_owned)));
        }
    }

    async fn clicked(&self, token: &str, user_agent: Option<&str>) -> Option<String> {
        if token != CLICK_TOKEN {
            return None;
        }
        self.engagements
            .lock()
            .expect("engagements lock")
            .push((token.to_owned(), user_agent.map(str::to_owned)));
        Some(CLICK_URL.to_owned())
    }

    fn click_target(&self, token: &str) -> Option<String> {
        (token == CLICK_TOKEN).then(|| CLICK_URL.to_owned())
    }

    async fn submit(&self, submission: Submission) -> Result<Vec<String>, SubmitError> {
        let mode = self.mode.lock().expect("mode lock").clone();
        match mode {
            Mode::Accept => {}
            Mode::Refuse { field, message } => return Err(SubmitError::Refused { field, message }),
            Mode::Unavailable => return Err(SubmitError::Unavailable("spool full".to_owned())),
            Mode::Fail => return Err(SubmitError::Internal("disk on fire".to_owned())),
        }
        let now = i64::try_from(submission.id.timestamp_millis()).expect("time");
        self.writer.message(NewMessage {
            id: submission.id.to_string(),
            account_id: submission.account.id,
            sender: submission.envelope_from.clone(),
            recipients: submission.recipients.clone(),
            subject: submission.subject.clone(),
            header_message_id: Some(submission.header_message_id.clone()),
            tags: submission.tags.clone(),
            sending_domain: None,
            metadata: submission.metadata.clone(),
            source: MessageSource::Api,
            size: submission.message.len() as u64,
            received_at_ms: now,
            headers: Some(MessageHeaders::from_section(
                &submission.message
                    [..carteiro_mail::headers::summarize(&submission.message).header_end],
            )),
        });
        self.writer.event(NewEvent {
            account_id: submission.account.id,
            message_id: submission.id.to_string(),
            recipient: None,
            kind: EventKind::Received,
            timestamp_ms: now,
            details: carteiro_store::EventDetails::None,
        });
        self.submissions
            .lock()
            .expect("submissions lock")
            .push(submission);
        Ok(Vec::new())
    }
}

/// A router on a fresh store with one account (`acme`) and its key.
pub(crate) struct Harness {
    _dir: tempfile::TempDir,
    pub(crate) store: Store,
    pub(crate) writer: EventWriter,
    pub(crate) submitter: Arc<TestSubmitter>,
    pub(crate) router: Router,
    pub(crate) account_id: i64,
    pub(crate) key: String,
}

/// An answer: status, headers and the JSON body (every answer is JSON).
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) json: Value,
}

impl Harness {
    /// The test configuration, which lets webhooks reach any address (the
    /// tests register endpoints on loopback and on names that do not
    /// resolve).
    pub(crate) async fn new() -> Harness {
        Harness::with_config(|config| {
            config.webhooks.allow_private_targets = carteiro_config::PrivateTargets::Allowed;
        })
        .await
    }

    /// The test configuration as changed by `change`.
    pub(crate) async fn with_config(change: impl FnOnce(&mut carteiro_config::Config)) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("carteiro.db"))
            .await
            .expect("open store");
        let account = store.create_account("acme").await.expect("account");
        let (_, key) = store.create_api_key("acme").await.expect("key");
        let (writer, _task) = EventWriter::start(store.clone());
        let submitter = Arc::new(TestSubmitter {
            mode: Mutex::new(Mode::Accept),
            submissions: Mutex::new(Vec::new()),
            unsubscribed: Mutex::new(Vec::new()),
            engagements: Mutex::new(Vec::new()),
            writer: writer.clone(),
        });
        let mut config = carteiro_config::Config {
            hostname: HOSTNAME.to_owned(),
            ..carteiro_config::Config::default()
        };
        config.smtp.max_message_size = MAX_MESSAGE_SIZE;
        change(&mut config);
        let router = router(ApiState {
            store: store.clone(),
            submitter: Arc::clone(&submitter),
            config: Arc::new(config),
        });
        Harness {
            _dir: dir,
            store,
            writer,
            submitter,
            router,
            account_id: account.id,
            key,
        }
    }

    /// Creates another account with a key; returns its id and the key.
    pub(crate) async fn other_account(&self, name: &str) -> (i64, String) {
        let account = self.store.create_account(name).await.expect("account");
        let (_, key) = self.store.create_api_key(name).await.expect("key");
        (account.id, key)
    }

    /// Sends a request; `authorization` is the whole header value.
    pub(crate) async fn send(
        &self,
        method: Method,
        uri: &str,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        if let Some(value) = content_type {
            request = request.header(header::CONTENT_TYPE, value);
        }
        let request = request.body(body.into()).expect("request");
        self.answer(request).await
    }

    /// A GET with `key` from the client address `peer`, as `serve` gives it.
    pub(crate) async fn get_from(&self, uri: &str, key: &str, peer: &str) -> Answer {
        let mut request = Request::builder()
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .expect("request");
        let peer: std::net::SocketAddr = peer.parse().expect("a socket address");
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        self.answer(request).await
    }

    /// Sends `request`; the answer must be JSON.
    async fn answer(&self, request: Request<Body>) -> Answer {
        let uri = request.uri().clone();
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        assert_eq!(
            headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(&b"application/json"[..]),
            "{status} {uri}: not JSON: {}",
            String::from_utf8_lossy(&bytes)
        );
        let json = serde_json::from_slice(&bytes).expect("a JSON body");
        Answer {
            status,
            headers,
            json,
        }
    }

    /// `POST /api/v1/messages` with this account's key.
    pub(crate) async fn post(&self, body: &Value) -> Answer {
        self.post_raw(body.to_string()).await
    }

    /// `POST /api/v1/messages` of raw bytes as JSON with this account's key.
    pub(crate) async fn post_raw(&self, body: impl Into<Body>) -> Answer {
        let authorization = format!("Bearer {}", self.key);
        self.send(
            Method::POST,
            "/api/v1/messages",
            Some(&authorization),
            Some("application/json"),
            body,
        )
        .await
    }

    /// A GET with `key`.
    pub(crate) async fn get_with(&self, uri: &str, key: &str) -> Answer {
        let authorization = format!("Bearer {key}");
        self.send(Method::GET, uri, Some(&authorization), None, Body::empty())
            .await
    }

    /// A GET with this account's key.
    pub(crate) async fn get(&self, uri: &str) -> Answer {
        self.get_with(uri, &self.key).await
    }
}

/// A valid send request, to be changed by each test.
pub(crate) fn valid_request() -> Value {
    serde_json::json!({
        "from": "Shop <news@shop.example>",
        "to": ["alice@example.org", "Bob <bob@example.net>"],
        "subject": "Your order",
        "text": "Thanks for your order.",
    })
}

/// Asserts an error answer: status, `error`, and the field named in `detail`.
/// Asserts a `503` that asks the client to retry in 60 s.
pub(crate) fn assert_unavailable(answer: &Answer) {
    assert_error(
        answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "service unavailable",
    );
    assert_eq!(
        answer
            .headers
            .get(axum::http::header::RETRY_AFTER)
            .map(|v| v.as_bytes()),
        Some(&b"60"[..]),
        "{}",
        answer.json
    );
}

pub(crate) fn assert_error(answer: &Answer, status: StatusCode, error: &str) {
    assert_eq!(answer.status, status, "{}", answer.json);
    assert_eq!(answer.json["error"], error, "{}", answer.json);
    assert!(
        answer
            .json
            .as_object()
            .is_some_and(|o| o.contains_key("detail")),
        "{}",
        answer.json
    );
}
