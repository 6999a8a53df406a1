-- SSO and routing: login states (one per sign-in started), hand-over codes (one per app hand-over),
-- the record of every sign-in attempt, and the per-client counter that paces unauthenticated hits.

-- A login state is looked up by the hash of the random value that travels in the IdP round trip and
-- in the browser's cookie; the tenant is known, but the lookup happens before the request is scoped.
CREATE TABLE login_states (
    state_hash  text PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    provider    text NOT NULL CHECK (provider IN ('workos', 'entra')),
    app_name    text,
    return_to   text,
    app_state   text,
    login_hint  text,
    flow        jsonb NOT NULL DEFAULT '{}',  -- PKCE verifier (WorkOS), MSAL's flow (Entra)
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX login_states_expires ON login_states (expires_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON login_states TO ec_app;

CREATE TABLE handoff_codes (
    code_hash   text PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    app_id      uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id),
    claims      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    redeemed_at timestamptz
);
CREATE INDEX handoff_codes_expires ON handoff_codes (expires_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON handoff_codes TO ec_app;

-- Every sign-in attempt, granted or refused. tenant_id is NULL when no tenant could be told.
CREATE TABLE sign_in_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at   timestamptz NOT NULL DEFAULT now(),
    tenant_id     uuid REFERENCES tenants (id),
    user_id       uuid,
    provider      text,
    connection_id text,
    app_name      text,
    outcome       text NOT NULL CHECK (outcome IN ('granted', 'refused')),
    reason        text NOT NULL,
    client        text
);
CREATE INDEX sign_in_attempts_tenant ON sign_in_attempts (tenant_id, occurred_at);
CREATE INDEX sign_in_attempts_occurred ON sign_in_attempts (occurred_at);
GRANT SELECT, INSERT, DELETE ON sign_in_attempts TO ec_app;

-- Unauthenticated hits per client and minute (login, callback); old windows are purged.
CREATE TABLE login_rate (
    client       text NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL DEFAULT 1,
    PRIMARY KEY (client, window_start)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON login_rate TO ec_app;

-- A tenant may allow logins its IdP starts (no state); off unless turned on.
ALTER TABLE tenants ADD COLUMN allow_idp_initiated boolean NOT NULL DEFAULT false;

-- Row-level security as on every tenant table (sign_in_attempts rows without a tenant are seen only
-- across tenants, by retention and the operator).
ALTER TABLE login_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE login_states FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON login_states
    USING (tenant_id = app_current_tenant() OR app_all_tenants())
    WITH CHECK (tenant_id = app_current_tenant() OR app_all_tenants());
ALTER TABLE handoff_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE handoff_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON handoff_codes
    USING (tenant_id = app_current_tenant() OR app_all_tenants())
    WITH CHECK (tenant_id = app_current_tenant() OR app_all_tenants());
ALTER TABLE sign_in_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE sign_in_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sign_in_attempts
    USING (tenant_id = app_current_tenant() OR app_all_tenants())
    WITH CHECK (tenant_id = app_current_tenant() OR app_all_tenants() OR tenant_id IS NULL);
