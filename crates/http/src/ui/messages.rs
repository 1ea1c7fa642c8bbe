//! `GET /ui/messages` (search, newest first, a page at a time) and
//! `GET /ui/messages/{id}` (one message: envelope, recipients' states, its
//! whole timeline: each remote reply, bounce class, open and click, and its
//! header section as queued).
//!
//! The search takes the API's parameters (`recipient`, `sender`, `status`,
//! `tag`, `subject`, `message_id`, `since`, `until`, `cursor`) through the
//! same parser, so a malformed date is refused with the same words, shown on
//! the page. A `message_id` that is a Carteiro id opens that message; any
//! other is looked up as a `Message-ID` header.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use carteiro_mail::MessageId;
use carteiro_store::{EventRecord, MessageHeaders, MessageRecord, RECIPIENT_STATES};
use serde_json::Value;

use super::error::UiError;
use super::page::{Nav, render, size, when_ms};
use super::scope::scope;
use super::session::Signed;
use super::url::query_escape;
use crate::ApiState;
use crate::error::ApiError;
use crate::params::Params;
use crate::read::{SEARCH_PARAMETERS, search_request};
use crate::submit::Submitter;

/// Messages per page of the dashboard's search.
const PAGE_SIZE: u32 = 50;

/// One row of the results.
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) when: String,
    pub(crate) sender: String,
    pub(crate) recipients: String,
    pub(crate) subject: String,
    /// Each distinct recipient state, with how many are in it.
    pub(crate) states: Vec<(String, usize)>,
}

#[derive(Template)]
#[template(path = "ui/messages.html")]
struct SearchPage {
    nav: Nav,
    /// The form's values, by name.
    form: Vec<(String, String)>,
    states: &'static [&'static str],
    rows: Vec<Row>,
    error: Option<String>,
    /// The link to the next (older) page.
    older: Option<String>,
    searched: bool,
}

impl SearchPage {
    /// A form field's value.
    fn value(&self, name: &str) -> &str {
        self.form
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// `GET /ui/messages`.
pub(crate) async fn search<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, UiError> {
    let pairs = query.map(|Query(pairs)| pairs).unwrap_or_default();
    let requested = pairs
        .iter()
        .find(|(n, _)| n == "account")
        .map(|(_, v)| v.clone());
    let scope = scope(&state.store, &signed, requested.as_deref()).await?;
    let nav = Nav::new(&signed, &scope, "messages");
    let mut pairs: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(n, v)| n != "account" && !v.trim().is_empty())
        .map(|(n, v)| (n, v.trim().to_owned()))
        .collect();
    // A Carteiro id opens the message itself.
    if let Some((_, wanted)) = pairs.iter().find(|(n, _)| n == "message_id")
        && let Ok(id) = wanted.parse::<MessageId>()
    {
        return Ok(Redirect::to(&nav.href(&format!("/ui/messages/{id}"))).into_response());
    }
    pairs.retain(|(n, _)| n != "limit");
    let searched = !pairs.is_empty();
    let mut page = SearchPage {
        nav,
        form: pairs.clone(),
        states: &RECIPIENT_STATES,
        rows: Vec::new(),
        error: None,
        older: None,
        searched,
    };
    let request = Params::new(pairs, &SEARCH_PARAMETERS, &[]).and_then(|p| search_request(&p));
    let (filter, _, cursor) = match request {
        Ok(request) => request,
        Err(ApiError::InvalidParameter { parameter, message }) => {
            page.error = Some(format!("{}: {message}", label(&parameter)));
            return render(StatusCode::BAD_REQUEST, &page);
        }
        Err(other) => return Err(UiError::internal("reading a search", format!("{other:?}"))),
    };
    let mut messages = state
        .store
        .search_messages(scope.account.id, &filter, PAGE_SIZE + 1, cursor.as_deref())
        .await
        .map_err(|e| UiError::store("searching messages", e))?;
    if messages.len() > PAGE_SIZE as usize {
        messages.truncate(PAGE_SIZE as usize);
        if let Some(last) = messages.last() {
            let mut query: Vec<String> = page
                .form
                .iter()
                .filter(|(n, _)| n != "cursor")
                .map(|(n, v)| format!("{n}={}", query_escape(v)))
                .collect();
            query.push(format!("cursor={}", last.id));
            page.older = Some(page.nav.href(&format!("/ui/messages?{}", query.join("&"))));
        }
    }
    page.rows = messages.iter().map(row).collect();
    render(StatusCode::OK, &page)
}

/// The form's name of a search parameter.
fn label(parameter: &str) -> &str {
    match parameter {
        "since" => "From (date)",
        "until" => "To (date)",
        "message_id" => "Message id",
        "cursor" => "Page",
        other => other,
    }
}

fn row(message: &MessageRecord) -> Row {
    let mut states: Vec<(String, usize)> = Vec::new();
    for recipient in &message.recipients {
        match states.iter_mut().find(|(s, _)| *s == recipient.state) {
            Some((_, n)) => *n += 1,
            None => states.push((recipient.state.clone(), 1)),
        }
    }
    let first = message
        .recipients
        .first()
        .map_or("", |r| r.address.as_str());
    let recipients = match message.recipients.len() {
        0 | 1 => first.to_owned(),
        n => format!("{first} +{}", n - 1),
    };
    Row {
        id: message.id.clone(),
        when: when_ms(message.received_at_ms),
        sender: if message.sender.is_empty() {
            "<>".to_owned()
        } else {
            message.sender.clone()
        },
        recipients,
        subject: message.subject.clone().unwrap_or_default(),
        states,
    }
}

/// One line of a message's timeline.
pub(crate) struct Step {
    pub(crate) when: String,
    pub(crate) kind: &'static str,
    pub(crate) recipient: String,
    /// The remote reply, a bounce's or complaint's words: the line to read.
    pub(crate) headline: String,
    /// The other details, `name: value`.
    pub(crate) details: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "ui/message.html")]
