//! The HTTP API from the outside: curl against the running server.

use super::{Server, run};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// An HTTP answer: status and parsed JSON body.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

pub async fn curl(
    server: &Server,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let url = format!("http://{}{path}", server.http);
    let auth = key.map(|k| format!("Authorization: Bearer {k}"));
    let mut args = vec!["-s", "-X", method, "-w", "\n%{http_code}"];
    if let Some(auth) = &auth {
        args.extend(["-H", auth]);
    }
    if body.is_some() {
        args.extend([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ]);
    }
    args.push(&url);
    let output = run("curl", &args, body.map(str::as_bytes)).await;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (json_text, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    Answer {
        status: status.trim().parse().unwrap_or(0),
        body: serde_json::from_str(json_text).unwrap_or(Value::String(json_text.to_string())),
    }
}

/// POSTs a one-click unsubscribe (RFC 8058) to `url`, as a mailbox
/// provider does; returns the status and the page.
pub async fn one_click(url: &str) -> (u16, String) {
    let args = [
        "-s",
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "-d",
        "List-Unsubscribe=One-Click",
        url,
    ];
    let output = run("curl", &args, None).await;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (page, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), page.to_owned())
}

/// Creates an API key for `account`; returns the secret.
pub async fn api_key(server: &Server, account: &str) -> String {
    let out = server.cli(&["apikey", "add", account]).await;
    out.lines()
        .find(|l| l.starts_with("crt_"))
        .unwrap_or_else(|| panic!("no key in: {out}"))
        .to_string()
}

/// Polls GET /api/v1/messages/{id} until an event of `kind` shows up;
/// returns the message.
pub async fn wait_event(server: &Server, key: &str, id: &str, kind: &str) -> Value {
    wait_message_events(server, key, id, kind, 1, EVENT_WAIT).await
}

/// Like [`wait_event`], waiting up to `within` (for what comes only after
/// the store's retries back off).
pub async fn wait_event_within(
    server: &Server,
    key: &str,
    id: &str,
    kind: &str,
    within: Duration,
) -> Value {
    wait_message_events(server, key, id, kind, 1, within).await
}

/// How long an event may take to show up in the API.
const EVENT_WAIT: Duration = Duration::from_secs(20);

/// Polls the message's record until it has `count` events of `kind`;
/// returns those events.
pub async fn wait_events(
    server: &Server,
    key: &str,
    id: &str,
    kind: &str,
    count: usize,
) -> Vec<Value> {
    events_of(
        &wait_message_events(server, key, id, kind, count, EVENT_WAIT).await,
        kind,
    )
}

fn events_of(message: &Value, kind: &str) -> Vec<Value> {
    message["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| e["type"] == kind)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_message_events(
    server: &Server,
    key: &str,
    id: &str,
    kind: &str,
    count: usize,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let answer = curl(
            server,
            "GET",
            &format!("/api/v1/messages/{id}"),
            Some(key),
            None,
        )
        .await;
        let found = events_of(&answer.body, kind).len();
        if answer.status == 200 && found >= count {
            return answer.body;
        }
        assert!(
            Instant::now() < deadline,
            "{id}: {found} {kind} events, not {count}: {} {}\n{}",
            answer.status,
            answer.body,
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates `account`, makes `domain` its sending domain (DKIM keys) and
/// gives it an API key; returns the key.
pub async fn sending_account(server: &Server, account: &str, domain: &str) -> String {
    server.cli(&["account", "add", account]).await;
    server.cli(&["domain", "add", account, domain]).await;
    api_key(server, account).await
}

/// `POST /api/v1/messages` with `request`; asserts the `202`.
pub async fn send_message(server: &Server, key: &str, request: Value) -> Answer {
    let answer = curl(
        server,
        "POST",
        "/api/v1/messages",
        Some(key),
        Some(&request.to_string()),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    answer
}
