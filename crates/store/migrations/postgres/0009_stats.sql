-- Statistics rollups, kept by the event writer in the same transaction as
-- the events they count (so they never disagree with the event log after a
-- crash or a failed batch). Counts are per recipient: a message to three
-- recipients counts three `received`.
--
-- Hours are unix seconds of the hour's start (UTC); days are sums of hours.
-- The tag '' row counts every message; a message with tags counts, in
-- addition, once in each of its tags' rows. So `tag = ''` is the total and
-- `tag = 'x'` the messages tagged x, and neither double counts. domain is
-- the sending domain (the DKIM domain, else the From domain, else the
-- envelope sender's domain; '' when none).

-- The sending domain of a message, remembered so that events arriving long
-- after the message (retries, opens, clicks) count under the same domain.
-- NULL for messages recorded before this migration: their envelope
-- sender's domain is used instead.
ALTER TABLE messages ADD COLUMN sending_domain TEXT COLLATE "C";

-- Totals per account, tag, hour and sending domain: what a plain
-- `GET /api/v1/stats` reads (a range scan on the key, whatever the number of
-- tags or providers).
CREATE TABLE stats_hourly (
    account_id BIGINT NOT NULL,
    tag TEXT COLLATE "C" NOT NULL,
    hour BIGINT NOT NULL,
    domain TEXT COLLATE "C" NOT NULL,
    received BIGINT NOT NULL DEFAULT 0,
    delivered BIGINT NOT NULL DEFAULT 0,
    deferred BIGINT NOT NULL DEFAULT 0,
    bounced BIGINT NOT NULL DEFAULT 0,
    expired BIGINT NOT NULL DEFAULT 0,
    suppressed BIGINT NOT NULL DEFAULT 0,
    complained BIGINT NOT NULL DEFAULT 0,
    opened BIGINT NOT NULL DEFAULT 0,
    opened_unique BIGINT NOT NULL DEFAULT 0,
    clicked BIGINT NOT NULL DEFAULT 0,
    clicked_unique BIGINT NOT NULL DEFAULT 0,
    unsubscribed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, tag, hour, domain)
);

-- Grouping by tag reads every tag's rows of a time range.
CREATE INDEX stats_hourly_by_hour ON stats_hourly (account_id, hour);

-- The same counts split by destination provider (recipient domains grouped
-- by MX host, see carteiro_mail::provider): read only when a request groups
-- or filters by provider, so the long tail of small recipient domains never
-- slows the plain totals.
CREATE TABLE stats_hourly_provider (
    account_id BIGINT NOT NULL,
    tag TEXT COLLATE "C" NOT NULL,
    hour BIGINT NOT NULL,
    provider TEXT COLLATE "C" NOT NULL,
    domain TEXT COLLATE "C" NOT NULL,
    received BIGINT NOT NULL DEFAULT 0,
    delivered BIGINT NOT NULL DEFAULT 0,
    deferred BIGINT NOT NULL DEFAULT 0,
    bounced BIGINT NOT NULL DEFAULT 0,
    expired BIGINT NOT NULL DEFAULT 0,
    suppressed BIGINT NOT NULL DEFAULT 0,
    complained BIGINT NOT NULL DEFAULT 0,
    opened BIGINT NOT NULL DEFAULT 0,
    opened_unique BIGINT NOT NULL DEFAULT 0,
    clicked BIGINT NOT NULL DEFAULT 0,
    clicked_unique BIGINT NOT NULL DEFAULT 0,
    unsubscribed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, tag, hour, provider, domain)
);

-- The provider of each recipient domain, learned from the MX host of a
-- delivery attempt: events that name no MX host (received, suppressed,
-- opened, clicked, ...) count under the provider their domain was last
-- delivered to, or under the recipient domain itself before any delivery.
CREATE TABLE stats_providers (
    domain TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    provider TEXT COLLATE "C" NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
