"""The demo tenant that `make dev` seeds, so a fresh checkout has something to sign in to."""

from __future__ import annotations

from shared import db

DEMO_TENANT = "demo"


def seed_demo_tenant() -> bool:
    """Create the ``demo`` tenant unless it exists; returns whether it was created now."""
    with db.transaction() as conn:
        created = conn.execute(
            "INSERT INTO tenants (slug, display_name) VALUES (%s, %s) ON CONFLICT (slug) DO NOTHING RETURNING id",
            (DEMO_TENANT, "Demo Company"),
        ).fetchone()
    return created is not None
