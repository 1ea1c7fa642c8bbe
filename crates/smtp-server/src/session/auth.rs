//! AUTH PLAIN and LOGIN (RFC 4954, RFC 4616), only over TLS unless the
//! operator allows otherwise, with failed attempts throttled per client IP
//! and per username. Every failed login is logged at WARN with the client's
//! IP, in the form the fail2ban filter of docs/operations.md matches:
//! `smtp auth failed ip=192.0.2.1 user="…"` (the username escaped).

use super::{Flow, Session};
use crate::handler::{AuthOutcome, Handler};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use carteiro_mail::{LogSafe, Reply};
use std::io;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};

/// Each failed attempt is answered this much later per earlier failure, up to
/// the cap: a password guesser gets slower and slower.
const FAILURE_DELAY_STEP: Duration = Duration::from_millis(500);
const FAILURE_DELAY_MAX: Duration = Duration::from_secs(5);

/// Why no username and password came out of the exchange.
enum SaslStop {
    Cancelled,
    Invalid,
    Closed,
}

impl<H: Handler, S: AsyncRead + AsyncWrite + Unpin + Send> Session<H, S> {
    pub(super) async fn auth(&mut self, mechanism: u64, initial: &str) -> io::Result<Flow> {
        if self.helo.is_none() || !self.esmtp {
            self.reply(&Reply::NEED_HELO);
            return Ok(Flow::Continue);
        }
        if !self.tls_active() && !self.ctx.config.smtp.allow_auth_without_tls {
            self.reply(&Reply::TLS_REQUIRED);
            return Ok(Flow::Continue);
        }
        if self.auth.is_some() {
            self.reply(&Reply::ALREADY_AUTHENTICATED);
            return Ok(Flow::Continue);
        }
        if self.tx.is_some() {
            self.reply(&Reply::NESTED_MAIL.with_text("AUTH not allowed during a mail transaction"));
            return Ok(Flow::Continue);
        }
        let ip = self.peer.ip();
        if self.ctx.auth_throttle.is_blocked(ip, Instant::now()) {
            self.reply(&Reply::AUTH_THROTTLED);
            return Ok(Flow::Close);
        }
        let credentials = match mechanism {
            smtp_proto::AUTH_PLAIN => self.plain(initial).await?,
            smtp_proto::AUTH_LOGIN => self.login(initial).await?,
            _ => {
                self.reply(&Reply::AUTH_MECH_UNSUPPORTED);
                return Ok(Flow::Continue);
            }
        };
        let (username, password) = match credentials {
            Ok(pair) => pair,
            Err(SaslStop::Cancelled) => {
                self.reply(&Reply::AUTH_CANCELLED);
                return Ok(Flow::Continue);
            }
            Err(SaslStop::Invalid) => {
                self.reply(&Reply::AUTH_BAD_ENCODING);
                return Ok(Flow::Continue);
            }
            Err(SaslStop::Closed) => return Ok(Flow::Close),
        };
        let user = LogSafe(&username);
        if let Err(wait) = self.ctx.user_throttle.check(&username, ip, Instant::now()) {
            // Not checked, so neither a failure nor a guess: its own line.
            tracing::warn!(%ip, user = ?user, retry_in_s = wait.as_secs_f64().ceil() as u64,
                "smtp auth refused, username throttled");
            self.reply(&Reply::AUTH_THROTTLED);
            return Ok(Flow::Continue);
        }
        match self.ctx.handler.authenticate(&username, &password).await {
            AuthOutcome::Accepted(account) => {
                self.ctx.auth_throttle.record_success(ip);
                self.ctx
                    .user_throttle
                    .record_success(&username, ip, Instant::now());
                tracing::info!(%ip, user = ?user, account = %LogSafe(&account.name), "smtp login");
                self.auth = Some((username, account));
                self.reply(&Reply::AUTH_OK);
            }
            AuthOutcome::Rejected => {
                let now = Instant::now();
                let failures = self.ctx.auth_throttle.record_failure(ip, now);
                let blocked = self.ctx.user_throttle.record_failure(&username, now);
                tracing::warn!(%ip, user = ?user, failures,
                    user_blocked_s = blocked.as_secs(), "smtp auth failed");
                let delay = (FAILURE_DELAY_STEP * failures).min(FAILURE_DELAY_MAX);
                tokio::time::sleep(delay).await;
                self.reply(&Reply::AUTH_FAILED);
            }
            AuthOutcome::Unavailable => self.reply(&Reply::AUTH_UNAVAILABLE),
        }
        Ok(Flow::Continue)
    }

    /// RFC 4616: `[authzid] NUL authcid NUL passwd`, base64.
    async fn plain(&mut self, initial: &str) -> io::Result<Result<(String, String), SaslStop>> {
        let data = if initial.is_empty() {
            match self.sasl_prompt("").await? {
                Ok(data) => data,
                Err(stop) => return Ok(Err(stop)),
            }
        } else {
            match decode(initial) {
                Ok(data) => data,
                Err(stop) => return Ok(Err(stop)),
            }
        };
        let mut parts = data.split(|&b| b == 0);
        let (Some(_authzid), Some(user), Some(pass), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(Err(SaslStop::Invalid));
        };
        match (
            String::from_utf8(user.to_vec()),
            String::from_utf8(pass.to_vec()),
        ) {
            (Ok(user), Ok(pass)) => Ok(Ok((user, pass))),
            _ => Ok(Err(SaslStop::Invalid)),
        }
    }

    /// The LOGIN mechanism: username and password in two prompts.
    async fn login(&mut self, initial: &str) -> io::Result<Result<(String, String), SaslStop>> {
        let user = if initial.is_empty() {
            match self.sasl_prompt("VXNlcm5hbWU6").await? {
                Ok(data) => data,
                Err(stop) => return Ok(Err(stop)),
            }
        } else {
            match decode(initial) {
                Ok(data) => data,
                Err(stop) => return Ok(Err(stop)),
            }
        };
        let pass = match self.sasl_prompt("UGFzc3dvcmQ6").await? {
            Ok(data) => data,
            Err(stop) => return Ok(Err(stop)),
        };
        match (String::from_utf8(user), String::from_utf8(pass)) {
            (Ok(user), Ok(pass)) => Ok(Ok((user, pass))),
            _ => Ok(Err(SaslStop::Invalid)),
        }
    }

    /// Sends a `334` challenge and reads the client's base64 answer.
    async fn sasl_prompt(&mut self, challenge: &str) -> io::Result<Result<Vec<u8>, SaslStop>> {
        self.reply(&Reply::new(334, None, challenge.to_string()));
        let Some(line) = self.next_line(false).await? else {
            return Ok(Err(SaslStop::Closed));
        };
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text == "*" {
            return Ok(Err(SaslStop::Cancelled));
        }
        Ok(decode(text))
    }
}

fn decode(text: &str) -> Result<Vec<u8>, SaslStop> {
    // "=" is an empty initial response (RFC 4954 §4).
    if text == "=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(text.trim()).map_err(|_| SaslStop::Invalid)
}
