-- The nodes sharing the store: each running server writes its row every few
-- seconds (`heartbeat_at_ms`) with the size of its own queue, and marks it
-- stopped when it shuts down cleanly. `carteiro cluster status` lists them;
-- the live ones (a recent heartbeat, not stopped) split the per-destination
-- limits between them. On SQLite there is one node, but the table is the
-- same so the status and the code reading it are too.
CREATE TABLE cluster_nodes (
    name TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    version TEXT COLLATE "C" NOT NULL,
    started_at_ms BIGINT NOT NULL,
    heartbeat_at_ms BIGINT NOT NULL,
    stopped_at_ms BIGINT,
    queued_messages BIGINT NOT NULL,
    queued_recipients BIGINT NOT NULL
);
