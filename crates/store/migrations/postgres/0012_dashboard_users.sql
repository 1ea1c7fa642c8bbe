-- People who sign in to the dashboard (`carteiro user add`). An email is
-- unique and stored lowercased. role is admin (every account), member (manages
-- its own account) or viewer (reads its own account); a member or viewer has
-- an account, an admin may have one (the account its pages open on).
-- password_hash is an argon2id PHC string.
CREATE TABLE ui_users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email TEXT COLLATE "C" NOT NULL UNIQUE,
    role TEXT COLLATE "C" NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    account_id BIGINT REFERENCES accounts (id) ON DELETE CASCADE,
    password_hash TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    CHECK (role = 'admin' OR account_id IS NOT NULL)
);

CREATE INDEX ui_users_account_id ON ui_users (account_id);

-- Signed-in dashboard sessions, shared by every node of a cluster. The
-- cookie carries a random token; only its SHA-256 (hex) is kept. csrf is the
-- session's form token. A session ends at expires_at (pushed forward while it
-- is used), at logout, or when its user is removed.
CREATE TABLE ui_sessions (
    token_hash TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES ui_users (id) ON DELETE CASCADE,
    csrf TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX ui_sessions_user_id ON ui_sessions (user_id);
CREATE INDEX ui_sessions_expires_at ON ui_sessions (expires_at);
