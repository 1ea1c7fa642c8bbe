//! API key authentication: an extractor that turns
//! `Authorization: Bearer <key>` into the key's account, or refuses the
//! request with `401`. It decides only who is calling, not what they may do,
//! and never logs the key.
//!
//! A client IP that sent too many wrong keys gets `429` before its key is
//! looked at (`throttle`). Every wrong key is logged at WARN with the
//! client's IP, in the form the fail2ban filter of docs/operations.md
//! matches: `api auth failed ip=192.0.2.1 reason="unknown_key"`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use crate::ApiState;
use crate::error::ApiError;
use crate::submit::{AccountRef, Submitter};
use crate::throttle::KeyThrottle;

/// The account of the request's API key.
#[derive(Clone, Debug)]
pub(crate) struct Caller(pub(crate) AccountRef);

impl<S: Submitter> FromRequestParts<ApiState<S>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState<S>,
    ) -> Result<Caller, ApiError> {
        let ip = client_ip(parts);
        let throttle = parts.extensions.get::<Arc<KeyThrottle>>().cloned();
        if let Some(throttle) = &throttle
            && let Err(wait) = throttle.check(ip, Instant::now())
        {
            return Err(ApiError::TooManyFailures {
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            });
        }
        let failed = |reason: &'static str| {
            let count = throttle
                .as_ref()
                .map(|t| t.record_failure(ip, Instant::now()));
            tracing::warn!(%ip, reason, failures = count.as_ref().map_or(0, |c| c.count), "api auth failed");
            if count.is_some_and(|c| c.now_blocked) {
                tracing::warn!(%ip, "api auth throttled: too many wrong keys, answering 429 until the window ends");
            }
            ApiError::InvalidKey
        };
        let key = match bearer_token(parts) {
            Ok(key) => key,
            Err(ApiError::InvalidKey) => return Err(failed("malformed_header")),
            Err(other) => return Err(other),
        };
        match state.store.verify_api_key(key).await {
            Ok(Some(account)) => Ok(Caller(AccountRef {
                id: account.id,
                name: account.name.into(),
            })),
            Ok(None) => Err(failed("unknown_key")),
            Err(error) => Err(ApiError::store("checking an api key", error)),
        }
    }
}

/// The peer of the connection (`ConnectInfo`, set by [`crate::serve`]); an
/// in-process request without one counts as `0.0.0.0`.
fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| {
            c.0.ip().to_canonical()
        })
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
