-- The first open and the first click of each recipient of each message: an
-- `opened` or `clicked` event says in details.unique whether it was the
-- recipient's first, and statistics count unique opens and clicks from that
-- flag. A row here makes the answer right across restarts and for every
-- process and node sharing the database (INSERT ... ON CONFLICT DO NOTHING:
-- the one insert that adds the row is the first). rcpt is the recipient's
-- index in the message (the one the tracking token names); kind is the event
-- type. Times in unix milliseconds. The rows go with their account.
CREATE TABLE tracking_firsts (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    message_id TEXT COLLATE "C" NOT NULL,
    rcpt BIGINT NOT NULL,
    kind TEXT COLLATE "C" NOT NULL CHECK (kind IN ('opened', 'clicked')),
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, message_id, rcpt, kind)
);
