-- The PostgreSQL form of the schema (issue 12). Every migration here has a
-- twin of the same number and name in ../sqlite, with the same tables,
-- columns (names, order, meaning), keys, indexes, triggers and seed rows;
-- tests/schema_parity.rs checks both stay in step. The dialect, decided once
-- for every file:
--
-- * INTEGER (ids, counts, unix seconds and milliseconds) is BIGINT: SQLite's
--   INTEGER is 64 bits, the store binds and reads i64, and sqlx decodes an
--   i64 from INT8 only (an INTEGER column would fail every read).
-- * INTEGER PRIMARY KEY AUTOINCREMENT is BIGINT GENERATED ALWAYS AS IDENTITY:
--   ids come from a sequence that never goes back, so an id is never reused
--   (what AUTOINCREMENT is for), and the store never inserts an id of its
--   own (copying rows from SQLite takes OVERRIDING SYSTEM VALUE, then
--   setval). A sequence hands ids out at insert, not at commit, and a
--   rolled-back insert leaves a gap.
-- * A 0/1 flag is BOOLEAN when the Rust side binds and reads a bool
--   (suppression_changes.added): sqlx sends a bool as BOOL, which an integer
--   column refuses, and decodes a bool from BOOL only.
-- * BLOB is BYTEA (Vec<u8> either way).
-- * Every TEXT column is COLLATE "C": SQLite compares text byte by byte
--   (BINARY), and so does "C", whatever the database's locale. Orders and
--   ranges on ids, names and addresses (page cursors such as
--   `address > $2`, message id bounds computed in Rust) then mean the same
--   on both, and lower() folds ASCII letters only, like SQLite's: the
--   expression indexes on lower(address) and the ASCII-lowercased values the
--   store compares with them agree. The test checks every text column.
-- * JSON columns (messages.tags and metadata, events.details,
--   webhooks.events) stay TEXT, not JSONB: sqlx binds a String as TEXT, and
--   PostgreSQL has no implicit or assignment cast from text to json(b), so
--   every write would need `$n::jsonb`; a String does not decode from JSONB,
--   so every read would need `::text`; and JSONB rewrites the text (key
--   order, spaces, duplicate keys), while the store hands details to webhook
--   POSTs and the API exactly as written. A query that needs JSON functions
--   casts the column (`details::jsonb`).
-- * STRICT has no counterpart (PostgreSQL columns are always typed), nor has
--   WITHOUT ROWID: every table is a heap beside its primary key index, so an
--   index that SQLite gets the primary key from for free (events_message's
--   trailing id) names it.
-- * Expression indexes are written as in SQLite (lower(address)).
-- * Triggers are row triggers calling one PL/pgSQL function (0003).

-- Accounts own everything else (credentials, domains, API keys, events). Ids
-- are never reused: rows elsewhere (events, statistics) may outlive an
-- account and must not be attributed to a new one. created_at is unix seconds.
CREATE TABLE accounts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
