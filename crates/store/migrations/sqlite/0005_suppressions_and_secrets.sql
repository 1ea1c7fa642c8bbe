-- Per-account suppression lists with their audit log, and the installation's
-- named secrets. None of these tables bumps the 'generation' counter: that one
-- makes servers reload DKIM signers and keys, which a suppression change does
-- not touch (servers follow suppression_changes instead).

-- One row per suppressed address of an account. address is the whole address
-- lowercased (the comparison form). reason is why it was added (the first
-- reason stays when it is added again); source_message_id the message whose
-- bounce, complaint or unsubscribe added it; detail free text (the remote
-- reply, the feedback type). Times in unix milliseconds. The rows go with
-- their account.
CREATE TABLE suppressions (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    reason TEXT NOT NULL
        CHECK (reason IN ('hard_bounce', 'complaint', 'unsubscribe', 'manual')),
    source_message_id TEXT,
    detail TEXT,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, address)
) STRICT, WITHOUT ROWID;

-- Listing one reason, by address.
CREATE INDEX suppressions_reason ON suppressions (account_id, reason, address);

-- The audit log: one row per real change (an add of an address already there
-- writes none). AUTOINCREMENT ids grow in commit order, as SQLite runs one
-- writer at a time, so a server that polls "id > last seen" misses nothing.
-- reason is that of the entry added or removed; actor who did it ("cli",
-- "api", "bounce", "complaint", "unsubscribe"). No foreign key: the log
-- outlives what it describes.
CREATE TABLE suppression_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL,
    address TEXT NOT NULL,
    added INTEGER NOT NULL CHECK (added IN (0, 1)),
    reason TEXT,
    actor TEXT NOT NULL,
    at_ms INTEGER NOT NULL
) STRICT;

-- An account's (or one address's) history, oldest first.
CREATE INDEX suppression_changes_account
    ON suppression_changes (account_id, address, id);

-- Named secrets of the installation (e.g. the key that signs unsubscribe
-- links), made once from the OS random number generator and the same for every
-- process afterwards. Secrets: the database file is 0600.
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
