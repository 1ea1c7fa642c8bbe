//! Carteiro's connections below SMTP: [`MaybeTls`], the one byte stream that
//! is plain text or TLS for the server's sessions and the delivery client
//! alike, its switch to TLS on either side (STARTTLS, implicit TLS), what
//! the handshake negotiated, and [`AcceptAnyCertificate`], the verifier for
//! opportunistic TLS and loopback tests.
//!
//! It knows nothing of SMTP, configuration or policy: it does not decide
//! when TLS is used, which certificates are trusted or where they come from.
//! Callers pass rustls configurations in.

mod stream;
mod verify;

pub use stream::MaybeTls;
pub use verify::AcceptAnyCertificate;

#[cfg(test)]
mod tests;
