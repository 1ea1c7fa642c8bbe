-- The first open and the first click of each recipient of each message: an
-- `opened` or `clicked` event says in details.unique whether it was the
-- recipient's first, and statistics count unique opens and clicks from that
-- flag. A row here makes the answer right across restarts and for every
-- process sharing the file (INSERT ... ON CONFLICT DO NOTHING: the one insert
-- that adds the row is the first). rcpt is the recipient's index in the
-- message (the one the tracking token names); kind is the event type. Times
-- in unix milliseconds. The rows go with their account.
CREATE TABLE tracking_firsts (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    rcpt INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('opened', 'clicked')),
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, message_id, rcpt, kind)
) STRICT, WITHOUT ROWID;
