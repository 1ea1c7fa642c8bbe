//! The outbound SMTP client: one connection to one remote server, able to
//! run many transactions in a row (a pooled connection).
//!
//! It connects, greets, negotiates STARTTLS and AUTH, then runs
//! transactions with PIPELINING and CHUNKING when offered, reporting a
//! reply per recipient: a refused RCPT never aborts the others. It does not
//! choose hosts, retry, or classify replies beyond "positive, transient,
//! permanent"; the pool and the queue do that.

mod command;
mod io;
mod reply;
mod tls;
mod transaction;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use carteiro_mail::Reply;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN, EXT_PIPELINING, EXT_START_TLS, EhloResponse};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::error::{ClientError, Stage};
use io::Conn;

pub use tls::verifying_config as verifying_tls_config;
pub use transaction::SendOutcome;

/// When to use STARTTLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Never, even when offered.
    None,
    /// When offered; a failed handshake is reported so the caller can retry
    /// the host in plain text (`ClientError::is_tls_failure`).
    #[default]
    Opportunistic,
    /// Always; a server without STARTTLS or a failed handshake is an error.
    Required,
    /// Like `Required`, and the certificate must verify for the host name
    /// under [`ClientSettings::trust`] (else the system's trusted CAs).
    Verify,
}

impl TlsPolicy {
    /// Whether the session must be encrypted (no plain-text fallback).
    pub fn requires_tls(self) -> bool {
        matches!(self, TlsPolicy::Required | TlsPolicy::Verify)
    }
}

/// How to talk to a server. Cheap to clone; one value serves a whole pool.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// The name given in EHLO/HELO (our public host name).
    pub helo_name: String,
    pub tls: TlsPolicy,
    /// Username and password for AUTH (smarthosts); `None` for MX delivery.
    pub auth: Option<(String, String)>,
    pub connect_timeout: Duration,
    /// Wait for the greeting and for replies to commands.
    pub command_timeout: Duration,
    /// Wait while sending the message and for the reply that follows it.
    pub data_timeout: Duration,
    /// Use BDAT when the server offers CHUNKING (default true).
    pub prefer_chunking: bool,
    /// Source address to bind before connecting (per-IP sending pools).
    pub local_addr: Option<IpAddr>,
    /// The verifying TLS configuration for [`TlsPolicy::Verify`] (see
    /// [`verifying_tls_config`]); `None`: the system's trusted CAs.
    pub trust: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientSettings {
    /// RFC 5321 §4.5.3.2 timeouts (5 minutes for replies, 10 for the end of
    /// data), opportunistic TLS, chunking preferred.
    fn default() -> Self {
        ClientSettings {
            helo_name: "localhost".into(),
            tls: TlsPolicy::Opportunistic,
            auth: None,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            prefer_chunking: true,
            local_addr: None,
            trust: None,
        }
    }
}

/// How long `quit` waits for the server's goodbye.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// An open SMTP session with one server, ready for transactions.
pub struct SmtpClient {
    conn: Conn,
    server_name: String,
    capabilities: EhloResponse<String>,
    tls_version: Option<String>,
    command_timeout: Duration,
    data_timeout: Duration,
    prefer_chunking: bool,
    /// Output buffer, reused for every command group.
    wbuf: Vec<u8>,
    usable: bool,
    /// A transaction was left open (MAIL accepted, not finished): RSET goes
    /// before the next command, pipelined with it when possible.
    pending_rset: bool,
    /// Counts the connection in [`CONNECTIONS_OUT`] while it lives.
    _open: OpenConnection,
}

/// The gauge of open outbound connections (Prometheus, through the
/// `metrics` facade: a no-op unless the binary installed a recorder).
pub const CONNECTIONS_OUT: &str = "carteiro_connections_out";

/// One open connection in the [`CONNECTIONS_OUT`] gauge, from the TCP
/// connect to the drop (QUIT consumes the client).
struct OpenConnection(metrics::Gauge);

