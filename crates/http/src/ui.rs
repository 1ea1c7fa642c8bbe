//! The web dashboard under `/ui/`: server-rendered pages (askama templates in
//! `crates/http/templates/ui/`) with a small script of our own and a vendored
//! chart library (uPlot), every file served from the binary (`/ui/static/`),
//! nothing fetched from elsewhere.
//!
//! People sign in at `/ui/login` as dashboard users (`carteiro user add`);
//! their sessions live in the store, so any node of a cluster serves them.
//! `session` turns the cookie into a [`session::Signed`] user and checks every
//! form's CSRF token, `scope` picks the account a page shows (an admin
//! switches with `?account=`; a member or viewer sees only their own), `page`
//! renders a template inside the common layout and `error` answers failures
//! as pages. One module per page group: `login` (sign in and out),
//! `overview` (charts from the statistics rollups), `messages` (search and a
//! message's timeline, with retry and delete while it is queued here),
//! `queue` (this node's queue for the account), `domains` (sending domains,
//! their records and the live DNS check), `keys` (API keys), `logins` (SMTP logins),
//! `webhooks` (endpoints and their state), `suppressions` (the suppression
//! list and an address's audit history), `users` (dashboard users, for
//! admins); `assets` serves the static files and `url` escapes query values.
//!
//! What a role may do is decided here: a viewer's form posts are refused with
//! `403`, another account's message is `404` like a missing one.

mod assets;
mod domains;
mod error;
mod headers;
mod keys;
mod login;
mod logins;
mod messages;
mod overview;
mod page;
mod queue;
mod scope;
mod session;
mod suppressions;
mod url;
mod users;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};

use crate::ApiState;
use crate::submit::Submitter;

use login::LoginThrottles;

/// The largest form post the dashboard reads.
pub(crate) const FORM_LIMIT: usize = 64 * 1024;

/// How long a session lasts after its last use.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The dashboard's routes (merged into the API's router; the throttles of
/// wrong logins travel as an extension).
pub(crate) fn routes<S: Submitter>(config: &carteiro_config::Config) -> Router<ApiState<S>> {
    let throttles = Arc::new(LoginThrottles::new(
        config.http.auth_max_failures,
        config.http.auth_failure_window,
    ));
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(overview::page::<S>))
        .route("/ui/login", get(login::form).post(login::submit::<S>))
        .route("/ui/logout", post(login::logout::<S>))
        .route("/ui/messages", get(messages::search::<S>))
        .route("/ui/messages/{id}", get(messages::one::<S>))
        .route("/ui/queue", get(queue::list::<S>))
        .route("/ui/queue/retry", post(queue::retry::<S>))
        .route("/ui/queue/delete", post(queue::delete::<S>))
        .route(
            "/ui/domains",
            get(domains::list::<S>).post(domains::add::<S>),
        )
        .route("/ui/domains/{name}", get(domains::one::<S>))
        .route("/ui/domains/{name}/rotate", post(domains::rotate::<S>))
        .route("/ui/domains/{name}/activate", post(domains::activate::<S>))
        .route(
            "/ui/domains/{name}/forget-retired",
            post(domains::forget_retired::<S>),
        )
        .route("/ui/keys", get(keys::list::<S>).post(keys::create::<S>))
        .route("/ui/keys/revoke", post(keys::revoke::<S>))
        .route(
            "/ui/suppressions",
            get(suppressions::list::<S>).post(suppressions::add::<S>),
        )
        .route("/ui/suppressions/remove", post(suppressions::remove::<S>))
        .route("/ui/logins", get(logins::list::<S>).post(logins::add::<S>))
        .route("/ui/logins/remove", post(logins::remove::<S>))
        .route(
            "/ui/webhooks",
            get(webhooks::list::<S>).post(webhooks::add::<S>),
        )
        .route("/ui/webhooks/delete", post(webhooks::delete::<S>))
        .route("/ui/webhooks/test", post(webhooks::test::<S>))
        .route("/ui/users", get(users::list::<S>).post(users::add::<S>))
        .route("/ui/users/remove", post(users::remove::<S>))
        .route("/ui/static/{file}", get(assets::file))
        .route("/ui/{*rest}", get(error::not_found).post(error::not_found))
        .layer(axum::Extension(throttles))
}
