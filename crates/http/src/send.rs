//! `POST /api/v1/messages`: checks the request, composes the message (with
//! a new id, its `Message-ID` and the current `Date`), hands it to the
//! [`Submitter`] and answers `202` once the submitter says it is durable.
//!
//! Parsing, checking and composing run on a blocking thread: a body may be
//! tens of megabytes of base64, and decoding and encoding it must not stall
//! the other requests of an async worker. This module does not apply the
//! sending policy (domain ownership, DKIM, suppressions): the submitter does.

mod request;

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use carteiro_mail::MessageId;
use carteiro_mail::compose::{ComposeRequest, compose};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::submit::{AccountRef, Submission, Submitter};
use crate::{ApiState, body_limit};

/// `POST /api/v1/messages`: `202 {"id", "recipients": [{"address", "id"}]}`.
pub(crate) async fn send<S: Submitter>(
    State(state): State<ApiState<S>>,
    Caller(account): Caller,
    request: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_content_type(request.headers())?;
    let body = Bytes::from_request(request, &())
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: u64::try_from(body_limit(&state.config)).unwrap_or(u64::MAX),
                }
            } else {
                ApiError::MalformedJson(format!("cannot read the body: {}", rejection.body_text()))
            }
        })?;
    let hostname = state.config.hostname.clone();
    let submission = tokio::task::spawn_blocking(move || prepare(&body, &hostname, account))
        .await
        .map_err(|error| ApiError::internal("composing a message", error))??;
    let id = submission.id;
    let addresses = submission.recipients.clone();
    let ids = state.submitter.submit(submission).await?;
    let recipients: Vec<Value> = addresses
        .iter()
        .enumerate()
        .map(|(index, address)| {
            let recipient_id = ids
                .get(index)
                .cloned()
                .unwrap_or_else(|| format!("{id}-{index}"));
            json!({"address": address, "id": recipient_id})
        })
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id.to_string(), "recipients": recipients})),
    ))
}

/// Only JSON bodies: `application/json`, parameters (`charset=utf-8`)
/// allowed, case-insensitive.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or("").trim());
    match essence {
        Some(essence) if essence.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

/// Parses and checks the body and composes the message.
fn prepare(body: &[u8], hostname: &str, account: AccountRef) -> Result<Submission, ApiError> {
    let request = request::parse(body)?;
    let tags = request::check_tags(request.tags.unwrap_or_default())?;
    let metadata = request::check_metadata(request.metadata)?;
    let attachments = request::decode_attachments(request.attachments.unwrap_or_default())?;
    let id = MessageId::generate();
    let header_message_id = format!("<{id}@{hostname}>");
    let subject = request.subject.unwrap_or_default();
    let composed = compose(&ComposeRequest {
        from: request.from.as_deref().unwrap_or(""),
        to: &request.to,
        cc: &request.cc,
        bcc: &request.bcc,
        reply_to: request.reply_to.as_deref(),
        subject: &subject,
        text: request.text.as_deref(),
        html: request.html.as_deref(),
        headers: &request.headers,
        attachments: &attachments,
        message_id: &header_message_id,
        date: OffsetDateTime::now_utc(),
    })
    .map_err(|error| ApiError::field(error.field(), error.reason()))?;
    Ok(Submission {
        account,
        id,
        envelope_from: composed.envelope_from,
        recipients: composed.recipients,
        message: composed.message,
        subject: Some(subject).filter(|s| !s.is_empty()),
        header_message_id,
        tags,
        metadata,
        needs_smtputf8: composed.needs_smtputf8,
        track_opens: request.track_opens,
        track_clicks: request.track_clicks,
        list_unsubscribe: request.list_unsubscribe,
    })
}
