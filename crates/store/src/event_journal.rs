//! The event writer's journal: where message records and events wait, on
//! disk, while the store cannot take them (a full disk, an I/O error, a
//! locked or unreachable database), so that a restart in the meantime does
//! not lose them.
//!
//! One file, `events.journal` in the data directory, of JSON lines, each a
//! record or an event. It is empty while the store writes: the writer
//! appends only what it holds after a failed write, syncs the file
//! (`fdatasync`) once per append, and empties it once everything held is
//! written. At start the writer reads it back and writes what it holds
//! before anything new. A line that cannot be read (the torn end of an
//! append cut short) is skipped with a warning.
//!
//! Space for it is reserved beyond its end (`fallocate` with `KEEP_SIZE`,
//! [`RESERVE`] bytes), so appends on a full disk have room until the reserve
//! is used up; beyond that, items are held in memory only (and said so).
//!
//! Replaying after a crash during a catch-up may write again what was
//! written just before it: records are kept as they are (the store ignores a
//! record it has), events can be doubled. Nothing is lost.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::event_details::{
    AlertDetails, BounceReportDetails, ComplaintDetails, DeliveryDetails, EngagementDetails,
    EventDetails, ReceivedDetails, SuppressedDetails, UnsubscribeDetails,
};
use crate::events::{EventKind, NewEvent};
use crate::messages::NewMessage;

/// Bytes kept allocated beyond the journal's end for appends on a full disk:
/// about 4,000 events.
pub const RESERVE: u64 = 2 << 20;

/// One line of the journal: a record (`NewMessage` when read, borrowed
/// when written) or an event.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line<M> {
    Message(M),
    Event(Box<JournaledEvent>),
}

/// A [`NewEvent`] as the journal keeps it: its details tagged with their
/// type (the event log's JSON is untagged, and `bounced` has two shapes).
#[derive(Serialize, Deserialize)]
struct JournaledEvent {
    account_id: i64,
    message_id: String,
    recipient: Option<String>,
    kind: EventKind,
    timestamp_ms: i64,
    details: Details,
}

impl From<&NewEvent> for JournaledEvent {
    fn from(event: &NewEvent) -> JournaledEvent {
        JournaledEvent {
            account_id: event.account_id,
            message_id: event.message_id.clone(),
            recipient: event.recipient.clone(),
            kind: event.kind,
            timestamp_ms: event.timestamp_ms,
            details: Details::from(&event.details),
        }
    }
}

