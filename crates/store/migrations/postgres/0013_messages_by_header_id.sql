-- The message search by Message-ID header (the dashboard's message id box,
-- the API's message_id parameter) looks a message up by its header within
-- an account: without this it read every message of the account (0.3 s for
-- a million).
CREATE INDEX messages_by_header_message_id ON messages (account_id, header_message_id);
