//! The `[spool]` section: how much disk the durable message store may use.
//!
//! Values only; the spool applies them.

use serde::Deserialize;

use crate::de;

/// The `[spool]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// New messages are refused with `452 4.3.1` once the messages in the
    /// spool would take more than this many bytes; they are accepted again
    /// as soon as delivered messages make room. `0`: no limit other than
    /// the disk itself. Default `0`.
    #[serde(deserialize_with = "de::size")]
    pub max_size: u64,
    /// Size of one spool segment file. Default `"64MiB"`; at least `"64KiB"`,
    /// at most `"1GiB"`.
    #[serde(deserialize_with = "de::size")]
    pub segment_size: u64,
    /// Disk space held back in a preallocated file (`spool/reserve`) while
    /// the disk has room, and released when it is full, so that delivered
    /// messages can still be recorded as done and the backlog drains. At
    /// most an eighth of the filesystem; `0` turns it off. Default `"64MiB"`.
    #[serde(deserialize_with = "de::size")]
    pub reserve: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_size: 0,
            segment_size: 64 * 1024 * 1024,
            reserve: 64 * 1024 * 1024,
        }
    }
}