impl From<JournaledEvent> for NewEvent {
    fn from(event: JournaledEvent) -> NewEvent {
        NewEvent {
            account_id: event.account_id,
            message_id: event.message_id,
            recipient: event.recipient,
            kind: event.kind,
            timestamp_ms: event.timestamp_ms,
            details: event.details.into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
enum Details {
    Received(ReceivedDetails),
    Delivery(DeliveryDetails),
    BounceReport(BounceReportDetails),
    Suppressed(SuppressedDetails),
    Complaint(ComplaintDetails),
    Engagement(EngagementDetails),
    Unsubscribe(UnsubscribeDetails),
    Alert(AlertDetails),
    None,
}

impl From<&EventDetails> for Details {
    fn from(details: &EventDetails) -> Details {
        match details.clone() {
            EventDetails::Received(d) => Details::Received(d),
            EventDetails::Delivery(d) => Details::Delivery(d),
            EventDetails::BounceReport(d) => Details::BounceReport(d),
            EventDetails::Suppressed(d) => Details::Suppressed(d),
            EventDetails::Complaint(d) => Details::Complaint(d),
            EventDetails::Engagement(d) => Details::Engagement(d),
            EventDetails::Unsubscribe(d) => Details::Unsubscribe(d),
            EventDetails::Alert(d) => Details::Alert(d),
            EventDetails::None => Details::None,
        }
    }
}

impl From<Details> for EventDetails {
    fn from(details: Details) -> EventDetails {
        match details {
            Details::Received(d) => EventDetails::Received(d),
            Details::Delivery(d) => EventDetails::Delivery(d),
            Details::BounceReport(d) => EventDetails::BounceReport(d),
            Details::Suppressed(d) => EventDetails::Suppressed(d),
            Details::Complaint(d) => EventDetails::Complaint(d),
            Details::Engagement(d) => EventDetails::Engagement(d),
            Details::Unsubscribe(d) => EventDetails::Unsubscribe(d),
            Details::Alert(d) => EventDetails::Alert(d),
            Details::None => EventDetails::None,
        }
    }
}

/// What a journal held when it was opened, in the order it was written
/// (records before the events written with them).
#[derive(Debug, Default, PartialEq)]
pub struct Replay {
    pub messages: Vec<NewMessage>,
    pub events: Vec<NewEvent>,
    /// Lines that could not be read and were skipped.
    pub skipped: usize,
}

/// The open journal file.
#[derive(Debug)]
pub struct EventJournal {
    file: File,
    path: PathBuf,
    /// Whether anything was appended since it was last emptied.
    dirty: bool,
    line: Vec<u8>,
}

impl EventJournal {
    /// Opens (or creates, owner-only) the journal at `path` and reads back
    /// what it holds; the file keeps it until [`clear`](Self::clear).
    pub fn open(path: &Path) -> std::io::Result<(EventJournal, Replay)> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = File::options()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        let mut replay = Replay::default();
        for line in BufReader::new(&file).split(b'\n') {
            let line = line?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Line<NewMessage>>(&line) {
                Ok(Line::Message(message)) => replay.messages.push(message),
                Ok(Line::Event(event)) => replay.events.push((*event).into()),
                Err(error) => {
                    replay.skipped += 1;
                    tracing::warn!(path = %path.display(), %error,
                        "event journal: an unreadable line skipped (the end of an append cut short?)");
                }
            }
        }
        let journal = EventJournal {
            dirty: replay.skipped > 0 || !replay.messages.is_empty() || !replay.events.is_empty(),
            file,
            path: path.to_owned(),
            line: Vec::new(),
        };
        journal.reserve();
        Ok((journal, replay))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends records and events and syncs them to disk.
    pub fn append(&mut self, messages: &[NewMessage], events: &[NewEvent]) -> std::io::Result<()> {
        if messages.is_empty() && events.is_empty() {
            return Ok(());
        }
        self.line.clear();
        // Only while the store fails: the copies of each event cost nothing
        // that matters.
        for message in messages {
            serde_json::to_writer(&mut self.line, &Line::Message(message))?;
            self.line.push(b'\n');
        }
        for event in events {
            let line: Line<&NewMessage> = Line::Event(Box::new(event.into()));
            serde_json::to_writer(&mut self.line, &line)?;
            self.line.push(b'\n');
        }
        self.dirty = true;
        let result = self
            .file
            .write_all(&self.line)
            .and_then(|()| self.file.sync_data());
        if result.is_err() {
            // A partial line is skipped when read back; the next append
            // starts on a line of its own.
            let _ = self.file.write_all(b"\n");
        }
        result
    }

    /// Empties the journal once everything in it is in the store, and makes
    /// its reserve whole again.
    pub fn clear(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.dirty = false;
        self.reserve();
        Ok(())
    }

    /// Keeps [`RESERVE`] bytes allocated beyond the end, where the
    /// filesystem allows it (best effort: without it, appends need free
    /// space like any write).
    fn reserve(&self) {
        if let Err(error) = rustix::fs::fallocate(
            &self.file,
            rustix::fs::FallocateFlags::KEEP_SIZE,
            0,
            RESERVE,
        ) {
            tracing::debug!(path = %self.path.display(), %error, "event journal: no space reserved");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_details::SmtpClientDetails;
    use crate::messages::MessageSource;

    fn message(id: &str) -> NewMessage {
        NewMessage {
            id: id.to_owned(),
            account_id: 3,
            sender: "shop@example.com".to_owned(),
            recipients: vec!["a@example.net".to_owned(), "b@example.net".to_owned()],
            subject: Some("Your order \u{e9}\r\nInjected: no".to_owned()),
            header_message_id: Some("<x@example.com>".to_owned()),
            tags: vec!["orders".to_owned()],
            sending_domain: Some("example.com".to_owned()),
            metadata: serde_json::json!({"order": 42}),
            source: MessageSource::Smtp,
            size: 1234,
            received_at_ms: 1_700_000_000_000,
            headers: None,
        }
    }

    fn event(kind: EventKind, details: EventDetails) -> NewEvent {
        NewEvent {
            account_id: 3,
            message_id: "01JOURNALTEST0000000000000".to_owned(),
            recipient: Some("a@example.net".to_owned()),
            kind,
            timestamp_ms: 1_700_000_000_001,
            details,
        }
    }

    fn every_kind_of_details() -> Vec<NewEvent> {
        vec![
            event(
                EventKind::Received,
                EventDetails::Received(ReceivedDetails {
                    smtp: Some(SmtpClientDetails {
                        client_ip: "192.0.2.1".to_owned(),
                        helo: "client.example".to_owned(),
                        tls: true,
                        auth_user: Some("crm".to_owned()),
                        listener: "submission".to_owned(),
                    }),
                    source: "smtp".to_owned(),
                    size: 1234,
                    dkim_domain: Some("example.com".to_owned()),
                    node: None,
                }),
            ),
            event(
                EventKind::Delivered,
                EventDetails::Delivery(DeliveryDetails {
                    attempt: 1,
                    mx: Some("mx.example.net".to_owned()),
                    reply_code: Some(250),
                    ..DeliveryDetails::default()
                }),
            ),
            event(
                EventKind::Suppressed,
                EventDetails::Suppressed(SuppressedDetails {
                    reason: "listed".to_owned(),
                }),
            ),
            event(
                EventKind::Opened,
                EventDetails::Engagement(EngagementDetails {
                    machine: Some(true),
                    unique: true,
                    ..EngagementDetails::default()
                }),
            ),
            event(
                EventKind::Complained,
                EventDetails::Complaint(ComplaintDetails::default()),
            ),
            event(EventKind::Deleted, EventDetails::None),
        ]
    }

    #[test]
    fn what_is_appended_reads_back_alike_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.journal");
        let messages = vec![message("01JOURNALTEST0000000000000")];
        let events = every_kind_of_details();
        {
            let (mut journal, replay) = EventJournal::open(&path).unwrap();
            assert_eq!(replay, Replay::default());
            journal.append(&messages, &events[..2]).unwrap();
            journal.append(&[], &events[2..]).unwrap();
        }
        let (mut journal, replay) = EventJournal::open(&path).unwrap();
        assert_eq!(replay.messages, messages);
        assert_eq!(replay.events, events);
        assert_eq!(replay.skipped, 0);
        // Emptied once written: nothing comes back.
        journal.clear().unwrap();
        drop(journal);
        let (_, replay) = EventJournal::open(&path).unwrap();
        assert_eq!(replay, Replay::default());
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.journal");
        let events = every_kind_of_details();
        {
            let (mut journal, _) = EventJournal::open(&path).unwrap();
            journal.append(&[], &events[..1]).unwrap();
        }
        // An append cut short by a crash: half a line.
        let mut file = File::options().append(true).open(&path).unwrap();
        file.write_all(b"{\"event\":{\"account_id\":3,\"mess")
            .unwrap();
        drop(file);
        let (mut journal, replay) = EventJournal::open(&path).unwrap();
        assert_eq!(replay.events, events[..1]);
        assert_eq!(replay.skipped, 1);
        // Appending after a torn line starts a line of its own... once the
        // torn one is ended: the writer clears the journal after a replay.
        journal.clear().unwrap();
        journal.append(&[], &events[1..2]).unwrap();
        drop(journal);
        let (_, replay) = EventJournal::open(&path).unwrap();
        assert_eq!(replay.events, events[1..2]);
    }

    #[test]
    fn the_journal_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.journal");
        EventJournal::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
