"""The demo tenant that `make dev` seeds, so a fresh checkout has something to provision and sign in to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared import db
from shared.scim.tokens import create_scim_token, revoke_scim_tokens_named
from shared.tenants.apps import AppNotFound, AppSpec, add_app, get_app
from shared.tenants.models import TenantNotFound
from shared.tenants.registry import TenantChanges, create_tenant, get_tenant, update_tenant

if TYPE_CHECKING:
    import psycopg

    from shared.tenants.models import Tenant

DEMO_TENANT = "demo"
DSYNC_TENANT = "demo-dsync"
DSYNC_DOMAIN = "demo-dsync.example"
DSYNC_ORGANIZATION = "org_demo_dsync"  # fixed, so the stand-in (in memory) and the database agree
SSO_TENANT = "demo-sso"
SSO_DOMAIN = "demo-sso.example"
SSO_ORGANIZATION = "org_demo_sso"
SSO_APP_PORT = 7090
ENTRA_TENANT = "demo-entra"
ENTRA_DOMAIN = "demo-entra.example"
ENTRA_TENANT_ID = "9e3b0d4a-0000-4000-8000-00000000e17a"  # fixed: the stand-in (in memory) registers it each run
ENTRA_CLIENT_ID = "5c1e7a2b-0000-4000-8000-0000000c11e7"
ENTRA_CLIENT_SECRET = "local-only-entra-client-secret"  # noqa: S105 - the stand-in's, never a real one
ENTRA_APP_PORT = 7092
ENTRA_USERS = (("alan@demo-entra.example", "Alan", "Turing", ("member",)),)
# The stand-in's test users of the demo-sso organization (its sign-in page lists them).
SSO_USERS = (("ada@demo-sso.example", "Ada", "Lovelace", "member"), ("grace@demo-sso.example", "Grace", "Hopper",
                                                                     "admin"))
DEMO_APP = "coach"
# The demo tenant's coach instance is the chatbot stand-in (local/chatbot.py): Teams chat is relayed there.
CHATBOT_PORT = 7091
DEMO_APP_URL = f"http://127.0.0.1:{CHATBOT_PORT}"
DEMO_TEAMS_TENANT_ID = "d3e0d3e0-0000-4000-8000-00000000de70"  # the demo tenant's Microsoft 365 tenant
DEMO_CONNECT_REFERENCE = "demo-coach-connect"  # the coach app's `connect` outbound secret (SECRET_DEMO_COACH_CONNECT)
DEMO_CONNECT_SECRET = "local-only-chat-secret"  # noqa: S105 - the chatbot stand-in's, never a real one
DEMO_EMPLOYEES = (("alex@demo.example", "Alex", "Example"),)
# The bot's own identity in local runs: an app registration in a home tenant of the Entra ID stand-in.
BOT_APP_ID = "b0700000-0000-4000-8000-0000000de7b0"
BOT_HOME_TENANT_ID = "b0700000-0000-4000-8000-00000000a0e7"
BOT_APP_SECRET = "local-only-bot-secret"  # noqa: S105 - the Entra ID stand-in's, never a real one
SEED_ACTOR = "make dev"
# The demo tenant's HRMS: the Personio stand-in (local/personio.py), its first employee being Alex.
PERSONIO_PORT = 7084
DEMO_PERSONIO_EMPLOYEES = 200
DEMO_PERSONIO_REFERENCE = "demo-personio"  # SECRET_DEMO_PERSONIO: the stand-in's client credentials
DEMO_HRMS_MAPPING = {"competencies": "dynamic_1001", "review_rating": "dynamic_1002"}
# Where the demo tenant's results go in the Personio stand-in (its write-back attributes).
DEMO_WRITEBACK = {
    "enabled": True,
    "completion": {"title": "dynamic_2001", "completed_on": "dynamic_2002"},
    "assessment": {"title": "dynamic_2001", "completed_on": "dynamic_2002", "score": "dynamic_2003"},
}


def seed_demo_tenant() -> str:
    """Create the ``demo`` tenant (SCIM-provisioned) and its ``coach`` instance app unless they exist;
    returns a fresh SCIM token for it (the previous one that `make dev` issued is revoked)."""
    with db.transaction() as conn:
        try:
            tenant = get_tenant(conn, DEMO_TENANT)
        except TenantNotFound:
            tenant = create_tenant(conn, DEMO_TENANT, TenantChanges(
                display_name="Demo Company", add_domains=("demo.example",), provisioning_channel="scim",
                support_contact="it@demo.example"))
        try:
            get_app(conn, tenant, DEMO_APP)
        except AppNotFound:
            add_app(conn, tenant, DEMO_APP, AppSpec(kind="instance", base_url=DEMO_APP_URL,
                                                   outbound_secret_refs={"connect": DEMO_CONNECT_REFERENCE}))
            tenant = update_tenant(conn, DEMO_TENANT, TenantChanges(default_app=DEMO_APP))
        _seed_teams(conn, tenant)
        revoke_scim_tokens_named(conn, tenant, SEED_ACTOR)
        _, token = create_scim_token(conn, tenant, SEED_ACTOR, created_by=SEED_ACTOR)
    return token


def _seed_teams(conn: psycopg.Connection, tenant: Tenant) -> None:
    """Teams for the demo tenant: its Microsoft 365 tenant id, the coach app as the chatbot stand-in (an
    older .local seeded it elsewhere), and one employee to chat as."""
    from psycopg.types.json import Jsonb

    from shared.identity import store
    from shared.identity.models import Actor, ActorKind, Channel, PersonClaims, UserNotFound

    if tenant.teams_tenant_id is None:
        tenant = update_tenant(conn, tenant.slug, TenantChanges(teams_tenant_id=DEMO_TEAMS_TENANT_ID))
    conn.execute("UPDATE apps SET base_url = %s, outbound_secret_refs = outbound_secret_refs || %s"
                 " WHERE tenant_id = %s AND name = %s", [DEMO_APP_URL, Jsonb({"connect": DEMO_CONNECT_REFERENCE}),
                                                         tenant.id, DEMO_APP])
    for email, given_name, family_name in DEMO_EMPLOYEES:
        try:
            store.find_user(conn, tenant, email)
            continue
        except UserNotFound:
            pass
        store.sync_person(conn, tenant, PersonClaims(
            channel=Channel.SCIM, issuer="scim", external_id=None, email=email, given_name=given_name,
            family_name=family_name, display_name=f"{given_name} {family_name}", active=True),
            Actor(ActorKind.SYSTEM, SEED_ACTOR))


def demo_coach_client_id() -> str:
    with db.transaction() as conn:
        return get_app(conn, get_tenant(conn, DEMO_TENANT), DEMO_APP).client_id


def seed_dsync_tenant() -> str:
    """Create the ``demo-dsync`` tenant (provisioned by WorkOS Directory Sync, linked to the stand-in's
    organization DSYNC_ORGANIZATION) unless it exists; returns its slug."""
    with db.transaction() as conn:
        _tenant(conn, DSYNC_TENANT, TenantChanges(
            display_name="Demo Directory Sync", add_domains=(DSYNC_DOMAIN,), provisioning_channel="workos",
            workos_organization_id=DSYNC_ORGANIZATION, support_contact=f"it@{DSYNC_DOMAIN}"))
    return DSYNC_TENANT


def _tenant(conn: psycopg.Connection, slug: str, changes: TenantChanges) -> Tenant:
    """The tenant with this slug, created with these fields when it does not exist yet."""
    try:
        return get_tenant(conn, slug)
    except TenantNotFound:
        return create_tenant(conn, slug, changes)


def _seed_sign_in_demo(slug: str, changes: TenantChanges, app_port: int) -> tuple[str, str]:
    """A tenant whose ``coach`` app is a demo app on ``app_port``, unless they exist; returns the app's
    client id and a fresh secret (the older one is revoked)."""
    from shared.tenants.apps import rotate_app_secret

    with db.transaction() as conn:
        tenant = _tenant(conn, slug, changes)
        try:
            get_app(conn, tenant, DEMO_APP)
        except AppNotFound:
            add_app(conn, tenant, DEMO_APP, AppSpec(kind="instance", base_url=f"http://127.0.0.1:{app_port}"))
            update_tenant(conn, slug, TenantChanges(default_app=DEMO_APP))
        app, _, secret, _ = rotate_app_secret(conn, tenant, DEMO_APP, created_by=SEED_ACTOR)
    return app.client_id, secret


def seed_sso_tenant() -> tuple[str, str]:
    """``demo-sso``: sign-in through WorkOS, users created at first sign-in; its demo app's credentials."""
    return _seed_sign_in_demo(SSO_TENANT, TenantChanges(
        display_name="Demo Sign-in", add_domains=(SSO_DOMAIN,), provisioning_channel="sso-jit",
        workos_organization_id=SSO_ORGANIZATION, support_contact=f"it@{SSO_DOMAIN}"), SSO_APP_PORT)


