//! The caller's suppression list: `GET /api/v1/suppressions` (by address,
//! by pages), `GET /api/v1/suppressions/{address}`, `POST` to add and
//! `DELETE /api/v1/suppressions/{address}` to remove. Every change is
//! audited in the store with the actor "api".
//!
//! API users may add only `manual` and `unsubscribe` entries: the other
//! reasons (hard bounces, complaints) are facts Carteiro observes, and a
//! client claiming them would make the list lie. This module does not check
//! sends against the list (the binary does).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use carteiro_store::{StoreError, Suppression, SuppressionReason};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::{Params, parse_limit};
use crate::submit::Submitter;
use crate::wire::format_timestamp;

/// Who the audit log names for changes made here.
const ACTOR: &str = "api";

/// The parameters of the listing.
const LIST_PARAMETERS: [&str; 3] = ["reason", "limit", "cursor"];

/// The fields of `POST /api/v1/suppressions`.
const FIELDS: [&str; 3] = ["address", "reason", "detail"];

/// The reasons an API user may give.
const CLIENT_REASONS: [SuppressionReason; 2] =
    [SuppressionReason::Manual, SuppressionReason::Unsubscribe];

/// Longest `detail`, in characters.
const MAX_DETAIL_CHARS: usize = 1000;

/// Largest request body of `POST /api/v1/suppressions`: three short fields
/// need far less than the message-sized limit of the other routes.
pub(crate) const BODY_LIMIT: usize = 16 * 1024;

/// A suppression list entry on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiSuppression {
    /// The address, ASCII letters lowercased (the form it is compared in).
    pub address: String,
    /// `hard_bounce`, `complaint`, `unsubscribe` or `manual`.
    pub reason: SuppressionReason,
    /// The message whose bounce, complaint or unsubscribe added it.
    pub source_message_id: Option<String>,
    /// The remote reply, the feedback type, or a note.
    pub detail: Option<String>,
    /// When it was added, RFC 3339 UTC with milliseconds.
    pub created_at: String,
}

impl From<&Suppression> for ApiSuppression {
    fn from(entry: &Suppression) -> ApiSuppression {
        ApiSuppression {
            address: entry.address.clone(),
            reason: entry.reason,
            source_message_id: entry.source_message_id.clone(),
            detail: entry.detail.clone(),
            created_at: format_timestamp(entry.created_at_ms),
        }
    }
}

/// `GET /api/v1/suppressions?reason=&limit=&cursor=`:
/// `{"suppressions": [...], "next_cursor": "<address>" | null}`, by address.
pub(crate) async fn list<S: Submitter>(
    State(state): State<ApiState<S>>,
    Caller(account): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(pairs) =
        query.map_err(|rejection| ApiError::parameter("query", rejection.body_text()))?;
    let params = Params::new(pairs, &LIST_PARAMETERS, &[])?;
    let reason = params
        .get("reason")
        .map(|value| {
            value.parse::<SuppressionReason>().map_err(|_| {
                ApiError::parameter("reason", format!("expected one of: {}", reason_names()))
            })
        })
        .transpose()?;
    let limit = parse_limit(params.get("limit"))?;
    // One more than asked tells whether another page follows.
    let mut entries = state
        .store
        .list_suppressions(account.id, reason, params.get("cursor"), limit + 1)
        .await
        .map_err(|error| ApiError::store("listing suppressions", error))?;
    let next_cursor = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.address.clone())
    } else {
        None
    };
    let entries: Vec<ApiSuppression> = entries.iter().map(ApiSuppression::from).collect();
    Ok(Json(
        json!({"suppressions": entries, "next_cursor": next_cursor}),
    ))
}

/// `GET /api/v1/suppressions/{address}`: the entry, or 404.
pub(crate) async fn one<S: Submitter>(
    State(state): State<ApiState<S>>,
    Caller(account): Caller,
    address: Result<Path<String>, PathRejection>,
) -> Result<Json<ApiSuppression>, ApiError> {
    let Ok(Path(address)) = address else {
        return Err(ApiError::SuppressionNotFound);
    };
    let entry = state
        .store
        .suppression(account.id, &address)
        .await
        .map_err(|error| ApiError::store("reading a suppression", error))?
        .ok_or(ApiError::SuppressionNotFound)?;
    Ok(Json(ApiSuppression::from(&entry)))
}

/// `DELETE /api/v1/suppressions/{address}`: `{"removed": true}`, or 404.
pub(crate) async fn remove<S: Submitter>(
    State(state): State<ApiState<S>>,
    Caller(account): Caller,
    address: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Ok(Path(address)) = address else {
        return Err(ApiError::SuppressionNotFound);
    };
    let removed = state
        .store
        .remove_suppression(account.id, &address, ACTOR)
        .await
        .map_err(|error| ApiError::store("removing a suppression", error))?;
    if !removed {
        return Err(ApiError::SuppressionNotFound);
    }
    state.submitter.suppressions_changed().await;
    Ok(Json(json!({"removed": true})))
}

