//! `GET /api/v1/messages/{id}` (one message with its events) and
//! `GET /api/v1/messages` (search, newest first, by pages). Reads only the
//! caller's account: another account's id is answered like an unknown one.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use carteiro_mail::MessageId;
use carteiro_store::{MessageFilter, RECIPIENT_STATES};
use serde_json::{Value, json};

use crate::ApiState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::{Params, parse_limit, parse_time};
use crate::submit::Submitter;
use crate::wire::ApiMessage;

/// The parameters of the message search.
pub(crate) const SEARCH_PARAMETERS: [&str; 10] = [
    "recipient",
    "sender",
    "status",
    "tag",
    "subject",
    "message_id",
    "since",
    "until",
    "limit",
    "cursor",
];

/// `GET /api/v1/messages/{id}`.
pub(crate) async fn message<S: Submitter>(
    State(state): State<ApiState<S>>,
    Caller(account): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ApiMessage>, ApiError> {
    // Ids are case-insensitive with Crockford's aliases (O for 0, I and L for
    // 1); the store holds the canonical form. Not an id: not found.
    let id = id
        .ok()
        .and_then(|Path(id)| id.parse::<MessageId>().ok())
        .ok_or(ApiError::MessageNotFound)?;
    let record = state
        .store
        .message(account.id, &id.to_string())
        .await
        .map_err(|error| ApiError::store("reading a message", error))?
        .ok_or(ApiError::MessageNotFound)?;
    Ok(Json(ApiMessage::with_events(&record)))
}

/// `GET /api/v1/messages?recipient=&sender=&status=&tag=&subject=&message_id=&since=&until=&limit=&cursor=`:
/// `{"messages": [...], "next_cursor": "<id>" | null}`.
pub(crate) async fn search<S: Submitter>(
    State(state): State<ApiState<S>>,
    Caller(account): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(pairs) =
        query.map_err(|rejection| ApiError::parameter("query", rejection.body_text()))?;
    let params = Params::new(pairs, &SEARCH_PARAMETERS, &[])?;
    let (filter, limit, cursor) = search_request(&params)?;
    // One more than asked tells whether another page follows.
    let mut messages = state
        .store
        .search_messages(account.id, &filter, limit + 1, cursor.as_deref())
        .await
        .map_err(|error| ApiError::store("searching messages", error))?;
    let next_cursor = if messages.len() > limit as usize {
        messages.truncate(limit as usize);
        messages.last().map(|m| m.id.clone())
    } else {
        None
    };
    let messages: Vec<ApiMessage> = messages.iter().map(ApiMessage::without_events).collect();
    Ok(Json(
        json!({"messages": messages, "next_cursor": next_cursor}),
    ))
}

/// The store's filter, the page size and the cursor (a message id) of a search.
pub(crate) fn search_request(
    params: &Params,
) -> Result<(MessageFilter, u32, Option<String>), ApiError> {
    let status = params.get("status").map(str::to_owned);
    if let Some(status) = &status
        && !RECIPIENT_STATES.contains(&status.as_str())
    {
        return Err(ApiError::parameter(
            "status",
            format!("expected one of: {}", RECIPIENT_STATES.join(", ")),
        ));
    }
    let filter = MessageFilter {
        recipient: params.get("recipient").map(str::to_owned),
        sender: params.get("sender").map(str::to_owned),
        status,
        tag: params.get("tag").map(str::to_owned),
        subject: params.get("subject").map(str::to_owned),
        header_message_id: params.get("message_id").map(str::to_owned),
        since_ms: params
            .get("since")
            .map(|v| parse_time("since", v))
            .transpose()?,
        until_ms: params
            .get("until")
            .map(|v| parse_time("until", v))
            .transpose()?,
    };
    let limit = parse_limit(params.get("limit"))?;
    let cursor = params
        .get("cursor")
        .map(|cursor| {
            cursor
                .parse::<MessageId>()
                .map(|id| id.to_string())
                .map_err(|_| ApiError::parameter("cursor", "not a message id"))
        })
        .transpose()?;
    Ok((filter, limit, cursor))
}
