//! Signed per-recipient tokens: the VERP return path of each recipient
//! (`b-TOKEN@bounces.shop.example`), so that any bounce, however malformed,
//! maps back to its message and recipient, the one-click unsubscribe
//! links and addresses (`u-TOKEN`), and the open-tracking pixel and
//! click-tracking links under `public_url` (`/t/o/TOKEN`, `/t/c/TOKEN`).
//!
//! A token is the message id, the recipient's index and an HMAC-SHA256 (cut
//! to 80 bits) over both and the token's purpose, written in the same
//! base32 alphabet as message ids. Without the key nobody can make a token
//! that decodes, so a forged address or link is simply unknown.
//!
//! A click token also carries the link's target, so that a click needs no
//! look-up of the message (whose record may be gone by then) to know where
//! to send the reader: `TOKEN.URL` with the URL in unpadded base64url and
//! the MAC covering it too. Changing one character of the URL breaks the
//! MAC, so a click link can never be turned into a redirect to anywhere
//! else (no open redirect).

use crate::MessageId;
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const MAC_LEN: usize = 10;
const RAW_LEN: usize = 16 + 2 + MAC_LEN;
/// Characters of an encoded token (5 bits each).
pub const TOKEN_LEN: usize = (RAW_LEN * 8).div_ceil(5);

/// What a token is for; part of what the MAC covers, so a bounce token is
/// never accepted as an unsubscribe token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The envelope sender (return path): `b-TOKEN@…`.
    Bounce,
    /// A one-click unsubscribe link or mailto address: `u-TOKEN`.
    Unsubscribe,
    /// The open-tracking pixel: `/t/o/TOKEN`.
    Open,
    /// A click-tracking link: `/t/c/TOKEN.URL` (see [`TokenKey::click_token`]).
    Click,
}

impl Purpose {
    /// The local-part prefix of addresses of this purpose.
    pub fn prefix(self) -> &'static str {
        match self {
            Purpose::Bounce => "b-",
            Purpose::Unsubscribe => "u-",
            Purpose::Open => "o-",
            Purpose::Click => "c-",
        }
    }

    fn context(self) -> u8 {
        match self {
            Purpose::Bounce => b'b',
            Purpose::Unsubscribe => b'u',
            Purpose::Open => b'o',
            Purpose::Click => b'c',
        }
    }
}

/// The key tokens are signed with (one per installation, kept in the store
/// so that every node of a cluster shares it).
pub struct TokenKey {
    key: hmac::Key,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<secret>)")
    }
}

impl TokenKey {
    pub fn new(secret: &[u8]) -> TokenKey {
        TokenKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn mac(&self, purpose: Purpose, payload: &[u8]) -> [u8; MAC_LEN] {
        self.mac_with(purpose, payload, &[])
    }

    /// The MAC over the fixed-length `payload` (message id and recipient)
    /// and `extra` (a click's URL); the fixed length keeps the two apart.
    fn mac_with(&self, purpose: Purpose, payload: &[u8], extra: &[u8]) -> [u8; MAC_LEN] {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(&[purpose.context()]);
        context.update(payload);
        context.update(extra);
        let tag = context.sign();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        out
    }

    /// The token for recipient `rcpt` of message `id`.
    pub fn token(&self, purpose: Purpose, id: MessageId, rcpt: u16) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[..16].copy_from_slice(&id.to_bytes());
        raw[16..18].copy_from_slice(&rcpt.to_be_bytes());
        let mac = self.mac(purpose, &raw[..18]);
        raw[18..].copy_from_slice(&mac);
        encode(&raw)
    }

    /// `b-TOKEN@domain` (or `u-TOKEN@domain`).
    pub fn address(&self, purpose: Purpose, id: MessageId, rcpt: u16, domain: &str) -> String {
        format!(
            "{}{}@{domain}",
            purpose.prefix(),
            self.token(purpose, id, rcpt)
        )
    }

    /// The message and recipient of a token, if it is genuine.
    pub fn decode(&self, purpose: Purpose, token: &str) -> Option<(MessageId, u16)> {
        let raw = decode(token)?;
        let expected = self.mac(purpose, &raw[..18]);
        // Constant-time comparison: the MAC is the only secret here.
        if aws_lc_rs::constant_time::verify_slices_are_equal(&raw[18..], &expected).is_err() {
            return None;
        }
        let id = MessageId::from_bytes(raw[..16].try_into().ok()?);
        let rcpt = u16::from_be_bytes([raw[16], raw[17]]);
        Some((id, rcpt))
    }

