-- Bounces, complaints and unsubscribes name a message by its id alone (the
-- VERP token carries no account): find its account without a full scan.
CREATE INDEX messages_by_id ON messages (id);