/// `POST /api/v1/suppressions` with `{"address", "reason", "detail"}`:
/// `201` and the entry, or `200` and the entry as it was when the address
/// was there already (its first reason stays).
pub(crate) async fn add<S: Submitter>(
    State(state): State<ApiState<S>>,
    Caller(account): Caller,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> Result<(StatusCode, Json<ApiSuppression>), ApiError> {
    let Json(body) = body.map_err(body_error)?;
    let request = AddRequest::check(&body)?;
    // The entry is read back after the add; should another process remove
    // it in between, adding once more gives the caller a true answer.
    for _ in 0..2 {
        let added = state
            .store
            .add_suppression(
                account.id,
                request.address,
                request.reason,
                None,
                request.detail,
                ACTOR,
            )
            .await
            .map_err(|error| match error {
                StoreError::InvalidAddress(_) => ApiError::field(
                    "address",
                    "not a valid address: use local@domain, at most 254 bytes",
                ),
                error => ApiError::store("adding a suppression", error),
            })?;
        let entry = state
            .store
            .suppression(account.id, request.address)
            .await
            .map_err(|error| ApiError::store("reading a suppression", error))?;
        if let Some(entry) = entry {
            if added {
                state.submitter.suppressions_changed().await;
            }
            let status = if added {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            return Ok((status, Json(ApiSuppression::from(&entry))));
        }
    }
    Err(ApiError::internal(
        "adding a suppression",
        "the entry was removed as soon as it was added, twice",
    ))
}

/// The checked fields of an add request.
#[derive(Debug, PartialEq)]
struct AddRequest<'a> {
    address: &'a str,
    reason: SuppressionReason,
    detail: Option<&'a str>,
}

impl<'a> AddRequest<'a> {
    /// Checks the body's fields, naming the first one refused. Absent and
    /// `null` are the same.
    fn check(body: &'a Map<String, Value>) -> Result<AddRequest<'a>, ApiError> {
        if let Some(field) = body.keys().find(|key| !FIELDS.contains(&key.as_str())) {
            return Err(ApiError::UnknownField {
                field: field.clone(),
                message: format!(
                    "not a field of a suppression; expected one of: {}",
                    FIELDS.join(", ")
                ),
            });
        }
        let address = match string_field(body, "address")? {
            Some(address) => address,
            None => return Err(ApiError::field("address", "required")),
        };
        let reason = match string_field(body, "reason")? {
            None => SuppressionReason::Manual,
            Some(name) => match name.parse::<SuppressionReason>() {
                Ok(reason) if CLIENT_REASONS.contains(&reason) => reason,
                Ok(reason) => {
                    return Err(ApiError::field(
                        "reason",
                        format!(
                            "{reason:?} entries are added by Carteiro itself; \
                             use \"manual\" or \"unsubscribe\"",
                            reason = reason.as_str()
                        ),
                    ));
                }
                Err(_) => {
                    return Err(ApiError::field(
                        "reason",
                        format!("unknown reason {name:?}; use \"manual\" or \"unsubscribe\""),
                    ));
                }
            },
        };
        let detail = string_field(body, "detail")?;
        if let Some(detail) = detail
            && detail.chars().count() > MAX_DETAIL_CHARS
        {
            return Err(ApiError::field(
                "detail",
                format!("at most {MAX_DETAIL_CHARS} characters"),
            ));
        }
        Ok(AddRequest {
            address,
            reason,
            detail,
        })
    }
}

/// A field that must be a string when present.
fn string_field<'a>(body: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(ApiError::field(name, "must be a string")),
    }
}

/// The answer for a body that is not a JSON object.
fn body_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        rejection if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge {
                limit: BODY_LIMIT as u64,
            }
        }
        rejection => ApiError::MalformedJson(rejection.body_text()),
    }
}

/// Every reason's name, for error messages.
fn reason_names() -> String {
    SuppressionReason::ALL
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: Value) -> Result<(String, SuppressionReason, Option<String>), ApiError> {
        let Value::Object(body) = body else {
            panic!("not an object");
        };
        AddRequest::check(&body)
            .map(|r| (r.address.to_owned(), r.reason, r.detail.map(str::to_owned)))
    }

    fn refused_field(body: Value) -> String {
        match check(body) {
            Err(ApiError::InvalidField { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn add_requests_default_to_manual() {
        assert_eq!(
            check(json!({"address": "a@b.c"})),
            Ok(("a@b.c".to_owned(), SuppressionReason::Manual, None))
        );
        assert_eq!(
            check(json!({"address": "a@b.c", "reason": null, "detail": "asked by phone"})),
            Ok((
                "a@b.c".to_owned(),
                SuppressionReason::Manual,
                Some("asked by phone".to_owned())
            ))
        );
        assert_eq!(
            check(json!({"address": "a@b.c", "reason": "unsubscribe"})),
            Ok(("a@b.c".to_owned(), SuppressionReason::Unsubscribe, None))
        );
    }

    #[test]
    fn add_requests_name_the_refused_field() {
        assert_eq!(refused_field(json!({})), "address");
        assert_eq!(refused_field(json!({"address": null})), "address");
        assert_eq!(refused_field(json!({"address": ["a@b.c"]})), "address");
        for reason in [
            json!("hard_bounce"),
            json!("complaint"),
            json!("spam"),
            json!(1),
        ] {
            assert_eq!(
                refused_field(json!({"address": "a@b.c", "reason": reason})),
                "reason"
            );
        }
        let long = "x".repeat(MAX_DETAIL_CHARS + 1);
        assert_eq!(
            refused_field(json!({"address": "a@b.c", "detail": long})),
            "detail"
        );
        assert_eq!(
            refused_field(json!({"address": "a@b.c", "detail": {"x": 1}})),
            "detail"
        );
        let unknown = check(json!({"address": "a@b.c", "reasons": "manual"}));
        assert!(
            matches!(unknown, Err(ApiError::UnknownField { ref field, .. }) if field == "reasons"),
            "{unknown:?}"
        );
    }
}
