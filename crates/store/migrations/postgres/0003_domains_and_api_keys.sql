-- Sending domains with their DKIM keys, HTTP API keys, and the change counter a
-- running server polls to know when to reload what it caches from these tables.

-- Named counters, one row each. 'generation' is bumped by the triggers below in
-- the same transaction as every change to accounts, credentials, domains, DKIM
-- keys and API keys, whoever makes it (a server, another node, a CLI process),
-- so "did anything change?" is one primary-key read.
CREATE TABLE counters (
    name TEXT COLLATE "C" PRIMARY KEY,
    value BIGINT NOT NULL
);

INSERT INTO counters (name, value) VALUES ('generation', 0);

-- A domain belongs to one account: the name is unique over all accounts and
-- stored lowercase.
CREATE TABLE domains (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE INDEX domains_account_id ON domains (account_id);

-- private_key is PKCS#8 DER: a secret. public_key is the base64 value of the
-- DNS record's p= tag.
CREATE TABLE dkim_keys (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    selector TEXT COLLATE "C" NOT NULL,
    algorithm TEXT COLLATE "C" NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
    private_key BYTEA NOT NULL,
    public_key TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (domain_id, selector)
);

-- Only the SHA-256 (hex) of a key is stored; the key itself is shown once.
-- prefix ("crt_" and the first 8 characters) names a key in lists and for
-- revocation. last_used_at is refreshed at most once a minute per key.
CREATE TABLE api_keys (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    prefix TEXT COLLATE "C" NOT NULL UNIQUE,
    key_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);

CREATE INDEX api_keys_account_id ON api_keys (account_id);

-- The generation triggers: row triggers, as SQLite's are (a statement that
-- changes no row moves nothing). Rows removed by ON DELETE CASCADE fire them
-- too. The row lock on the counter orders concurrent writers.
CREATE FUNCTION counters_bump_generation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
    RETURN NULL;
END;
$$;

CREATE TRIGGER accounts_generation_insert AFTER INSERT ON accounts
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();
CREATE TRIGGER accounts_generation_update AFTER UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();
CREATE TRIGGER accounts_generation_delete AFTER DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();

CREATE TRIGGER smtp_credentials_generation_insert AFTER INSERT ON smtp_credentials
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();
CREATE TRIGGER smtp_credentials_generation_update AFTER UPDATE ON smtp_credentials
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();
CREATE TRIGGER smtp_credentials_generation_delete AFTER DELETE ON smtp_credentials
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();

CREATE TRIGGER domains_generation_insert AFTER INSERT ON domains
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();
CREATE TRIGGER domains_generation_update AFTER UPDATE ON domains
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();
CREATE TRIGGER domains_generation_delete AFTER DELETE ON domains
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();

CREATE TRIGGER dkim_keys_generation_insert AFTER INSERT ON dkim_keys
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();
CREATE TRIGGER dkim_keys_generation_update AFTER UPDATE ON dkim_keys
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();
CREATE TRIGGER dkim_keys_generation_delete AFTER DELETE ON dkim_keys
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();

CREATE TRIGGER api_keys_generation_insert AFTER INSERT ON api_keys
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();
-- Not on last_used_at: that bookkeeping must not make servers reload. (As in
-- SQLite, UPDATE OF fires when a listed column is in the SET list.)
CREATE TRIGGER api_keys_generation_update
    AFTER UPDATE OF account_id, prefix, key_hash ON api_keys
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();
CREATE TRIGGER api_keys_generation_delete AFTER DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION counters_bump_generation();
