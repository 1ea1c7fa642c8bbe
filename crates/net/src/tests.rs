//! Round trips over loopback TCP (port 0), plain and TLS, with a
//! self-signed certificate that only the accept-any verifier takes.

use std::io::{self, IoSlice};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::{AcceptAnyCertificate, MaybeTls};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn self_signed(name: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    (certified.cert.der().clone(), PrivateKeyDer::Pkcs8(key))
}

fn acceptor(name: &str) -> TlsAcceptor {
    let (cert, key) = self_signed(name);
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

fn accept_any_config() -> Arc<ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(AcceptAnyCertificate::new(&provider));
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Arc::new(config)
}

/// A connected pair of plain streams: (client, server).
async fn tcp_pair() -> (MaybeTls<TcpStream>, MaybeTls<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (
        MaybeTls::Plain(client.unwrap()),
        MaybeTls::Plain(accepted.unwrap().0),
    )
}

/// Writes all of `parts` with vectored writes, as the delivery client does.
async fn write_parts<W: AsyncWrite + Unpin>(stream: &mut W, mut parts: &mut [IoSlice<'_>]) {
    while !parts.is_empty() {
        let n = stream.write_vectored(parts).await.unwrap();
        assert!(n > 0);
        IoSlice::advance_slices(&mut parts, n);
    }
    stream.flush().await.unwrap();
}

/// The client says "hello" in two slices, the server answers "ok".
async fn exchange(client: &mut MaybeTls<TcpStream>, server: &mut MaybeTls<TcpStream>) {
    write_parts(client, &mut [IoSlice::new(b"hel"), IoSlice::new(b"lo")]).await;
    let mut heard = [0u8; 5];
    server.read_exact(&mut heard).await.unwrap();
    assert_eq!(&heard, b"hello");
    server.write_all(b"ok").await.unwrap();
    server.flush().await.unwrap();
    let mut answer = [0u8; 2];
    client.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"ok");
}

#[tokio::test]
async fn plain_round_trip() {
    let (mut client, mut server) = tcp_pair().await;
    assert!(client.is_plain() && !client.is_tls());
    assert!(client.is_write_vectored(), "TCP's vectored writes are kept");
    assert_eq!(client.tls_description(), None);
    exchange(&mut client, &mut server).await;
}

#[tokio::test]
async fn tls_round_trip_after_both_sides_switch() {
    let (mut client, mut server) = tcp_pair().await;
    let acceptor = acceptor("localhost");
    // A name the certificate does not carry: only the accept-any verifier
    // lets this handshake through.
    let name = ServerName::try_from("mx.elsewhere.test").unwrap();
    let (connected, accepted) = tokio::join!(
        client.connect(accept_any_config(), name),
        server.accept(&acceptor)
    );
    connected.unwrap();
    accepted.unwrap();
    assert!(client.is_tls() && server.is_tls());
    assert!(client.is_write_vectored() && server.is_write_vectored());
    let described = client.tls_description().unwrap();
    assert!(described.starts_with("TLSv1.3 TLS13_"), "{described}");
    assert_eq!(server.tls_description(), Some(described));
    exchange(&mut client, &mut server).await;
}

#[tokio::test]
async fn only_a_plain_stream_switches() {
    let (mut client, mut server) = tcp_pair().await;
    let acceptor = acceptor("localhost");
    let (connected, accepted) = tokio::join!(
        client.connect(
            accept_any_config(),
            ServerName::try_from("localhost").unwrap()
        ),
        server.accept(&acceptor)
    );
    connected.unwrap();
    accepted.unwrap();
    let again = server.accept(&acceptor).await;
    assert_eq!(again.unwrap_err().kind(), io::ErrorKind::Other);
    assert!(server.is_tls(), "a refused switch keeps the TLS session");

    let mut closed = MaybeTls::<TcpStream>::Closed;
    assert!(closed.accept(&acceptor).await.is_err());
    assert!(matches!(closed, MaybeTls::Closed));
}

#[tokio::test]
async fn a_failed_handshake_leaves_the_stream_closed() {
    let (mut client, mut server) = tcp_pair().await;
    // The "server" speaks plain text where a TLS handshake should be.
    let plain_reply = async {
        let mut hello = [0u8; 5];
        server.read_exact(&mut hello).await.unwrap();
        server.write_all(b"220 not tls\r\n").await.unwrap();
        server.flush().await.unwrap();
    };
    let name = ServerName::try_from("localhost").unwrap();
    let (connected, ()) = tokio::join!(client.connect(accept_any_config(), name), plain_reply);
    assert!(connected.is_err());
    assert!(matches!(client, MaybeTls::Closed));
    assert!(!client.is_write_vectored());
    let mut byte = [0u8; 1];
    let read = client.read(&mut byte).await.unwrap_err();
    assert_eq!(read.kind(), io::ErrorKind::NotConnected);
    // Closing a closed stream is not an error: sessions shut down whatever
    // state they end in.
    client.shutdown().await.unwrap();
}

#[test]
fn accept_any_takes_a_self_signed_certificate_for_any_name() {
    let (cert, _) = self_signed("mx.example.test");
    let verifier = AcceptAnyCertificate::new(&provider());
    let name = ServerName::try_from("another.test").unwrap();
    verifier
        .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
        .unwrap();
    assert!(!verifier.supported_verify_schemes().is_empty());
}
