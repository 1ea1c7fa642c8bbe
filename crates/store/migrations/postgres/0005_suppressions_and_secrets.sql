-- Per-account suppression lists with their audit log, and the installation's
-- named secrets. None of these tables bumps the 'generation' counter: that one
-- makes servers reload DKIM signers and keys, which a suppression change does
-- not touch (servers follow suppression_changes instead).

-- One row per suppressed address of an account. address is the whole address
-- with ASCII letters lowercased (the comparison form). reason is why it was
-- added (the first reason stays when it is added again); source_message_id
-- the message whose bounce, complaint or unsubscribe added it; detail free
-- text (the remote reply, the feedback type). Times in unix milliseconds. The
-- rows go with their account.
CREATE TABLE suppressions (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    address TEXT COLLATE "C" NOT NULL,
    reason TEXT COLLATE "C" NOT NULL
        CHECK (reason IN ('hard_bounce', 'complaint', 'unsubscribe', 'manual')),
    source_message_id TEXT COLLATE "C",
    detail TEXT COLLATE "C",
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, address)
);

-- Listing one reason, by address.
CREATE INDEX suppressions_reason ON suppressions (account_id, reason, address);

-- The audit log: one row per real change (an add of an address already there
-- writes none). A server polls "id > last seen". SQLite runs one writer at a
-- time, so its AUTOINCREMENT ids grow in commit order; an identity hands ids
-- out at insert, so two transactions committing in the other order could let
-- a poller skip a row: writers on PostgreSQL must serialize their inserts
-- here (a lock taken in the transaction) before that holds again. added is
-- BOOLEAN (the store binds and reads a bool). reason is that of the entry
-- added or removed; actor who did it ("cli", "api", "bounce", "complaint",
-- "unsubscribe"). No foreign key: the log outlives what it describes.
CREATE TABLE suppression_changes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL,
    address TEXT COLLATE "C" NOT NULL,
    added BOOLEAN NOT NULL,
    reason TEXT COLLATE "C",
    actor TEXT COLLATE "C" NOT NULL,
    at_ms BIGINT NOT NULL
);

-- An account's (or one address's) history, oldest first.
CREATE INDEX suppression_changes_account
    ON suppression_changes (account_id, address, id);

-- Named secrets of the installation (e.g. the key that signs unsubscribe
-- links), made once from the OS random number generator and the same for every
-- process afterwards.
CREATE TABLE secrets (
    name TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
