//! Carteiro's connections below SMTP: [`MaybeTls`], the one byte stream that
//! is plain text or TLS for the server's sessions and the delivery client
//! alike, its switch to TLS on either side (STARTTLS, implicit TLS), what
//! the handshake negotiated, and [`AcceptAnyCertificate`], the verifier for
//! opportunistic TLS and loopback tests, and [`TargetPolicy`], which
//! addresses a request made on a user's behalf (a webhook) may connect to.
//!
//! It knows nothing of SMTP or configuration: it does not decide when TLS is
//! used, which certificates are trusted or where they come from, nor which
//! networks an operator allows. Callers pass rustls configurations and the
//! allowed networks in.

mod stream;
mod target;
mod verify;

pub use stream::MaybeTls;
pub use target::{AddressClass, Refused, TargetPolicy, classify};
pub use verify::AcceptAnyCertificate;

#[cfg(test)]
mod tests;
