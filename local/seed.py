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
DEMO_APP_URL = "http://127.0.0.1:7090"
SEED_ACTOR = "make dev"


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
            add_app(conn, tenant, DEMO_APP, AppSpec(kind="instance", base_url=DEMO_APP_URL))
            tenant = update_tenant(conn, DEMO_TENANT, TenantChanges(default_app=DEMO_APP))
        revoke_scim_tokens_named(conn, tenant, SEED_ACTOR)
        _, token = create_scim_token(conn, tenant, SEED_ACTOR, created_by=SEED_ACTOR)
    return token


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
