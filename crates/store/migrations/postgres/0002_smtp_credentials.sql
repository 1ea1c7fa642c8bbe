-- SMTP AUTH credentials. A username is unique over all accounts (the server must
-- know which account a login belongs to); it is stored lowercased, so uniqueness
-- and lookup are case-insensitive. password_hash is an argon2id PHC string.
CREATE TABLE smtp_credentials (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    username TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX smtp_credentials_account_id ON smtp_credentials (account_id);
