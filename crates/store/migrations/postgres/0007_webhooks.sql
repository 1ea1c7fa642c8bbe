-- Webhook endpoints of an account. The event log is their outbox: each
-- endpoint keeps a cursor (last_event_id, the id of the last event it is done
-- with), so pending webhook events are simply the account's events after it,
-- and nothing is lost across a restart. Times are unix milliseconds. The
-- rows go with their account.
--
-- events is a JSON array of event type names as text (empty: every type).
-- secret is the signing secret (`whsec_…`), kept as it is because every POST
-- is signed with it.
--
-- Delivery bookkeeping, written by the dispatcher: failures counts attempts
-- failed in a row (0 after a success); failing_since_ms is when the current
-- run of failures began (NULL when the last attempt succeeded); last_error is
-- the last failure's description; skipped_events counts events given up on
-- after the endpoint kept failing for days.
CREATE TABLE webhooks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url TEXT COLLATE "C" NOT NULL,
    events TEXT COLLATE "C" NOT NULL,
    secret TEXT COLLATE "C" NOT NULL,
    created_at_ms BIGINT NOT NULL,
    last_event_id BIGINT NOT NULL,
    failures BIGINT NOT NULL DEFAULT 0,
    failing_since_ms BIGINT,
    last_error TEXT COLLATE "C",
    last_error_at_ms BIGINT,
    last_success_at_ms BIGINT,
    skipped_events BIGINT NOT NULL DEFAULT 0
);

-- An account's endpoints, in creation order.
CREATE INDEX webhooks_account ON webhooks (account_id, id);
