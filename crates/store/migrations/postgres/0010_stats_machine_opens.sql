-- Opens by machines (image proxies such as Gmail's, Apple Mail Privacy
-- Protection's prefetcher, link scanners fetching the pixel within a second
-- of delivery: an `opened` event whose details say "machine": true) are
-- counted apart, so that `opened` and `opened_unique` count people only.
--
-- Rows written before this migration keep the machine opens they counted in
-- `opened` and `opened_unique`: telling them apart would mean scanning the
-- event log, and the rollups never do.
ALTER TABLE stats_hourly ADD COLUMN opened_machine BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stats_hourly_provider ADD COLUMN opened_machine BIGINT NOT NULL DEFAULT 0;