    /// The click-tracking token of link `url` for recipient `rcpt` of
    /// message `id`: `TOKEN.URL`, the URL in unpadded base64url and covered
    /// by the MAC (see the module documentation).
    pub fn click_token(&self, id: MessageId, rcpt: u16, url: &str) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[..16].copy_from_slice(&id.to_bytes());
        raw[16..18].copy_from_slice(&rcpt.to_be_bytes());
        let mac = self.mac_with(Purpose::Click, &raw[..18], url.as_bytes());
        raw[18..].copy_from_slice(&mac);
        let mut token = encode(&raw);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(url));
        token
    }

    /// The message, recipient and target URL of a click token, if it is
    /// genuine and unaltered.
    pub fn decode_click(&self, token: &str) -> Option<(MessageId, u16, String)> {
        let (head, url) = token.split_once('.')?;
        let raw = decode(head)?;
        let url = String::from_utf8(URL_SAFE_NO_PAD.decode(url).ok()?).ok()?;
        let expected = self.mac_with(Purpose::Click, &raw[..18], url.as_bytes());
        if aws_lc_rs::constant_time::verify_slices_are_equal(&raw[18..], &expected).is_err() {
            return None;
        }
        let id = MessageId::from_bytes(raw[..16].try_into().ok()?);
        let rcpt = u16::from_be_bytes([raw[16], raw[17]]);
        Some((id, rcpt, url))
    }

    /// The message and recipient of an address whose local part is
    /// `prefix` + a genuine token (any case; the domain is not checked).
    pub fn decode_address(&self, purpose: Purpose, address: &str) -> Option<(MessageId, u16)> {
        let (local, _) = crate::split_address(address)?;
        let local = local.to_ascii_lowercase();
        let token = local.strip_prefix(purpose.prefix())?;
        self.decode(purpose, token)
    }
}

fn encode(raw: &[u8; RAW_LEN]) -> String {
    let mut out = String::with_capacity(TOKEN_LEN);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in raw {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn decode(token: &str) -> Option<[u8; RAW_LEN]> {
    if token.len() != TOKEN_LEN {
        return None;
    }
    let mut raw = [0u8; RAW_LEN];
    let mut buffer: u32 = 0;
    let mut bits = 0;
    let mut at = 0;
    for c in token.bytes() {
        let c = c.to_ascii_lowercase();
        let value = ALPHABET.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *raw.get_mut(at)? = (buffer >> bits) as u8;
            at += 1;
        }
    }
    // The bits past the last byte must be zero: one token, one spelling.
    (at == RAW_LEN && buffer & ((1 << bits) - 1) == 0).then_some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_fit_a_local_part() {
        let key = TokenKey::new(b"secret");
        for rcpt in [0u16, 1, 999, u16::MAX] {
            let id = MessageId::generate();
            let address = key.address(Purpose::Bounce, id, rcpt, "bounces.shop.test");
            let (local, _) = crate::split_address(&address).unwrap();
            assert!(local.len() <= 64, "{address}");
            assert_eq!(
                key.decode_address(Purpose::Bounce, &address),
                Some((id, rcpt))
            );
            assert_eq!(
                key.decode_address(Purpose::Bounce, &address.to_uppercase()),
                Some((id, rcpt)),
                "case does not matter"
            );
        }
    }

    #[test]
    fn forged_altered_and_misused_tokens_are_refused() {
        let key = TokenKey::new(b"secret");
        let id = MessageId::generate();
        let token = key.token(Purpose::Bounce, id, 3);
        assert_eq!(
            TokenKey::new(b"other").decode(Purpose::Bounce, &token),
            None
        );
        assert_eq!(key.decode(Purpose::Unsubscribe, &token), None);
        for at in 0..token.len() {
            let mut altered = token.clone().into_bytes();
            altered[at] = if altered[at] == b'0' { b'1' } else { b'0' };
            let altered = String::from_utf8(altered).unwrap();
            assert_eq!(
                key.decode(Purpose::Bounce, &altered),
                None,
                "changed at {at}"
            );
        }
        assert_eq!(key.decode(Purpose::Bounce, &token[1..]), None);
        assert_eq!(key.decode(Purpose::Bounce, "not a token"), None);
        assert_eq!(
            key.decode_address(Purpose::Bounce, "postmaster@x.test"),
            None
        );
        let open = key.token(Purpose::Open, id, 0);
        assert_eq!(key.decode(Purpose::Open, &open), Some((id, 0)));
        assert_eq!(key.decode(Purpose::Unsubscribe, &open), None);
        assert_eq!(key.decode(Purpose::Open, &token), None);
    }

    #[test]
    fn click_tokens_carry_their_url_and_refuse_any_change() {
        let key = TokenKey::new(b"secret");
        let id = MessageId::generate();
        let url = "https://shop.test/order?id=42&x=%C3%A9#top";
        let token = key.click_token(id, 0, url);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'),
            "URL-safe: {token}"
        );
        assert_eq!(key.decode_click(&token), Some((id, 0, url.to_string())));
        // Another URL under the same id and recipient does not verify.
        let (head, _) = token.split_once('.').unwrap();
        let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode("https://evil.test/"));
        assert_eq!(key.decode_click(&forged), None);
        for at in 0..token.len() {
            let mut altered = token.clone().into_bytes();
            altered[at] = match altered[at] {
                b'.' => continue,
                b'0' => b'1',
                _ => b'0',
            };
            let altered = String::from_utf8(altered).unwrap();
            assert_eq!(key.decode_click(&altered), None, "changed at {at}");
        }
        assert_eq!(TokenKey::new(b"other").decode_click(&token), None);
        assert_eq!(key.decode_click(&key.token(Purpose::Click, id, 0)), None);
        assert_eq!(key.decode_click(""), None);
        assert_eq!(key.decode_click("."), None);
        assert_eq!(key.decode_click(&format!("{head}.%%%")), None);
        // An open token is no click token, and the reverse.
        assert_eq!(key.decode(Purpose::Open, head), None);
    }
}
