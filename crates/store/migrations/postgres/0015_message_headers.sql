-- A message's header section as it was queued (after Carteiro's own fields
-- and the DKIM signature), for the dashboard's message page and the API's
-- message lookup. Kept beside messages rather than in it, so that searches
-- that read every message row of an account do not page through kilobytes
-- of headers each. headers holds at most the first 16 KiB (cut at a line
-- end); size is the whole section's length in bytes.
CREATE TABLE message_headers (
    account_id BIGINT NOT NULL,
    message_id TEXT COLLATE "C" NOT NULL,
    headers TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (account_id, message_id)
);
