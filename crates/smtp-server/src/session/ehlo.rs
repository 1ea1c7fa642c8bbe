//! EHLO and HELO: the greeting exchange and the extensions offered.

use super::{Flow, Session};
use crate::handler::Handler;
use carteiro_mail::Reply;
use tokio::io::{AsyncRead, AsyncWrite};

impl<H: Handler, S: AsyncRead + AsyncWrite + Unpin + Send> Session<H, S> {
    pub(super) fn ehlo(&mut self, host: &str, extended: bool) -> Flow {
        // A new greeting resets the transaction (RFC 5321 §4.1.4).
        self.tx = None;
        self.helo = Some(host.to_string());
        self.esmtp = extended;
        let config = &self.ctx.config;
        let mut text = format!("{} greets {} [{}]", config.hostname, host, self.peer.ip());
        if extended {
            text.push_str("\nPIPELINING");
            text.push_str(&format!("\nSIZE {}", config.smtp.max_message_size));
            text.push_str("\n8BITMIME\nSMTPUTF8\nENHANCEDSTATUSCODES\nCHUNKING\nDSN");
            if self.ctx.tls.is_some() && !self.tls_active() {
                text.push_str("\nSTARTTLS");
            }
            if self.auth.is_none() && (self.tls_active() || config.smtp.allow_auth_without_tls) {
                text.push_str("\nAUTH PLAIN LOGIN");
            }
            text.push_str("\nHELP");
        }
        self.reply(&Reply::new(250, None, text));
        Flow::Continue
    }
}
