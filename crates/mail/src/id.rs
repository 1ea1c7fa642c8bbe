//! Message ids: 128 bits, the first 48 the creation time in milliseconds and
//! the rest random, written as 26 characters of Crockford base32 (the ULID
//! form). They sort by creation time and are safe in file names and URLs.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u128);

impl MessageId {
    /// A new id for the current time.
    pub fn generate() -> MessageId {
        let millis = u128::from(crate::clock::now_millis());
        let random: u128 = rand::random::<u128>() & ((1u128 << 80) - 1);
        MessageId(((millis & ((1u128 << 48) - 1)) << 80) | random)
    }

    /// Milliseconds since the Unix epoch when the id was made.
    pub fn timestamp_millis(self) -> u64 {
        (self.0 >> 80) as u64
    }

    /// Big-endian bytes: keys in a sorted store then sort by time.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    pub fn from_bytes(bytes: [u8; 16]) -> MessageId {
        MessageId(u128::from_be_bytes(bytes))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 26];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 125 - 5 * i as i32;
            let bits = if shift >= 0 {
                (self.0 >> shift) & 31
            } else {
                (self.0 << -shift) & 31
            };
            *slot = ALPHABET[bits as usize];
        }
        f.write_str(std::str::from_utf8(&out).expect("alphabet is ascii"))
    }
}

/// Error for a string that is not a message id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a message id: {0:?}")]
pub struct BadMessageId(pub String);

impl FromStr for MessageId {
    type Err = BadMessageId;

    fn from_str(s: &str) -> Result<MessageId, BadMessageId> {
        let bad = || BadMessageId(s.to_string());
        if s.len() != 26 {
            return Err(bad());
        }
        let mut value: u128 = 0;
        for (i, c) in s.bytes().enumerate() {
            let c = match c.to_ascii_lowercase() {
                b'o' => b'0',
                b'i' | b'l' => b'1',
                c => c,
            };
            let digit = ALPHABET.iter().position(|&a| a == c).ok_or_else(bad)? as u128;
            if i == 0 && digit > 7 {
                return Err(bad());
            }
            value = (value << 5) | digit;
        }
        Ok(MessageId(value))
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        for _ in 0..1000 {
            let id = MessageId::generate();
            let text = id.to_string();
            assert_eq!(text.len(), 26);
            assert_eq!(text.parse::<MessageId>().unwrap(), id);
        }
        let max = MessageId(u128::MAX);
        assert_eq!(max.to_string().parse::<MessageId>().unwrap(), max);
        assert_eq!(MessageId(0).to_string(), "00000000000000000000000000");
    }

    #[test]
    fn ids_sort_by_time_in_text_and_bytes() {
        let a = MessageId((1u128 << 80) | 5);
        let b = MessageId(2u128 << 80);
        assert!(a.to_string() < b.to_string());
        assert!(a.to_bytes() < b.to_bytes());
        assert_eq!(b.timestamp_millis(), 2);
    }

    #[test]
    fn bad_ids_are_refused() {
        assert!("".parse::<MessageId>().is_err());
        assert!("8zzzzzzzzzzzzzzzzzzzzzzzzz".parse::<MessageId>().is_err());
        assert!("0000000000000000000000000u".parse::<MessageId>().is_err());
    }
}
