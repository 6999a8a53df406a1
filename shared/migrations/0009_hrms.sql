-- HRMS read: sync runs (history, checkpoint and lease in one row) and the employee context per tenant.

-- One row per run. The partial unique index allows one unfinished run per tenant, whatever the number of
-- instances and requests; the lease (holder, expiry) lets one worker at a time advance it; the cursor is
-- the checkpoint, moved in the same transaction as the page it follows.
CREATE TABLE hrms_runs (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    mode             text NOT NULL CHECK (mode IN ('full', 'incremental')),
    status           text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    requested_by     text NOT NULL,
    changed_since    timestamptz,
    cursor           text,
    pages            integer NOT NULL DEFAULT 0,
    seen             integer NOT NULL DEFAULT 0,
    created          integer NOT NULL DEFAULT 0,
    updated          integer NOT NULL DEFAULT 0,
    departed         integer NOT NULL DEFAULT 0,
    unmatched        integer NOT NULL DEFAULT 0,
    errors           integer NOT NULL DEFAULT 0,
    last_error       text,
    failure_reason   text,
    queued_at        timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    lease_holder     text,
    lease_expires_at timestamptz,
    CHECK (mode = 'full' OR changed_since IS NOT NULL)
);
CREATE UNIQUE INDEX hrms_runs_one_unfinished ON hrms_runs (tenant_id) WHERE status IN ('queued', 'running');
CREATE INDEX hrms_runs_tenant_queued ON hrms_runs (tenant_id, queued_at DESC);
GRANT SELECT, INSERT, UPDATE, DELETE ON hrms_runs TO ec_app;

-- What the HRMS says about each employee: the normalized profile, the tenant's mapped context keys, when it
-- was last seen, and the user it belongs to (kept once matched: the stored HRMS id wins over the email).
CREATE TABLE hrms_employees (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    hrms_id       text NOT NULL,
    user_id       uuid REFERENCES users (id),
    email         text,
    profile       jsonb NOT NULL,
    context       jsonb NOT NULL DEFAULT '{}',
    digest        text NOT NULL,
    status        text NOT NULL CHECK (status IN ('onboarding', 'active', 'leave', 'inactive', 'departed')),
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    seen_at       timestamptz NOT NULL DEFAULT now(),
    seen_run      uuid,
    changed_at    timestamptz NOT NULL DEFAULT now(),
    departed_at   timestamptz,
    PRIMARY KEY (tenant_id, hrms_id)
);
CREATE INDEX hrms_employees_user ON hrms_employees (tenant_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX hrms_employees_email ON hrms_employees (tenant_id, lower(email));
GRANT SELECT, INSERT, UPDATE, DELETE ON hrms_employees TO ec_app;

DO $$
DECLARE
    tenant_table text;
BEGIN
    FOREACH tenant_table IN ARRAY ARRAY['hrms_runs', 'hrms_employees'] LOOP
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
