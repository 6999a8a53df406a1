-- HRMS write-back: completion and assessment results that tenant apps report, and what became of them.
-- One row per (tenant, result_id): the same result reported again is the same row.
CREATE TABLE hrms_results (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    result_id       text NOT NULL CHECK (result_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$'),
    app_id          uuid REFERENCES apps (id) ON DELETE SET NULL,
    user_id         uuid NOT NULL REFERENCES users (id),
    kind            text NOT NULL CHECK (kind IN ('completion', 'assessment')),
    title           text NOT NULL,
    completed_on    date NOT NULL,
    score           numeric,
    hours           numeric,
    credits         numeric,
    details         jsonb,
    fingerprint     text NOT NULL,  -- the reported content: the same result_id with other content is a conflict
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'written', 'failed')),
    hrms_kind       text,
    hrms_record_id  text,
    failure_reason  text,
    last_error      text,
    attempts        integer NOT NULL DEFAULT 0,
    received_at     timestamptz NOT NULL DEFAULT now(),
    written_at      timestamptz,
    PRIMARY KEY (tenant_id, result_id)
);
CREATE INDEX hrms_results_received ON hrms_results (tenant_id, received_at DESC);
GRANT SELECT, INSERT, UPDATE, DELETE ON hrms_results TO ec_app;

ALTER TABLE hrms_results ENABLE ROW LEVEL SECURITY;
ALTER TABLE hrms_results FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON hrms_results
    USING (tenant_id = app_current_tenant() OR app_all_tenants())
    WITH CHECK (tenant_id = app_current_tenant() OR app_all_tenants());
