//! `GET /api/v1/events?since=&type=&limit=&cursor=`: the caller's event log,
//! oldest first, by pages. The cursor is an event id: a client following
//! the log passes the id of the last event it has seen.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use carteiro_store::EventKind;
use serde_json::{Value, json};

use crate::ApiState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::{Params, parse_limit, parse_time};
use crate::submit::Submitter;
use crate::wire::ApiEvent;

/// The parameters of the event log; `type` may be repeated.
const EVENT_PARAMETERS: [&str; 4] = ["since", "type", "limit", "cursor"];

/// `GET /api/v1/events`: `{"events": [...], "next_cursor": "<id>" | null}`;
/// `null` when no more events are there for now.
pub(crate) async fn events<S: Submitter>(
    State(state): State<ApiState<S>>,
    Caller(account): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(pairs) =
        query.map_err(|rejection| ApiError::parameter("query", rejection.body_text()))?;
    let params = Params::new(pairs, &EVENT_PARAMETERS, &["type"])?;
    let since = params
        .get("since")
        .map(|v| parse_time("since", v))
        .transpose()?;
    let kinds = parse_kinds(&params)?;
    let limit = parse_limit(params.get("limit"))?;
    let after = params
        .get("cursor")
        .map(|cursor| {
            cursor
                .parse::<i64>()
                .ok()
                .filter(|id| *id >= 0)
                .ok_or_else(|| ApiError::parameter("cursor", "not an event id"))
        })
        .transpose()?;
    let mut events = state
        .store
        .events(account.id, since, &kinds, after, limit + 1)
        .await
        .map_err(|error| ApiError::store("reading events", error))?;
    let next_cursor = if events.len() > limit as usize {
        events.truncate(limit as usize);
        events.last().map(|e| e.id.to_string())
    } else {
        None
    };
    let events: Vec<ApiEvent> = events.iter().map(ApiEvent::from).collect();
    Ok(Json(json!({"events": events, "next_cursor": next_cursor})))
}

/// `type`: event types separated by commas, the parameter possibly repeated;
/// none means every type.
fn parse_kinds(params: &Params) -> Result<Vec<EventKind>, ApiError> {
    let mut kinds = Vec::new();
    for name in params.all("type").flat_map(|v| v.split(',')).map(str::trim) {
        if name.is_empty() {
            continue;
        }
        let kind = name.parse::<EventKind>().map_err(|_| {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::parameter(
                "type",
                format!(
                    "unknown event type {name:?}; expected: {}",
                    known.join(", ")
                ),
            )
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}
