-- Teams: where each user can be reached (conversation references), chat turns answered through the
-- teams-turns queue, proactive alerts with their delivery status per recipient, and the pacing slot
-- that keeps a tenant's sends under Teams' per-app, per-tenant limit across every instance.

-- One conversation reference per user: written on install, conversation update and every message.
-- The Teams tenant id is kept beside the reference, which drops it when serialized.
CREATE TABLE teams_conversations (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    user_id         uuid NOT NULL REFERENCES users (id),
    teams_tenant_id uuid NOT NULL,
    aad_object_id   uuid NOT NULL,
    teams_user_id   text NOT NULL,
    conversation_id text NOT NULL,
    service_url     text NOT NULL,
    reference       jsonb NOT NULL,
    installed       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE UNIQUE INDEX teams_conversations_aad_object ON teams_conversations (tenant_id, aad_object_id);
GRANT SELECT, INSERT, UPDATE, DELETE ON teams_conversations TO ec_app;

-- A chat turn whose answer was too slow for the Bot Framework's 15 s: handed to teams-turns and
-- answered once (a redelivered message finds it answered). The text travels in the message only.
CREATE TABLE teams_turns (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    turn_id     text NOT NULL CHECK (length(turn_id) BETWEEN 1 AND 512),
    user_id     uuid NOT NULL REFERENCES users (id),
    status      text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'answered', 'failed')),
    detail      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (tenant_id, turn_id)
);
CREATE INDEX teams_turns_created ON teams_turns (created_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON teams_turns TO ec_app;

CREATE TABLE teams_alerts (
    tenant_id          uuid NOT NULL REFERENCES tenants (id),
    alert_id           text NOT NULL CHECK (alert_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$'),
    fingerprint        text NOT NULL,     -- SHA-256 of the request: the same id with other content is a conflict
    title              text NOT NULL,
    text               text NOT NULL,
    url                text,
    card               jsonb,
    unknown_recipients jsonb NOT NULL DEFAULT '[]',
    batches            integer NOT NULL CHECK (batches >= 0),
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, alert_id)
);
CREATE INDEX teams_alerts_created ON teams_alerts (created_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON teams_alerts TO ec_app;

-- Delivery status per (alert, recipient). A sender claims a row ('sending' until claimed_until)
-- before sending and records 'sent' right after Teams accepted it.
CREATE TABLE teams_alert_deliveries (
    tenant_id     uuid NOT NULL,
    alert_id      text NOT NULL,
    user_id       uuid NOT NULL REFERENCES users (id),
    batch         integer NOT NULL CHECK (batch >= 0),
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'sending', 'sent', 'unreachable', 'failed')),
    claimed_until timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    activity_id   text,
    detail        text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, alert_id, user_id),
    FOREIGN KEY (tenant_id, alert_id) REFERENCES teams_alerts (tenant_id, alert_id) ON DELETE CASCADE
);
CREATE INDEX teams_alert_deliveries_batch ON teams_alert_deliveries (tenant_id, alert_id, batch);
GRANT SELECT, INSERT, UPDATE, DELETE ON teams_alert_deliveries TO ec_app;

-- The next free send slot of a tenant: senders reserve slots with one conditional update each.
CREATE TABLE teams_send_pacing (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (id),
    next_slot timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE, DELETE ON teams_send_pacing TO ec_app;

DO $$
DECLARE
    tenant_table text;
BEGIN
    FOREACH tenant_table IN ARRAY ARRAY[
        'teams_conversations', 'teams_turns', 'teams_alerts', 'teams_alert_deliveries', 'teams_send_pacing'
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