struct MessagePage {
    nav: Nav,
    id: String,
    when: String,
    sender: String,
    subject: String,
    header_message_id: String,
    tags: String,
    source: &'static str,
    size: String,
    metadata: String,
    recipients: Vec<(String, String, String)>,
    steps: Vec<Step>,
    /// Whether it waits in this node's queue (retry and delete apply).
    queued: bool,
    headers: Option<Headers>,
}

/// A message's header section on its page.
struct Headers {
    /// As queued, CRLF turned into line ends.
    raw: String,
    fields: usize,
    size: String,
    /// Only the start is kept: what the page says.
    truncated: bool,
}

impl Headers {
    fn of(headers: &MessageHeaders) -> Headers {
        let raw = headers.text.replace("\r\n", "\n");
        Headers {
            fields: raw
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with([' ', '\t']))
                .count(),
            raw,
            size: size(headers.size),
            truncated: headers.truncated(),
        }
    }
}

/// `GET /ui/messages/{id}`.
pub(crate) async fn one<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, UiError> {
    let requested = query
        .ok()
        .and_then(|Query(pairs)| pairs.into_iter().find(|(n, _)| n == "account"))
        .map(|(_, v)| v);
    let scope = scope(&state.store, &signed, requested.as_deref()).await?;
    let id = id.parse::<MessageId>().map_err(|_| UiError::NotFound)?;
    let message = state
        .store
        .message(scope.account.id, &id.to_string())
        .await
        .map_err(|e| UiError::store("reading a message", e))?
        .ok_or(UiError::NotFound)?;
    let queued = super::queue::owned(&state, &scope, &message.id).await;
    let page = MessagePage {
        queued,
        nav: Nav::new(&signed, &scope, "messages"),
        id: message.id.clone(),
        when: when_ms(message.received_at_ms),
        sender: if message.sender.is_empty() {
            "<>".to_owned()
        } else {
            message.sender.clone()
        },
        subject: message.subject.clone().unwrap_or_default(),
        header_message_id: message.header_message_id.clone().unwrap_or_default(),
        tags: message.tags.join(", "),
        source: message.source.as_str(),
        size: size(message.size),
        metadata: if message.metadata.is_null() {
            String::new()
        } else {
            message.metadata.to_string()
        },
        recipients: message
            .recipients
            .iter()
            .map(|r| (r.address.clone(), r.state.clone(), when_ms(r.updated_at_ms)))
            .collect(),
        steps: message.events.iter().map(step).collect(),
        headers: message.headers.as_ref().map(Headers::of),
    };
    render(StatusCode::OK, &page)
}

/// The keys whose value is the line to read, in order of preference.
const HEADLINE_KEYS: [&str; 4] = ["reply", "reason", "url", "feedback_type"];

fn step(event: &EventRecord) -> Step {
    let mut headline = String::new();
    let mut details = Vec::new();
    if let Value::Object(map) = &event.details {
        let lead = HEADLINE_KEYS
            .iter()
            .find(|k| map.get(**k).is_some_and(|v| !v.is_null()));
        for (key, value) in map {
            if value.is_null() {
                continue;
            }
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if lead.is_some_and(|l| *l == key) {
                headline = text;
            } else if key == "next_attempt_ms"
                && let Some(ms) = value.as_i64()
            {
                details.push(("next attempt".to_owned(), when_ms(ms)));
            } else {
                details.push((key.replace('_', " "), text));
            }
        }
    }
    Step {
        when: when_ms(event.timestamp_ms),
        kind: event.kind.as_str(),
        recipient: event.recipient.clone().unwrap_or_default(),
        headline,
        details,
    }
}
