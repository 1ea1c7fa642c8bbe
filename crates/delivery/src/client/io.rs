//! The byte level of the SMTP client: the connection (plain TCP or TLS, a
//! `carteiro_net::MaybeTls`), a reusable read buffer that replies are parsed
//! from in place, and batched (vectored) writes so a pipelined group leaves
//! in one system call.
//!
//! Knows nothing about transactions; it reads replies and writes bytes.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use carteiro_mail::Reply;
use carteiro_net::MaybeTls;
use smtp_proto::EhloResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::reply::{ReplyError, parse_reply};
use crate::error::{ClientError, Stage};

/// Initial read buffer capacity; replies are small, so one read usually
/// holds a whole pipelined group of them.
const READ_CHUNK: usize = 4096;

/// A stream plus its read buffer. Bytes past the reply being parsed stay in
/// the buffer: they are the next pipelined replies.
pub(super) struct Conn {
    /// `Closed` after a failed STARTTLS handshake.
    pub(super) stream: MaybeTls<TcpStream>,
    pub(super) rbuf: BytesMut,
    pub(super) addr: SocketAddr,
}

impl Conn {
    pub(super) fn new(stream: TcpStream, addr: SocketAddr) -> Conn {
        Conn {
            stream: MaybeTls::Plain(stream),
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            addr,
        }
    }

    /// Reads the next reply, waiting at most `timeout` for all of it.
    pub(super) async fn read_reply(
        &mut self,
        stage: Stage,
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let (reply, len) = self.next_reply(stage, timeout).await?;
        self.rbuf.advance(len);
        Ok(reply)
    }

    /// Reads the reply to EHLO with the capabilities parsed by smtp-proto
    /// (`None` unless the reply is a 250).
    pub(super) async fn read_ehlo(
        &mut self,
        timeout: Duration,
    ) -> Result<(Reply, Option<EhloResponse<String>>), ClientError> {
        let (reply, len) = self.next_reply(Stage::Ehlo, timeout).await?;
        let capabilities = (reply.code == 250).then(|| {
            // A capability list smtp-proto cannot read still came with 250:
            // carry on without extensions rather than fail the connection.
            EhloResponse::parse(&mut self.rbuf[..len].iter()).unwrap_or_else(|e| {
                tracing::debug!(addr = %self.addr, error = %e, "unparseable EHLO capabilities");
                EhloResponse::default()
            })
        });
        self.rbuf.advance(len);
        Ok((reply, capabilities))
    }

    /// Waits until a complete reply is at the front of the buffer; returns
    /// it and its length without consuming it.
    async fn next_reply(
        &mut self,
        stage: Stage,
        timeout: Duration,
    ) -> Result<(Reply, usize), ClientError> {
        let addr = self.addr;
        let wait = async {
            loop {
                match parse_reply(&self.rbuf) {
                    Ok(Some(found)) => return Ok(found),
                    Ok(None) => {}
                    Err(e) => return Err(protocol(addr, stage, &e)),
                }
                self.rbuf.reserve(READ_CHUNK);
                match self.stream.read_buf(&mut self.rbuf).await {
                    Ok(0) => return Err(ClientError::Closed { addr, stage }),
                    Ok(_) => {}
                    Err(source) => return Err(io_error(addr, stage, source)),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout { addr, stage })?
    }

    /// Writes all of `parts` (in as few system calls as the socket allows)
    /// and flushes, within `timeout`.
    pub(super) async fn write_parts(
        &mut self,
        mut parts: &mut [IoSlice<'_>],
        stage: Stage,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        let addr = self.addr;
        let stream = &mut self.stream;
        let write = async {
            IoSlice::advance_slices(&mut parts, 0);
            while !parts.is_empty() {
                let n = stream.write_vectored(parts).await?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::WriteZero));
                }
                IoSlice::advance_slices(&mut parts, n);
            }
            stream.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(io_error(addr, stage, source)),
            Err(_) => Err(ClientError::Timeout { addr, stage }),
        }
    }

    /// Writes one buffer (a command or a pipelined group of them).
    pub(super) async fn write_all(
        &mut self,
        bytes: &[u8],
        stage: Stage,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        self.write_parts(&mut [IoSlice::new(bytes)], stage, timeout)
            .await
    }
}

fn protocol(addr: SocketAddr, stage: Stage, e: &ReplyError) -> ClientError {
    ClientError::Protocol {
        addr,
        stage,
        message: e.to_string(),
    }
}

/// A reset or broken pipe is the server going away, not a local fault.
fn io_error(addr: SocketAddr, stage: Stage, source: io::Error) -> ClientError {
    match source.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe => ClientError::Closed { addr, stage },
        _ => ClientError::Io {
            addr,
            stage,
            source,
        },
    }
}
