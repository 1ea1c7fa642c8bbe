//! Hostile JSON through `POST /api/v1/messages`: deep nesting, huge strings,
//! many attachments and recipients, broken Unicode, NUL and CR/LF injection
//! in every string field, wrong types, odd base64 and HTML.
//!
//! Every answer must be a 2xx or a 4xx (never a 5xx, never a panic) with
//! the API's JSON shape, and every accepted message must be one a mail
//! server takes: it parses with mail-parser, has only CRLF line endings and
//! lines of at most 998 octets, and no header field the request smuggled in.
//!
//! The router runs as in the crate's own tests: a real store on a temporary
//! file, requests through `tower::ServiceExt`, and a submitter that keeps
//! what it is given.

#[path = "malformed/cases.rs"]
mod cases;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use carteiro_http::{ApiState, Submission, SubmitError, Submitter, router};
use carteiro_store::Store;
use cases::{Case, Expect};
use mail_parser::MessageParser;
use serde_json::Value;
use tower::ServiceExt;

/// Large enough that the 1 MiB cases reach the checks behind the body
/// limit (about 13 MB of JSON here).
const MAX_MESSAGE_SIZE: u64 = 10_000_000;
/// The longest one request may take in a debug build.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// Keeps every submission; accepts them all.
#[derive(Default)]
struct Recorder {
    submissions: Mutex<Vec<Submission>>,
}

impl Submitter for Recorder {
    async fn submit(&self, submission: Submission) -> Result<Vec<String>, SubmitError> {
        self.submissions
            .lock()
            .expect("submissions lock")
            .push(submission);
        Ok(Vec::new())
    }

    async fn unsubscribe_target(&self, _token: &str) -> Option<String> {
        None
    }

    async fn unsubscribe(&self, _token: &str) -> Result<Option<String>, SubmitError> {
        Ok(None)
    }

    async fn opened(&self, _token: &str, _user_agent: Option<&str>) {}

    async fn clicked(&self, _token: &str, _user_agent: Option<&str>) -> Option<String> {
        None
    }

    fn click_target(&self, _token: &str) -> Option<String> {
        None
    }
}

impl Recorder {
    fn take(&self, id: &str) -> Option<Submission> {
        let mut submissions = self.submissions.lock().expect("submissions lock");
        let at = submissions.iter().position(|s| s.id.to_string() == id)?;
        Some(submissions.remove(at))
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    router: Router,
    recorder: Arc<Recorder>,
    authorization: String,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("carteiro.db"))
            .await
            .expect("open store");
        store.create_account("acme").await.expect("account");
        let (_, key) = store.create_api_key("acme").await.expect("key");
        let recorder = Arc::new(Recorder::default());
        let mut config = carteiro_config::Config {
            hostname: "relay.carteiro.test".to_owned(),
            ..carteiro_config::Config::default()
        };
        config.smtp.max_message_size = MAX_MESSAGE_SIZE;
        let router = router(ApiState {
            store,
            submitter: Arc::clone(&recorder),
            config: Arc::new(config),
        });
        Harness {
            _dir: dir,
            router,
            recorder,
            authorization: format!("Bearer {key}"),
        }
    }

    /// Posts `body`; returns the status and the JSON answer, or why the
    /// answer is not one the API may give.
    async fn post(&self, body: Vec<u8>) -> Result<(StatusCode, Value), String> {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/messages")
            .header(header::AUTHORIZATION, &self.authorization)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("request");
        let call = self.router.clone().oneshot(request);
        let response = tokio::time::timeout(REQUEST_DEADLINE, call)
            .await
            .map_err(|_| format!("no answer within {REQUEST_DEADLINE:?}"))?
            .expect("infallible");
        let status = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|error| format!("reading the answer: {error}"))?;
        let text = String::from_utf8_lossy(&bytes);
        if content_type.as_ref().map(|v| v.as_bytes()) != Some(b"application/json") {
            return Err(format!("{status} is not JSON: {text}"));
        }
        let json: Value =
            serde_json::from_slice(&bytes).map_err(|_| format!("{status}: bad JSON {text}"))?;
        Ok((status, json))
    }
}

