//! API key authentication: an extractor that turns
//! `Authorization: Bearer <key>` into the key's account, or refuses the
//! request with `401`. It decides only who is calling, not what they may do,
//! and never logs the key.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::ApiState;
use crate::error::ApiError;
use crate::submit::{AccountRef, Submitter};

/// The account of the request's API key.
#[derive(Clone, Debug)]
pub(crate) struct Caller(pub(crate) AccountRef);

impl<S: Submitter> FromRequestParts<ApiState<S>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState<S>,
    ) -> Result<Caller, ApiError> {
        let key = bearer_token(parts)?;
        match state.store.verify_api_key(key).await {
            Ok(Some(account)) => Ok(Caller(AccountRef {
                id: account.id,
                name: account.name.into(),
            })),
            Ok(None) => Err(ApiError::InvalidKey),
            Err(error) => Err(ApiError::internal("checking an api key", error)),
        }
    }
}

/// The token of an `Authorization: Bearer` header (scheme case-insensitive,
/// RFC 9110 §11.1). No header, or another scheme, means no key was given.
fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::MissingKey);
    };
    let value = value.to_str().map_err(|_| ApiError::InvalidKey)?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingKey);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::MissingKey);
    }
    Ok(token)
}
