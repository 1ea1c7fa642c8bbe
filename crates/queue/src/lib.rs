//! Queue state and scheduling: the state of every recipient of every queued
//! message, when each is due, the retry schedule and expiry.
//!
//! This crate does no I/O and reads no clock: time is passed in as
//! milliseconds, so schedules are tested with plain values. The daemon's
//! delivery engine owns a [`Scheduler`], persists what changes through the
//! spool and hands due recipients to delivery.

pub mod message;
pub mod scheduler;

pub use message::{
    DecodeError, Interner, LastReply, MessageMeta, Millis, QueuedMessage, RcptState, RcptStatus,
};
pub use scheduler::{AttemptResult, Dispatch, Outcome, Recorded, RetryPolicy, Scheduler};