impl OpenConnection {
    fn new() -> OpenConnection {
        let gauge = metrics::gauge!(CONNECTIONS_OUT);
        gauge.increment(1.0);
        OpenConnection(gauge)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

impl std::fmt::Debug for SmtpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpClient")
            .field("addr", &self.conn.addr)
            .field("server_name", &self.server_name)
            .field("tls", &self.tls_version)
            .field("usable", &self.usable)
            .finish_non_exhaustive()
    }
}

impl SmtpClient {
    /// Connects to `addr`, reads the greeting, says EHLO, and negotiates
    /// STARTTLS and AUTH as `settings` ask. `server_name` is the host name
    /// used for SNI and in messages.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        settings: &ClientSettings,
    ) -> Result<SmtpClient, ClientError> {
        let tcp = tokio::time::timeout(settings.connect_timeout, tcp_connect(addr, settings))
            .await
            .map_err(|_| ClientError::Timeout {
                addr,
                stage: Stage::Connect,
            })?
            .map_err(|source| ClientError::Connect { addr, source })?;
        // Every write is a whole batch; Nagle would only hold back the
        // last small segment of a body until the previous one is acked.
        let _ = tcp.set_nodelay(true);

        let mut client = SmtpClient {
            conn: Conn::new(tcp, addr),
            server_name: server_name.to_string(),
            capabilities: EhloResponse::default(),
            tls_version: None,
            command_timeout: settings.command_timeout,
            data_timeout: settings.data_timeout,
            prefer_chunking: settings.prefer_chunking,
            wbuf: Vec::with_capacity(1024),
            usable: true,
            pending_rset: false,
            _open: OpenConnection::new(),
        };

        let greeting = client
            .conn
            .read_reply(Stage::Greeting, settings.command_timeout)
            .await?;
        if !greeting.is_positive() {
            return Err(client.rejected(Stage::Greeting, greeting));
        }
        client.hello(&settings.helo_name).await?;
        client.start_tls(settings).await?;
        if let Some((username, password)) = &settings.auth {
            client
                .authenticate(settings.tls, username, password)
                .await?;
        }
        tracing::debug!(
            %addr,
            server = %client.server_name,
            tls = client.tls_version.as_deref().unwrap_or("none"),
            "smtp session ready"
        );
        Ok(client)
    }

    /// The host name this client was connected with.
    pub fn remote_name(&self) -> &str {
        &self.server_name
    }

    pub fn remote_addr(&self) -> SocketAddr {
        self.conn.addr
    }

    /// Protocol and cipher suite when STARTTLS succeeded, e.g.
    /// `"TLSv1.3 TLS13_AES_256_GCM_SHA384"`.
    pub fn tls_version(&self) -> Option<String> {
        self.tls_version.clone()
    }

    /// The server's EHLO capabilities (after STARTTLS, the second EHLO's).
    pub fn capabilities(&self) -> &EhloResponse<String> {
        &self.capabilities
    }

    /// Whether the session can run another transaction: false after a 421,
    /// a timeout, an I/O or protocol error.
    pub fn is_usable(&self) -> bool {
        self.usable
    }

    /// Ends the open transaction (RSET).
    pub async fn reset(&mut self) -> Result<(), ClientError> {
        self.ensure_usable()?;
        self.pending_rset = false;
        self.simple_command(b"RSET\r\n", Stage::Rset).await
    }

    /// Checks that an idle pooled connection still answers (NOOP).
    pub async fn noop(&mut self) -> Result<(), ClientError> {
        self.ensure_usable()?;
        if self.pending_rset {
            self.pending_rset = false;
            if self.capabilities.has_capability(EXT_PIPELINING) {
                // One round trip for both; the RSET reply is read first.
                self.wbuf.clear();
                self.wbuf.extend_from_slice(b"RSET\r\nNOOP\r\n");
                let result = self.pipelined_pair(Stage::Rset, Stage::Noop).await;
                return self.keep_usable_if_ok(result);
            }
            self.simple_command(b"RSET\r\n", Stage::Rset).await?;
        }
        self.simple_command(b"NOOP\r\n", Stage::Noop).await
    }

    /// Says QUIT and closes, waiting briefly for the reply; errors are
    /// ignored (the connection is going away anyway).
    pub async fn quit(mut self) {
        let wait = self.command_timeout.min(QUIT_TIMEOUT);
        if self.usable {
            let said = self.conn.write_all(b"QUIT\r\n", Stage::Quit, wait).await;
            if said.is_ok() {
                let _ = self.conn.read_reply(Stage::Quit, wait).await;
            }
        }
        let _ = tokio::time::timeout(wait, self.conn.stream.shutdown()).await;
    }

    fn ensure_usable(&self) -> Result<(), ClientError> {
        if self.usable {
            Ok(())
        } else {
            Err(ClientError::Unusable {
                addr: self.conn.addr,
            })
        }
    }

    fn rejected(&mut self, stage: Stage, reply: Reply) -> ClientError {
        if reply.closes_connection() {
            self.usable = false;
        }
        ClientError::Rejected {
            addr: self.conn.addr,
            stage,
            reply,
        }
    }

    /// Any error leaves the session in an unknown state: not usable.
    fn keep_usable_if_ok<T>(&mut self, result: Result<T, ClientError>) -> Result<T, ClientError> {
        if result.is_err() {
            self.usable = false;
        }
        result
    }

    /// One command, one positive reply expected.
    async fn simple_command(&mut self, command: &[u8], stage: Stage) -> Result<(), ClientError> {
        let result = self.command(command, stage).await;
        match self.keep_usable_if_ok(result)? {
            reply if reply.is_positive() => Ok(()),
            reply => {
                self.usable = false;
                Err(self.rejected(stage, reply))
            }
        }
    }

    /// Two commands already in `wbuf`, written together; both must succeed.
    async fn pipelined_pair(&mut self, first: Stage, second: Stage) -> Result<(), ClientError> {
        let timeout = self.command_timeout;
        self.conn.write_all(&self.wbuf, first, timeout).await?;
        for stage in [first, second] {
            let reply = self.conn.read_reply(stage, timeout).await?;
            if !reply.is_positive() {
                self.usable = false;
                return Err(self.rejected(stage, reply));
            }
        }
        Ok(())
    }

    /// Writes one command and reads its reply.
    async fn command(&mut self, command: &[u8], stage: Stage) -> Result<Reply, ClientError> {
        let timeout = self.command_timeout;
        self.conn.write_all(command, stage, timeout).await?;
        self.conn.read_reply(stage, timeout).await
    }

    /// EHLO, falling back to HELO when EHLO is refused with 5xx.
    async fn hello(&mut self, helo_name: &str) -> Result<(), ClientError> {
        let timeout = self.command_timeout;
        self.wbuf.clear();
        self.wbuf.extend_from_slice(b"EHLO ");
        self.wbuf.extend_from_slice(helo_name.as_bytes());
        self.wbuf.extend_from_slice(b"\r\n");
        self.conn
            .write_all(&self.wbuf, Stage::Ehlo, timeout)
            .await?;
        let (reply, capabilities) = self.conn.read_ehlo(timeout).await?;
        if let Some(capabilities) = capabilities {
            self.capabilities = capabilities;
            return Ok(());
        }
        if !reply.is_permanent() {
            return Err(self.rejected(Stage::Ehlo, reply));
        }

        self.wbuf.clear();
        self.wbuf.extend_from_slice(b"HELO ");
        self.wbuf.extend_from_slice(helo_name.as_bytes());
        self.wbuf.extend_from_slice(b"\r\n");
        self.conn
            .write_all(&self.wbuf, Stage::Helo, timeout)
            .await?;
        let reply = self.conn.read_reply(Stage::Helo, timeout).await?;
        if !reply.is_positive() {
            return Err(self.rejected(Stage::Helo, reply));
        }
        self.capabilities = EhloResponse {
            hostname: reply.text.split_whitespace().next().unwrap_or("").into(),
            ..EhloResponse::default()
        };
        Ok(())
    }

    /// STARTTLS as the policy asks, then EHLO again over TLS.
    async fn start_tls(&mut self, settings: &ClientSettings) -> Result<(), ClientError> {
        let addr = self.conn.addr;
        let required = |reason: String| ClientError::TlsRequired { addr, reason };
        match settings.tls {
            TlsPolicy::None => return Ok(()),
            _ if self.capabilities.has_capability(EXT_START_TLS) => {}
            TlsPolicy::Opportunistic => return Ok(()),
            TlsPolicy::Required | TlsPolicy::Verify => {
                return Err(required("STARTTLS not offered".into()));
            }
        }

        let reply = self.command(b"STARTTLS\r\n", Stage::StartTls).await?;
        if reply.code != 220 {
            if settings.tls.requires_tls() {
                return Err(required(format!("STARTTLS refused: {reply}")));
            }
            if reply.closes_connection() {
                return Err(self.rejected(Stage::StartTls, reply));
            }
            // Opportunistic: the session is still in its pre-TLS state.
            return Ok(());
        }
        if !self.conn.rbuf.is_empty() {
            // Bytes sent before the handshake would be read as if they came
            // over TLS (the STARTTLS command injection attack).
            return Err(ClientError::Protocol {
                addr,
                stage: Stage::StartTls,
                message: "data after the STARTTLS reply".into(),
            });
        }

        if !self.conn.stream.is_plain() {
            return Err(required("STARTTLS on a TLS session".into()));
        }
        let config = match settings.tls {
            TlsPolicy::Verify => match &settings.trust {
                Some(config) => Arc::clone(config),
                None => tls::verifying_config(None).map_err(required)?,
            },
            _ => tls::client_config().map_err(|e| required(e.to_string()))?,
        };
        let name = tls::server_name(&self.server_name, addr);
        let handshake = self.conn.stream.connect(config, name);
        match tokio::time::timeout(self.command_timeout, handshake).await {
            Ok(Ok(())) => {}
            Ok(Err(source)) => {
                self.usable = false;
                return Err(if settings.tls.requires_tls() {
                    required(format!("TLS handshake failed: {source}"))
                } else {
                    ClientError::TlsHandshake { addr, source }
                });
            }
            Err(_) => {
                self.usable = false;
                return Err(if settings.tls.requires_tls() {
                    required("TLS handshake timed out".into())
                } else {
                    ClientError::TlsHandshake {
                        addr,
                        source: std::io::ErrorKind::TimedOut.into(),
                    }
                });
            }
        }
        self.tls_version = self.conn.stream.tls_description();
        // RFC 3207 §4.2: forget everything learnt before TLS.
        self.capabilities = EhloResponse::default();
        self.hello(&settings.helo_name).await
    }

    /// AUTH PLAIN, or LOGIN when that is all the server offers.
    async fn authenticate(
        &mut self,
        policy: TlsPolicy,
        username: &str,
        password: &str,
    ) -> Result<(), ClientError> {
        let addr = self.conn.addr;
        if self.tls_version.is_none() && policy != TlsPolicy::None {
            return Err(ClientError::AuthWithoutTls { addr });
        }
        let mechanisms = self.capabilities.auth_mechanisms;
        let reply = if mechanisms & AUTH_PLAIN != 0 {
            let token = BASE64.encode(format!("\0{username}\0{password}"));
            self.wbuf.clear();
            self.wbuf.extend_from_slice(b"AUTH PLAIN ");
            self.wbuf.extend_from_slice(token.as_bytes());
            self.wbuf.extend_from_slice(b"\r\n");
            let command = std::mem::take(&mut self.wbuf);
            let reply = self.command(&command, Stage::Auth).await;
            self.wbuf = command;
            reply?
        } else if mechanisms & AUTH_LOGIN != 0 {
            let mut reply = self.command(b"AUTH LOGIN\r\n", Stage::Auth).await?;
            for secret in [username, password] {
                if reply.code != 334 {
                    break;
                }
                let line = format!("{}\r\n", BASE64.encode(secret));
                reply = self.command(line.as_bytes(), Stage::Auth).await?;
            }
            reply
        } else {
            return Err(ClientError::AuthUnavailable { addr });
        };
        self.wbuf.clear();
        if reply.code == 235 {
            Ok(())
        } else {
            Err(self.rejected(Stage::Auth, reply))
        }
    }
}

/// TCP connect, from `settings.local_addr` when one is set.
async fn tcp_connect(addr: SocketAddr, settings: &ClientSettings) -> std::io::Result<TcpStream> {
    let Some(local) = settings.local_addr else {
        return TcpStream::connect(addr).await;
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(addr).await
}