def seed_entra_tenant() -> tuple[str, str]:
    """``demo-entra``: sign-in directly with Entra ID, users created at first sign-in; its demo app's
    credentials."""
    return _seed_sign_in_demo(ENTRA_TENANT, TenantChanges(
        display_name="Demo Entra ID", add_domains=(ENTRA_DOMAIN,), provisioning_channel="sso-jit",
        sso_provider="entra", entra_tenant_id=ENTRA_TENANT_ID, entra_client_id=ENTRA_CLIENT_ID,
        support_contact=f"it@{ENTRA_DOMAIN}"), ENTRA_APP_PORT)


def seed_demo_hrms(base_url: str) -> bool:
    """Point the demo tenant at the Personio stand-in, with write-back into it (checked against it: the
    stand-in must be running); True when the tenant has never synced (a first run is due)."""
    from shared.hrms.writeback import configure

    with db.transaction() as conn:
        tenant = update_tenant(conn, DEMO_TENANT, TenantChanges(hrms={
            "kind": "personio", "base_url": base_url, "credential_ref": DEMO_PERSONIO_REFERENCE,
            "field_mapping": DEMO_HRMS_MAPPING, "schedule": "0 0 2 * * *"}))
        tenant = configure(conn, tenant, DEMO_WRITEBACK)
        db.use_tenant(conn, tenant.id)
        return conn.execute("SELECT NOT EXISTS (SELECT 1 FROM hrms_runs WHERE tenant_id = %s)",
                            [tenant.id]).fetchone()[0]
