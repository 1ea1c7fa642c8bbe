//! ClamAV's daemon: `zINSTREAM` (the message sent in chunks, each with its
//! length) on sessions opened with `zIDSESSION` and kept for the next scan,
//! over TCP (`host:port`) or a unix socket (a path).

use crate::ScanError;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes per `zINSTREAM` chunk.
const CHUNK: usize = 64 * 1024;
/// The longest reply read (a virus name is tens of bytes).
const MAX_REPLY: usize = 4096;
/// A kept session idle this long is closed rather than reused: clamd closes
/// idle sessions itself after its `IdleTimeout` (30 s by default).
const MAX_IDLE: Duration = Duration::from_secs(10);
/// Sessions kept open for reuse.
const MAX_KEPT: usize = 64;
const NAME: &str = "clamd";

/// Where clamd listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClamdAddr {
    /// `host:port`.
    Tcp(String),
    /// A unix socket's path.
    Unix(PathBuf),
}

impl ClamdAddr {
    /// A path (anything with a `/`) is a unix socket, the rest `host:port`.
    pub fn parse(text: &str) -> ClamdAddr {
        if text.contains('/') {
            ClamdAddr::Unix(PathBuf::from(text))
        } else {
            ClamdAddr::Tcp(text.to_owned())
        }
    }
}

