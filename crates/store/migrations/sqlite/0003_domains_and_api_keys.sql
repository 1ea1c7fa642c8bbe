-- Sending domains with their DKIM keys, HTTP API keys, and the change counter a
-- running server polls to know when to reload what it caches from these tables.

-- Named counters, one row each. 'generation' is bumped by the triggers below in
-- the same transaction as every change to accounts, credentials, domains, DKIM
-- keys and API keys, whoever makes it (the server or a CLI process), so
-- "did anything change?" is one primary-key read.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO counters (name, value) VALUES ('generation', 0);

-- A domain belongs to one account: the name is unique over all accounts and
-- stored lowercase.
CREATE TABLE domains (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX domains_account_id ON domains (account_id);

-- private_key is PKCS#8 DER: a secret, which is why the database file is 0600.
-- public_key is the base64 value of the DNS record's p= tag.
CREATE TABLE dkim_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    selector TEXT NOT NULL,
    algorithm TEXT NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
    private_key BLOB NOT NULL,
    public_key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (domain_id, selector)
) STRICT;

-- Only the SHA-256 (hex) of a key is stored; the key itself is shown once.
-- prefix ("crt_" and the first 8 characters) names a key in lists and for
-- revocation. last_used_at is refreshed at most once a minute per key.
CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    prefix TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;

CREATE INDEX api_keys_account_id ON api_keys (account_id);

-- The generation triggers. Rows removed by ON DELETE CASCADE fire them too.
CREATE TRIGGER accounts_generation_insert AFTER INSERT ON accounts BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;
CREATE TRIGGER accounts_generation_update AFTER UPDATE ON accounts BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;
CREATE TRIGGER accounts_generation_delete AFTER DELETE ON accounts BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;

CREATE TRIGGER smtp_credentials_generation_insert AFTER INSERT ON smtp_credentials BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;
CREATE TRIGGER smtp_credentials_generation_update AFTER UPDATE ON smtp_credentials BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;
CREATE TRIGGER smtp_credentials_generation_delete AFTER DELETE ON smtp_credentials BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;

CREATE TRIGGER domains_generation_insert AFTER INSERT ON domains BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;
CREATE TRIGGER domains_generation_update AFTER UPDATE ON domains BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;
CREATE TRIGGER domains_generation_delete AFTER DELETE ON domains BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;

CREATE TRIGGER dkim_keys_generation_insert AFTER INSERT ON dkim_keys BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;
CREATE TRIGGER dkim_keys_generation_update AFTER UPDATE ON dkim_keys BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;
CREATE TRIGGER dkim_keys_generation_delete AFTER DELETE ON dkim_keys BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;

CREATE TRIGGER api_keys_generation_insert AFTER INSERT ON api_keys BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;
-- Not on last_used_at: that bookkeeping must not make servers reload.
CREATE TRIGGER api_keys_generation_update
AFTER UPDATE OF account_id, prefix, key_hash ON api_keys BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;
CREATE TRIGGER api_keys_generation_delete AFTER DELETE ON api_keys BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
END;
