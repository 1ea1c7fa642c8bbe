//! A whole SMTP session on arbitrary client bytes: the input is sent over an
//! in-memory stream, then the client closes its side. The session must end
//! by itself, without panicking, and everything it wrote must be well-formed
//! replies: `DDD` then `-` (more lines follow, same code) or ` ` (last line),
//! CRLF-terminated, with no CR or LF inside a line.
//!
//! The first input byte picks the listener role and whether the client is
//! on a trusted network, so relaying, AUTH and DATA/BDAT are all reached.

#![no_main]

use carteiro_config::Config;
use carteiro_mail::Reply;
use carteiro_smtp_server::{
    AccountRef, AuthOutcome, Handler, IncomingMessage, Role, ServerContext, run_session,
};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::sync::watch;

/// Accepts one login, one local address and every message, like the unit
/// tests' handler.
struct FuzzHandler;

impl Handler for FuzzHandler {
    async fn authenticate(&self, username: &str, password: &str) -> AuthOutcome {
        match (username, password) {
            ("app", "secret") => AuthOutcome::Accepted(AccountRef {
                id: 2,
                name: "app".into(),
            }),
            ("down", _) => AuthOutcome::Unavailable,
            _ => AuthOutcome::Rejected,
        }
    }

    fn default_account(&self) -> Option<AccountRef> {
        Some(AccountRef {
            id: 1,
            name: "default".into(),
        })
    }

    fn local_recipient(&self, address: &str) -> Option<Result<(), Reply>> {
        if !address.ends_with("@relay.test") {
            None
        } else if address.starts_with("bounces@") {
            Some(Ok(()))
        } else {
            Some(Err(Reply::NO_SUCH_USER))
        }
    }

    async fn accept_message(&self, message: IncomingMessage) -> Result<(), Reply> {
        // The body the handler gets starts with our Received header and
        // stays within the size limit plus that header.
        assert!(message.trace_len <= message.body.len());
        assert!(message.body.starts_with(b"Received: "));
        if message.envelope.sender.starts_with("full@") {
            return Err(Reply::SPOOL_ERROR);
        }
        Ok(())
    }
}

fn config(trusted: bool) -> Config {
    let mut config = Config {
        hostname: "relay.test".into(),
        ..Config::default()
    };
    let smtp = &mut config.smtp;
    smtp.max_recipients = 3;
    smtp.max_message_size = 2000;
    smtp.max_line_length = 200;
    smtp.max_commands_before_mail = 10;
    smtp.max_errors = 5;
    smtp.allow_auth_without_tls = true;
    smtp.auth_max_failures = 2;
    smtp.local_domains = vec!["relay.test".into()];
    if trusted {
        smtp.trusted_networks = vec!["127.0.0.0/8".parse().expect("network")];
    }
    config
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, input)) = data.split_first() else {
        return;
    };
    // Implicit TLS (submissions) needs a certificate and a handshake: it
    // is not this target's business.
    let role = if choice & 1 == 0 {
        Role::Relay
    } else {
        Role::Submission
    };
    let trusted = choice & 0x80 != 0;
    let out = runtime().block_on(converse(config(trusted), role, input));
    check_replies(&out);
});

/// Runs a session on `input`, then end of input; returns all it wrote.
async fn converse(config: Config, role: Role, input: &[u8]) -> Vec<u8> {
    let ctx = ServerContext::new(Arc::new(config), None, FuzzHandler);
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    let session = run_session(ctx, server, peer, role, stop_rx);
    let (mut read_half, mut write_half) = tokio::io::split(&mut client);
    // Write and read at once: a long input can draw more replies than the
    // pipe holds.
    let write = async move {
        // The session may close first (QUIT, too many errors): a failed
        // write is then expected.
        let _ = write_half.write_all(input).await;
        let _ = write_half.shutdown().await;
    };
    let read = async move {
        let mut out = Vec::new();
        read_half.read_to_end(&mut out).await.expect("read replies");
        out
    };
    let ((), (), out) = tokio::join!(session, write, read);
    out
}

fn check_replies(out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    assert!(
        out.ends_with(b"\r\n"),
        "output does not end a line: {text:?}"
    );
    let mut continued: Option<&[u8]> = None;
    for line in out.split_inclusive(|&b| b == b'\n') {
        let Some(line) = line.strip_suffix(b"\r\n") else {
            panic!("a reply line ends without CRLF: {text:?}");
        };
        assert!(
            !line.contains(&b'\r') && !line.contains(&b'\n'),
            "CR or LF inside a reply line: {text:?}"
        );
        assert!(line.len() >= 4, "short reply line {line:?} in {text:?}");
        let (code, separator) = (&line[..3], line[3]);
        assert!(code.iter().all(u8::is_ascii_digit), "bad code in {text:?}");
        assert!(
            (b'2'..=b'5').contains(&code[0]),
            "reply code out of range in {text:?}"
        );
        assert!(
            separator == b' ' || separator == b'-',
            "bad separator in {text:?}"
        );
        if let Some(previous) = continued {
            assert_eq!(previous, code, "a multi-line reply changed code: {text:?}");
        }
        continued = (separator == b'-').then_some(code);
    }
    assert!(
        continued.is_none(),
        "the last reply is unfinished: {text:?}"
    );
}
