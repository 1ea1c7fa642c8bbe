//! The SMTP envelope of a message and the DSN parameters (RFC 3461) that
//! travel with it: RET and ENVID per message, NOTIFY and ORCPT per recipient.

use serde::{Deserialize, Serialize};

/// What a DSN should carry of the original message (`MAIL FROM … RET=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    Full,
    Headers,
}

/// The body type declared with `MAIL FROM … BODY=`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyType {
    #[default]
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// `RCPT TO … NOTIFY=` as bit flags. Empty means "not given": the default
/// of RFC 3461 (failure and delay) applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Notify(pub u8);

impl Notify {
    pub const SUCCESS: u8 = 1;
    pub const FAILURE: u8 = 2;
    pub const DELAY: u8 = 4;
    pub const NEVER: u8 = 8;

    /// Whether a DSN for a permanent failure should be sent.
    pub fn on_failure(self) -> bool {
        self.0 == 0 || self.0 & Self::FAILURE != 0
    }

    /// Whether a DSN for successful delivery was asked for.
    pub fn on_success(self) -> bool {
        self.0 & Self::SUCCESS != 0
    }

    /// Whether a delay warning may be sent.
    pub fn on_delay(self) -> bool {
        self.0 == 0 || self.0 & Self::DELAY != 0
    }

    /// Whether the parameter was given at all (to pass it on when relaying).
    pub fn is_set(self) -> bool {
        self.0 != 0
    }

    /// The value as written in `NOTIFY=`.
    pub fn to_param(self) -> String {
        if self.0 & Self::NEVER != 0 {
            return "NEVER".into();
        }
        let mut parts = Vec::new();
        if self.0 & Self::SUCCESS != 0 {
            parts.push("SUCCESS");
        }
        if self.0 & Self::FAILURE != 0 {
            parts.push("FAILURE");
        }
        if self.0 & Self::DELAY != 0 {
            parts.push("DELAY");
        }
        parts.join(",")
    }
}

/// One envelope recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    pub notify: Notify,
    /// `ORCPT=` as given: `addr-type;xtext-decoded address`, e.g. `rfc822;a@b`.
    pub orcpt: Option<String>,
}

impl Recipient {
    pub fn new(address: impl Into<String>) -> Recipient {
        Recipient {
            address: address.into(),
            notify: Notify::default(),
            orcpt: None,
        }
    }
}

/// The envelope of one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The reverse path; empty for the null sender (bounces).
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub ret: Option<Ret>,
    /// `ENVID=` (xtext-decoded).
    pub envid: Option<String>,
    pub body_type: BodyType,
    pub smtputf8: bool,
}

impl Envelope {
    pub fn new(sender: impl Into<String>) -> Envelope {
        Envelope {
            sender: sender.into(),
            recipients: Vec::new(),
            ret: None,
            envid: None,
            body_type: BodyType::default(),
            smtputf8: false,
        }
    }

    pub fn is_null_sender(&self) -> bool {
        self.sender.is_empty()
    }
}