/// Checks one answer against the API's shapes and the case's expectation.
fn check_answer(case: &Case, status: StatusCode, json: &Value) -> Result<(), String> {
    if status.is_server_error() || !(status.is_success() || status.is_client_error()) {
        return Err(format!("answered {status}: {json}"));
    }
    if status.is_success() {
        if status != StatusCode::ACCEPTED
            || !json["id"].is_string()
            || !json["recipients"].is_array()
        {
            return Err(format!("{status} without the 202 shape: {json}"));
        }
    } else {
        let shaped =
            json["error"].is_string() && json.as_object().is_some_and(|o| o.contains_key("detail"));
        if !shaped {
            return Err(format!("{status} without the error shape: {json}"));
        }
    }
    let expected = match case.expect {
        Expect::Accepted => status == StatusCode::ACCEPTED,
        Expect::Refused => status.is_client_error(),
    };
    if !expected {
        let mut shown = json.to_string();
        shown.truncate(300);
        return Err(format!("expected {:?}, got {status}: {shown}", case.expect));
    }
    Ok(())
}

/// What an accepted message must be to travel.
fn check_message(message: &[u8]) -> Result<(), String> {
    for (at, &b) in message.iter().enumerate() {
        let bare = match b {
            b'\r' => message.get(at + 1) != Some(&b'\n'),
            b'\n' => at == 0 || message[at - 1] != b'\r',
            _ => false,
        };
        if bare {
            return Err(format!("bare CR or LF at offset {at}"));
        }
    }
    if let Some(line) = message.split(|&b| b == b'\n').find(|line| line.len() > 999) {
        return Err(format!("a line of {} octets", line.len() - 1));
    }
    let parsed = MessageParser::default()
        .parse(message)
        .ok_or("mail-parser cannot read it")?;
    if parsed.header_raw("X-Injected").is_some() || parsed.header_raw("Bcc").is_some() {
        return Err("a header field was injected".into());
    }
    for (at, part) in parsed.parts.iter().enumerate() {
        for name in ["X-Injected", "Bcc"] {
            if part
                .headers
                .iter()
                .any(|h| h.name().eq_ignore_ascii_case(name))
            {
                return Err(format!("a {name} field was injected into part {at}"));
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn hostile_requests_get_json_answers_and_clean_messages() {
    let harness = Harness::new().await;
    let cases = cases::all();
    let mut failures = Vec::new();
    let started = Instant::now();
    let n_cases = cases.len();
    for case in cases {
        let took = Instant::now();
        let outcome = match harness.post(case.body.clone()).await {
            Ok((status, json)) => check_answer(&case, status, &json).and_then(|()| {
                if status != StatusCode::ACCEPTED {
                    return Ok(());
                }
                let id = json["id"].as_str().unwrap_or_default();
                let submission = harness
                    .recorder
                    .take(id)
                    .ok_or("202 without a submission")?;
                if submission.recipients.len() > 1000 {
                    return Err(format!("{} recipients", submission.recipients.len()));
                }
                check_message(&submission.message)
            }),
            Err(reason) => Err(reason),
        };
        let took = took.elapsed();
        match outcome {
            Ok(()) => eprintln!("ok      {:?} {}", took, case.name),
            Err(reason) => {
                eprintln!("FAILED  {:?} {}: {reason}", took, case.name);
                failures.push(format!("{}: {reason}", case.name));
            }
        }
    }
    eprintln!("{n_cases} cases in {:?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} of {n_cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_as_json() {
    let harness = Harness::new().await;
    let limit = carteiro_http::body_limit(&{
        let mut config = carteiro_config::Config::default();
        config.smtp.max_message_size = MAX_MESSAGE_SIZE;
        config
    });
    let mut body = br#"{"text": ""#.to_vec();
    body.resize(limit + 10, b'x');
    body.extend_from_slice(br#""}"#);
    let (status, json) = harness.post(body).await.expect("an answer");
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    assert_eq!(json["error"], "payload too large");
}
