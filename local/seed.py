"""The demo tenant that `make dev` seeds, so a fresh checkout has something to provision and sign in to."""

from __future__ import annotations

from shared import db
from shared.scim.tokens import create_scim_token, revoke_scim_tokens_named
from shared.tenants.apps import AppNotFound, AppSpec, add_app, get_app
from shared.tenants.models import TenantNotFound
from shared.tenants.registry import TenantChanges, create_tenant, get_tenant, update_tenant

DEMO_TENANT = "demo"
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
