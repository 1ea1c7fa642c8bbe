-- Accounts own everything else (credentials, and later domains, API keys, events).
-- AUTOINCREMENT so an id is never reused after a delete: rows elsewhere (events,
-- statistics) may outlive an account and must not be attributed to a new one.
-- created_at is unix seconds, which maps to BIGINT on PostgreSQL.
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;
