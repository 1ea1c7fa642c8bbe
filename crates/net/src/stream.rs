//! A connection that starts in plain text and may switch to TLS (STARTTLS),
//! or switches at once (implicit TLS), as the server or as the client.
//!
//! Reads and writes go straight to the inner stream (one match, no copies);
//! vectored writes are forwarded, so a batch of slices still leaves in one
//! system call when the inner stream can do that.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

/// A byte stream before or after the switch to TLS, on either side of the
/// connection (`TlsStream` is rustls's client or server stream).
pub enum MaybeTls<S> {
    Plain(S),
    /// Boxed: a TLS session is large, and a plain connection should not
    /// carry its size.
    Tls(Box<TlsStream<S>>),
    /// While the inner stream is handed to the TLS handshake, and for good
    /// once that failed or was abandoned (a timeout drops it mid-way).
    Closed,
}

impl<S> MaybeTls<S> {
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    pub fn is_plain(&self) -> bool {
        matches!(self, MaybeTls::Plain(_))
    }

    /// Protocol and cipher suite, e.g. `"TLSv1.3 TLS13_AES_256_GCM_SHA384"`,
    /// for logs, delivery records and `Received:` headers; `None` in plain
    /// text (or before a handshake has negotiated both).
    pub fn tls_description(&self) -> Option<String> {
        let MaybeTls::Tls(tls) = self else {
            return None;
        };
        let (_, session) = tls.get_ref();
        let version = match session.protocol_version()? {
            ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
            ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
            other => format!("{other:?}"),
        };
        let suite = session.negotiated_cipher_suite()?.suite();
        Some(format!("{version} {suite:?}"))
    }

    /// Takes the plain stream out for a handshake, leaving `Closed`; any
    /// other state is kept and refused.
    fn take_plain(&mut self) -> io::Result<S> {
        match std::mem::replace(self, MaybeTls::Closed) {
            MaybeTls::Plain(inner) => Ok(inner),
            other => {
                *self = other;
                Err(io::Error::other("stream is not plain text"))
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> MaybeTls<S> {
    /// The server's side of the switch: runs the TLS handshake on the plain
    /// stream. On failure the stream is `Closed`.
    pub async fn accept(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        let plain = self.take_plain()?;
        let tls = acceptor.accept(plain).await?;
        *self = MaybeTls::Tls(Box::new(TlsStream::Server(tls)));
        Ok(())
    }

    /// The client's side of the switch: runs the TLS handshake with `config`
    /// on the plain stream, sending `name` as SNI (none for an address). On
    /// failure the stream is `Closed`.
    pub async fn connect(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<()> {
        let plain = self.take_plain()?;
        let tls = TlsConnector::from(config).connect(name, plain).await?;
        *self = MaybeTls::Tls(Box::new(TlsStream::Client(tls)));
        Ok(())
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTls::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTls::Closed => Poll::Ready(Err(closed())),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            MaybeTls::Closed => Poll::Ready(Err(closed())),
        }
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.is_write_vectored(),
            MaybeTls::Tls(s) => s.is_write_vectored(),
            MaybeTls::Closed => false,
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::Closed => Poll::Ready(Ok(())),
        }
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTls::Closed => Poll::Ready(Ok(())),
        }
    }
}