impl std::fmt::Display for ClamdAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClamdAddr::Tcp(addr) => f.write_str(addr),
            ClamdAddr::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What clamd found in a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VirusScan {
    Clean,
    /// The signature's name, e.g. `Win.Test.EICAR_HDB-1`.
    Found(String),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An open `zIDSESSION`: clamd numbers its replies from 1.
struct Session {
    stream: Box<dyn Stream>,
    /// The number of the next reply.
    next: u64,
    used: Instant,
}

/// A clamd client; cheap to share (scans run concurrently, each on a session
/// of its own).
pub struct Clamd {
    addr: ClamdAddr,
    kept: Mutex<Vec<Session>>,
}

impl Clamd {
    pub fn new(addr: ClamdAddr) -> Clamd {
        Clamd {
            addr,
            kept: Mutex::new(Vec::new()),
        }
    }

    pub fn addr(&self) -> &ClamdAddr {
        &self.addr
    }

    /// Scans `message`. A kept session that clamd closed meanwhile is
    /// replaced by a new one once; no time limit of its own (the caller's).
    pub async fn scan(&self, message: &[u8]) -> Result<VirusScan, ScanError> {
        if let Some(mut session) = self.take_kept() {
            match scan_on(&mut session, message).await {
                Ok(found) => {
                    self.keep(session);
                    return Ok(found);
                }
                // A session clamd closed (idle, restarted): try a new one.
                Err(ScanError::Unreachable { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        let mut session = self.open().await?;
        let found = scan_on(&mut session, message).await?;
        self.keep(session);
        Ok(found)
    }

    /// Whether clamd answers `PING` (a new connection, not kept).
    pub async fn ping(&self) -> Result<(), ScanError> {
        let mut stream = self.connect().await?;
        stream.write_all(b"zPING\0").await.map_err(unreachable)?;
        let reply = read_reply(&mut stream).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(unreadable(format!("PING answered {reply:?}")))
        }
    }

    fn take_kept(&self) -> Option<Session> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(session) = kept.pop() {
            if session.used.elapsed() < MAX_IDLE {
                return Some(session);
            }
        }
        None
    }

    fn keep(&self, mut session: Session) {
        session.used = Instant::now();
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < MAX_KEPT {
            kept.push(session);
        }
    }

    async fn connect(&self) -> Result<Box<dyn Stream>, ScanError> {
        Ok(match &self.addr {
            ClamdAddr::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr.as_str())
                    .await
                    .map_err(unreachable)?;
                let _ = stream.set_nodelay(true);
                Box::new(stream)
            }
            ClamdAddr::Unix(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(unreachable)?,
            ),
        })
    }

    async fn open(&self) -> Result<Session, ScanError> {
        let mut stream = self.connect().await?;
        stream
            .write_all(b"zIDSESSION\0")
            .await
            .map_err(unreachable)?;
        Ok(Session {
            stream,
            next: 1,
            used: Instant::now(),
        })
    }
}

/// One `zINSTREAM` on `session`.
async fn scan_on(session: &mut Session, message: &[u8]) -> Result<VirusScan, ScanError> {
    let sent = send_stream(&mut session.stream, message).await;
    // clamd answers (and closes) before reading everything when the message
    // is over its StreamMaxLength: its reply says why the write broke.
    let reply = match read_reply(&mut session.stream).await {
        Ok(reply) => reply,
        Err(err) => return Err(sent.err().unwrap_or(err)),
    };
    let number = session.next;
    session.next += 1;
    let text = match reply.split_once(": ") {
        Some((n, rest)) if n.parse::<u64>().ok() == Some(number) => rest,
        _ => {
            return Err(unreadable(format!(
                "reply {number} expected, got {reply:?}"
            )));
        }
    };
    parse_result(text)
}

async fn send_stream(stream: &mut Box<dyn Stream>, message: &[u8]) -> Result<(), ScanError> {
    stream
        .write_all(b"zINSTREAM\0")
        .await
        .map_err(unreachable)?;
    for chunk in message.chunks(CHUNK) {
        let len = u32::try_from(chunk.len()).expect("chunks are small");
        stream
            .write_all(&len.to_be_bytes())
            .await
            .map_err(unreachable)?;
        stream.write_all(chunk).await.map_err(unreachable)?;
    }
    stream.write_all(&[0; 4]).await.map_err(unreachable)?;
    stream.flush().await.map_err(unreachable)
}

/// Reads one NUL-terminated reply.
async fn read_reply(stream: &mut Box<dyn Stream>) -> Result<String, ScanError> {
    let mut reply = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    loop {
        let n = stream.read(&mut buf).await.map_err(unreachable)?;
        if n == 0 {
            return Err(ScanError::Unreachable {
                scanner: NAME,
                detail: "connection closed before a reply".to_owned(),
            });
        }
        reply.extend_from_slice(&buf[..n]);
        if let Some(end) = reply.iter().position(|&b| b == 0) {
            if end + 1 != reply.len() {
                return Err(unreadable("more than one reply".to_owned()));
            }
            reply.truncate(end);
            return String::from_utf8(reply).map_err(|_| unreadable("not UTF-8".to_owned()));
        }
        if reply.len() > MAX_REPLY {
            return Err(unreadable(format!("a reply over {MAX_REPLY} bytes")));
        }
    }
}

/// `stream: OK`, `stream: NAME FOUND` or `... ERROR`.
fn parse_result(text: &str) -> Result<VirusScan, ScanError> {
    if let Some(error) = text.strip_suffix(" ERROR") {
        return Err(ScanError::Failed {
            scanner: NAME,
            detail: error.trim().to_owned(),
        });
    }
    let Some(result) = text.strip_prefix("stream: ") else {
        return Err(unreadable(format!("{text:?}")));
    };
    if result == "OK" {
        return Ok(VirusScan::Clean);
    }
    match result.strip_suffix(" FOUND") {
        Some(name) if !name.is_empty() => Ok(VirusScan::Found(name.to_owned())),
        _ => Err(unreadable(format!("{text:?}"))),
    }
}

fn unreachable(err: std::io::Error) -> ScanError {
    ScanError::Unreachable {
        scanner: NAME,
        detail: err.to_string(),
    }
}

fn unreadable(detail: String) -> ScanError {
    ScanError::Unreadable {
        scanner: NAME,
        detail,
    }
}

#[cfg(test)]
impl Clamd {
    /// Sessions kept for reuse.
    pub(crate) fn kept_sessions(&self) -> usize {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
pub(crate) fn parse_for_test(text: &str) -> Result<VirusScan, ScanError> {
    parse_result(text)
}
