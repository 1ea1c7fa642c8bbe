-- Message records and the event log, written in batches by the event writer.
-- Times are unix milliseconds. No foreign keys to accounts: these rows outlive
-- an account (account ids are never reused), and a foreign key would cost a
-- lookup per inserted row on the busiest tables.
--
-- Per accepted message with one recipient: one row in messages and one in
-- message_recipients, plus a row in events per event; state changes are
-- in-place updates of the recipient row.

-- One row per accepted message. id is a MessageId (26 characters, ordered by
-- creation time, compared byte by byte), so (account_id, id) serves lookups,
-- the newest-first listing and time ranges alike. tags is a JSON array as
-- text (message_tags indexes it), metadata a JSON object as text or NULL.
CREATE TABLE messages (
    account_id BIGINT NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    sender TEXT COLLATE "C" NOT NULL,
    subject TEXT COLLATE "C",
    header_message_id TEXT COLLATE "C",
    tags TEXT COLLATE "C" NOT NULL,
    metadata TEXT COLLATE "C",
    source TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, id)
);

-- The state of each recipient (queued, deferred, delivered, bounced, expired,
-- deleted, suppressed), kept by the event writer. idx is the position in the
-- envelope. Small rows, always read by their key.
CREATE TABLE message_recipients (
    account_id BIGINT NOT NULL,
    message_id TEXT COLLATE "C" NOT NULL,
    idx BIGINT NOT NULL,
    address TEXT COLLATE "C" NOT NULL,
    state TEXT COLLATE "C" NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, message_id, idx)
);

-- Search by recipient, case-insensitive (ASCII: lower() of a "C" column),
-- newest message first.
CREATE INDEX message_recipients_address
    ON message_recipients (account_id, lower(address), message_id);

-- Search by tag: the primary key is the index.
CREATE TABLE message_tags (
    account_id BIGINT NOT NULL,
    tag TEXT COLLATE "C" NOT NULL,
    message_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, tag, message_id)
);

-- The event log. Ids are assigned by the writer from the 'event_id' counter:
-- increasing in commit order (the counter row stays locked until the batch
-- commits, so a reader paging with "after id" never misses an event) and at
-- least 1024 times the commit time in milliseconds, so a time filter becomes
-- an id range on (account_id, id). details is a JSON object as text, kept as
-- written (webhook POSTs carry it as it is).
CREATE TABLE events (
    account_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    message_id TEXT COLLATE "C" NOT NULL,
    recipient TEXT COLLATE "C",
    kind TEXT COLLATE "C" NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    details TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, id)
);

-- A message's events, in id order.
CREATE INDEX events_message ON events (account_id, message_id, id);

INSERT INTO counters (name, value) VALUES ('event_id', 0);
