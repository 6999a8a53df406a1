-- WorkOS Directory Sync: the inbox of events (webhook and Events API alike), the directories with
-- their applier lease, the Events API cursor, and what each directory said last about each user,
-- group and membership. Those "registers" keep the version of the latest event applied per entity,
-- so that applying is order-independent: an older event never overwrites a newer state.

-- The inbox, keyed by WorkOS event id (webhooks and the Events API share ids). tenant_id is NULL
-- until the event's organization maps to a tenant (status 'unmatched'); such events are kept and
-- replayed once the tenant is configured.
CREATE TABLE workos_events (
    id              text PRIMARY KEY CHECK (id <> ''),
    event           text NOT NULL,
    organization_id text,
    directory_id    text,
    created_at      timestamptz NOT NULL,
    payload         jsonb NOT NULL,
    received_via    text NOT NULL CHECK (received_via IN ('webhook', 'events-api')),
    received_at     timestamptz NOT NULL DEFAULT now(),
    tenant_id       uuid REFERENCES tenants (id),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'unmatched', 'applied', 'stale', 'refused', 'failed')),
    outcome         text,
    applied_at      timestamptz,
    CHECK ((status = 'unmatched') = (tenant_id IS NULL))
);
CREATE INDEX workos_events_pending ON workos_events (tenant_id, directory_id, created_at, id) WHERE status = 'pending';
CREATE INDEX workos_events_unmatched ON workos_events (organization_id) WHERE status = 'unmatched';
CREATE INDEX workos_events_processed ON workos_events (applied_at) WHERE applied_at IS NOT NULL;
GRANT SELECT, INSERT, UPDATE, DELETE ON workos_events TO ec_app;

-- A directory of a tenant, and the lease that lets one applier at a time work on it.
CREATE TABLE workos_directories (
    id               text PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    organization_id  text NOT NULL,
    state            text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'deleted')),
    activated_at     timestamptz,
    deleted_at       timestamptz,
    lease_holder     text,
    lease_expires_at timestamptz,
    -- Set when a dsync-apply message is sent for the directory, cleared when an applier starts: a
    -- burst of webhooks sends one message, not one per event.
    apply_requested_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workos_directories_tenant ON workos_directories (tenant_id);
GRANT SELECT, INSERT, UPDATE ON workos_directories TO ec_app;

-- Where the Events API poller is (one row, global: the API serves every organization).
CREATE TABLE workos_event_cursor (
    name          text PRIMARY KEY,
    last_event_id text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE ON workos_event_cursor TO ec_app;

-- The registers. A user's and a group's version is (updated_at, event created_at, event id); a
-- membership's is (event created_at, event id). Deletion is final (a tombstone).
CREATE TABLE workos_directory_users (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    directory_id     text NOT NULL,
    user_id          text NOT NULL,
    updated_at       timestamptz NOT NULL,
    event_created_at timestamptz NOT NULL,
    event_id         text NOT NULL,
    deleted          boolean NOT NULL DEFAULT false,
    PRIMARY KEY (directory_id, user_id)
);
GRANT SELECT, INSERT, UPDATE ON workos_directory_users TO ec_app;

CREATE TABLE workos_directory_groups (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    directory_id     text NOT NULL,
    group_id         text NOT NULL,
    updated_at       timestamptz NOT NULL,
    event_created_at timestamptz NOT NULL,
    event_id         text NOT NULL,
    deleted          boolean NOT NULL DEFAULT false,
    PRIMARY KEY (directory_id, group_id)
);
GRANT SELECT, INSERT, UPDATE ON workos_directory_groups TO ec_app;

CREATE TABLE workos_directory_memberships (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    directory_id     text NOT NULL,
    group_id         text NOT NULL,
    user_id          text NOT NULL,
    present          boolean NOT NULL,
    event_created_at timestamptz NOT NULL,
    event_id         text NOT NULL,
    PRIMARY KEY (directory_id, group_id, user_id)
);
CREATE INDEX workos_directory_memberships_user ON workos_directory_memberships (directory_id, user_id);
GRANT SELECT, INSERT, UPDATE ON workos_directory_memberships TO ec_app;

-- Row-level security as on every tenant table. The inbox's unmatched rows (no tenant yet) are seen
-- only by transactions that work across tenants (intake, replay, retention).
DO $$
DECLARE
    tenant_table text;
BEGIN
    FOREACH tenant_table IN ARRAY ARRAY[
        'workos_events', 'workos_directories', 'workos_directory_users', 'workos_directory_groups',
        'workos_directory_memberships'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = app_current_tenant() OR app_all_tenants()) '
            'WITH CHECK (tenant_id = app_current_tenant() OR app_all_tenants())',
            tenant_table);
    END LOOP;
END
$$;
