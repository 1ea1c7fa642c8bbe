-- Message records and the event log, written in batches by the event writer.
-- Times are unix milliseconds. No foreign keys to accounts: these rows outlive
-- an account (AUTOINCREMENT account ids are never reused), and a foreign key
-- would cost a lookup per inserted row on the busiest tables.
--
-- Per accepted message with one recipient: one row in messages and one in
-- message_recipients, plus a row in events per event; state changes are
-- in-place updates of the recipient row.

-- One row per accepted message. id is a MessageId (26 characters, ordered by
-- creation time), so (account_id, id) serves lookups, the newest-first listing
-- and time ranges alike. tags is a JSON array (message_tags indexes it),
-- metadata a JSON object or NULL.
CREATE TABLE messages (
    account_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    sender TEXT NOT NULL,
    subject TEXT,
    header_message_id TEXT,
    tags TEXT NOT NULL,
    metadata TEXT,
    source TEXT NOT NULL,
    size INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, id)
) STRICT;

-- The state of each recipient (queued, deferred, delivered, bounced, expired,
-- deleted, suppressed), kept by the event writer. idx is the position in the
-- envelope. Small rows, always read by their key: WITHOUT ROWID.
CREATE TABLE message_recipients (
    account_id INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, message_id, idx)
) STRICT, WITHOUT ROWID;

-- Search by recipient, case-insensitive (ASCII), newest message first.
CREATE INDEX message_recipients_address
    ON message_recipients (account_id, lower(address), message_id);

-- Search by tag: the table is its own index.
CREATE TABLE message_tags (
    account_id INTEGER NOT NULL,
    tag TEXT NOT NULL,
    message_id TEXT NOT NULL,
    PRIMARY KEY (account_id, tag, message_id)
) STRICT, WITHOUT ROWID;

-- The event log. Ids are assigned by the writer from the 'event_id' counter:
-- increasing in commit order (a reader paging with "after id" never misses an
-- event) and at least 1024 times the commit time in milliseconds, so a time
-- filter becomes an id range on (account_id, id).
CREATE TABLE events (
    account_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    recipient TEXT,
    kind TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    details TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
) STRICT, WITHOUT ROWID;

-- A message's events, in order. Naming id (which an index of a WITHOUT ROWID
-- table carries anyway) lets the planner see that the index yields id order.
CREATE INDEX events_message ON events (account_id, message_id, id);

INSERT INTO counters (name, value) VALUES ('event_id', 0);
