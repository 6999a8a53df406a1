-- Email lookups that row-level security lets use an index.
--
-- Under RLS, a condition that passes a column to a function not marked LEAKPROOF, such as
-- lower(primary_email), cannot be used as an index condition: the policy must be checked first, so
-- a lookup by email scanned every user of the tenant. The key is now a column of its own, compared
-- with the plain (leakproof) text equality.
ALTER TABLE users ADD COLUMN primary_email_key text GENERATED ALWAYS AS (lower(primary_email)) STORED;

DROP INDEX users_email_per_tenant;
DROP INDEX users_email_any_status;
CREATE UNIQUE INDEX users_email_per_tenant ON users (tenant_id, primary_email_key)
    WHERE status <> 'deleted' AND primary_email IS NOT NULL;
CREATE INDEX users_email_any_status ON users (tenant_id, primary_email_key);
