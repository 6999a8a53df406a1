"""The demo tenant that `make dev` seeds, so a fresh checkout has something to provision and sign in to."""

from __future__ import annotations

from shared import db
from shared.scim.tokens import create_scim_token, revoke_scim_tokens_named
from shared.tenants.apps import AppNotFound, AppSpec, add_app, get_app
from shared.tenants.models import TenantNotFound
from shared.tenants.registry import TenantChanges, create_tenant, get_tenant, update_tenant

DEMO_TENANT = "demo"
DSYNC_TENANT = "demo-dsync"
DSYNC_DOMAIN = "demo-dsync.example"
DSYNC_ORGANIZATION = "org_demo_dsync"  # fixed, so the stand-in (in memory) and the database agree
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
        try:
            get_tenant(conn, DSYNC_TENANT)
        except TenantNotFound:
            create_tenant(conn, DSYNC_TENANT, TenantChanges(
                display_name="Demo Directory Sync", add_domains=(DSYNC_DOMAIN,), provisioning_channel="workos",
                workos_organization_id=DSYNC_ORGANIZATION, support_contact=f"it@{DSYNC_DOMAIN}"))
    return DSYNC_TENANT
