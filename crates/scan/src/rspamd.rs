//! rspamd's normal worker: `POST /checkv2` with the message as the body and
//! the envelope and client in request headers; the answer's action, score,
//! symbols and the headers rspamd asks to add (`milter.add_headers`).

use crate::ScanError;
use bytes::Bytes;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

const NAME: &str = "rspamd";
/// The longest answer read (a report lists every symbol with its options).
const MAX_ANSWER: usize = 1024 * 1024;

/// What rspamd is told besides the message.
#[derive(Clone, Debug, Default)]
pub struct SpamCheck<'a> {
    /// The SMTP client's address (`IP:`).
    pub ip: Option<IpAddr>,
    /// Its HELO name (`Helo:`).
    pub helo: Option<&'a str>,
    /// The envelope sender (`From:`); empty for the null sender.
    pub from: &'a str,
    /// The envelope recipients (one `Rcpt:` each).
    pub rcpts: &'a [String],
    /// The authenticated user (`User:`), if any.
    pub user: Option<&'a str>,
    /// The message id (`Queue-Id:`), for rspamd's log.
    pub queue_id: &'a str,
}

/// rspamd's action for a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpamAction {
    NoAction,
    Greylist,
    AddHeader,
    RewriteSubject,
    SoftReject,
    Reject,
    /// An action this client does not know, as rspamd named it.
    Other(String),
}

impl SpamAction {
    fn from_name(name: &str) -> SpamAction {
        match name {
            "no action" => SpamAction::NoAction,
            "greylist" => SpamAction::Greylist,
            "add header" => SpamAction::AddHeader,
            "rewrite subject" => SpamAction::RewriteSubject,
            "soft reject" => SpamAction::SoftReject,
            "reject" => SpamAction::Reject,
            other => SpamAction::Other(other.to_owned()),
        }
    }

    /// rspamd's own name.
    pub fn as_str(&self) -> &str {
        match self {
            SpamAction::NoAction => "no action",
            SpamAction::Greylist => "greylist",
            SpamAction::AddHeader => "add header",
            SpamAction::RewriteSubject => "rewrite subject",
            SpamAction::SoftReject => "soft reject",
            SpamAction::Reject => "reject",
            SpamAction::Other(name) => name,
        }
    }
}

/// What rspamd said about a message.
#[derive(Clone, Debug, PartialEq)]
pub struct SpamReport {
    pub action: SpamAction,
    pub score: f64,
    /// The score of its `reject` action.
    pub required_score: f64,
    /// The symbols that matched, by name.
    pub symbols: Vec<String>,
    /// Headers rspamd asks to add (`milter.add_headers`), in its order.
    pub add_headers: Vec<(String, String)>,
}

/// An rspamd client; cheap to share (its HTTP connections are pooled).
pub struct Rspamd {
    client: reqwest::Client,
    url: String,
}

impl Rspamd {
    /// `base` is the normal worker's URL, e.g. `http://127.0.0.1:11333`.
    pub fn new(base: &str) -> Rspamd {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Rspamd {
            client,
            url: format!("{}/checkv2", base.trim_end_matches('/')),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Asks rspamd about `message`; no time limit of its own (the caller's).
    pub async fn check(
        &self,
        message: Bytes,
        check: &SpamCheck<'_>,
    ) -> Result<SpamReport, ScanError> {
        let mut request = self.client.post(&self.url).body(message);
        if let Some(ip) = check.ip {
            request = request.header("IP", ip.to_string());
        }
        if let Some(helo) = check.helo.filter(|h| is_header_safe(h)) {
            request = request.header("Helo", helo);
        }
        if !check.from.is_empty() && is_header_safe(check.from) {
            request = request.header("From", check.from);
        }
        for rcpt in check.rcpts.iter().filter(|r| is_header_safe(r)) {
            request = request.header("Rcpt", rcpt.as_str());
        }
        if let Some(user) = check.user.filter(|u| is_header_safe(u)) {
            request = request.header("User", user);
        }
        if is_header_safe(check.queue_id) {
            request = request.header("Queue-Id", check.queue_id);
        }
        let mut response = request.send().await.map_err(|e| ScanError::Unreachable {
            scanner: NAME,
            detail: e.to_string(),
        })?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| ScanError::Unreachable {
            scanner: NAME,
            detail: e.to_string(),
        })? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(unreadable(format!("an answer over {MAX_ANSWER} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(ScanError::Failed {
                scanner: NAME,
                detail: format!("HTTP {status}: {}", text.trim()),
            });
        }
        parse_answer(&body)
    }
}

/// Envelope values go into request headers only when they are plain
/// visible text (the SMTP server has checked them; this keeps a header
/// from being split whatever comes).
fn is_header_safe(value: &str) -> bool {
    !value.is_empty() && value.len() <= 998 && value.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[derive(Deserialize)]
struct Answer {
    action: String,
    score: f64,
    #[serde(default)]
    required_score: f64,
    #[serde(default)]
    symbols: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    milter: Option<Milter>,
}

#[derive(Deserialize)]
struct Milter {
    #[serde(default)]
    add_headers: BTreeMap<String, serde_json::Value>,
}

/// Reads a `/checkv2` answer.
pub(crate) fn parse_answer(body: &[u8]) -> Result<SpamReport, ScanError> {
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| unreadable(format!("not a report: {e}")))?;
    let mut add_headers = Vec::new();
    if let Some(milter) = answer.milter {
        // Each value is a string, {"value": ..., "order": n}, or a list of
        // either (one header each).
        let mut ordered: Vec<(i64, String, String)> = Vec::new();
        for (name, value) in milter.add_headers {
            let values = match value {
                serde_json::Value::Array(items) => items,
                one => vec![one],
            };
            for value in values {
                let (text, order) = match &value {
                    serde_json::Value::String(text) => (text.clone(), 0),
                    serde_json::Value::Object(fields) => (
                        fields
                            .get("value")
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_owned(),
                        fields.get("order").and_then(|o| o.as_i64()).unwrap_or(0),
                    ),
                    _ => continue,
                };
                ordered.push((order, name.clone(), text));
            }
        }
        ordered.sort_by_key(|(order, _, _)| *order);
        add_headers = ordered
            .into_iter()
            .map(|(_, name, value)| (name, value))
            .collect();
    }
    Ok(SpamReport {
        action: SpamAction::from_name(&answer.action),
        score: answer.score,
        required_score: answer.required_score,
        symbols: answer.symbols.into_keys().collect(),
        add_headers,
    })
}

fn unreadable(detail: String) -> ScanError {
    ScanError::Unreadable {
        scanner: NAME,
        detail,
    }
}
