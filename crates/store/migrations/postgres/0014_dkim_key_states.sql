-- Key rotation: a domain's keys are pending (made, published in DNS, not yet
-- signing), active (signing) or retired (no longer signing; their DNS records
-- should stay published a few days for mail still on its way). Keys from
-- before were all signing.
ALTER TABLE dkim_keys ADD COLUMN state TEXT COLLATE "C" NOT NULL DEFAULT 'active'
    CHECK (state IN ('pending', 'active', 'retired'));
ALTER TABLE dkim_keys ADD COLUMN retired_at BIGINT;
