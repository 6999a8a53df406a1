"""Fixtures for Directory Sync: a WorkOS stand-in (local/workos.py), tenants linked to its
organizations, and helpers that put events through the inbox and the applier as production does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.workos import WorkOSStandIn, sign
from shared import db
from shared.directory import apply, inbox
from shared.directory.events import parse_event
from shared.identity.models import Channel
from tests.conftest import OLD_WEBHOOK_SECRET, WEBHOOK_SECRET  # noqa: F401 - re-exported for the tests


@dataclass
class Directory:
    """A directory of a stand-in organization, and a clock for its events."""

    standin: WorkOSStandIn
    organization: dict[str, Any]
    directory: dict[str, Any]
    clock: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(hours=1))

    @property
    def id(self) -> str:
        return self.directory["id"]

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def user(self, key: str, *, email: str | None = None, state: str = "active", role: str | None = None,
             first_name: str | None = "First", last_name: str | None = None) -> dict[str, Any]:
        domain = self.organization["domains"][0]["domain"]
        return self.standin.directory_user(
            self.directory, user_id=f"directory_user_{self.id}_{key}", email=email or f"{key}@{domain}",
            first_name=first_name, last_name=last_name, state=state, role_slug=role, updated_at=self.tick())

    def group(self, key: str, *, name: str | None = None) -> dict[str, Any]:
        return self.standin.directory_group(self.directory, group_id=f"directory_group_{self.id}_{key}",
                                            name=name or key.title(), updated_at=self.tick())

    def event(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        """An event in the stand-in's log (so the Events API serves it too)."""
        return self.standin.emit(event, data, created_at=self.tick())

    def activated(self) -> dict[str, Any]:
        return self.event("dsync.activated", self.standin.directory_payload(self.directory))

    def deleted(self) -> dict[str, Any]:
        return self.event("dsync.deleted", self.standin.directory_payload(self.directory, state="deleting"))

    def membership(self, added: bool, user: dict[str, Any], group: dict[str, Any]) -> dict[str, Any]:
        kind = "dsync.group.user_added" if added else "dsync.group.user_removed"
        return self.event(kind, self.standin.membership_payload(self.directory, user, group))


@pytest.fixture
def make_directory(standin, make_tenant):
    """make_directory("acme", provisioning="workos"): a tenant linked to a new stand-in organization
    with one directory (tenant=None: an organization no tenant maps to yet)."""

    def make(slug: str | None, *, provisioning: str = "workos", domain: str | None = None):
        domain = domain or f"{slug or 'orphan'}.example"
        organization = standin.create_organization((slug or "orphan").title(), [domain])
        directory = standin.add_directory(organization["id"])
        tenant = None
        if slug is not None:
            tenant = make_tenant(slug, provisioning=provisioning, domains=(domain,),
                                 workos_organization_id=organization["id"])
        return tenant, Directory(standin, organization, directory)

    return make


def deliver(events: list[dict[str, Any]], via: str = "webhook") -> list[inbox.Recorded]:
    """Record events in the inbox, as the webhook or the poller does."""
    with db.transaction(all_tenants=True) as conn:
        return inbox.record_events(conn, [parse_event(event) for event in events], via)


def drain(tenant, directory: Directory) -> apply.DrainResult:
    return apply.drain_directory(tenant.id, directory.id)


def statuses(event_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    with db.transaction(all_tenants=True) as conn:
        rows = conn.execute("SELECT id, status, outcome FROM workos_events WHERE id = ANY(%s)", [event_ids]).fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def state_of(tenant, directory: Directory) -> dict[str, Any]:
    """The identity store as this directory made it, in the directory's own ids."""
    prefix = len(f"directory_user_{directory.id}_")
    group_prefix = len(f"directory_group_{directory.id}_")
    with db.transaction(tenant_id=tenant.id) as conn:
        users = conn.execute(
            "SELECT i.external_id, split_part(u.primary_email, '@', 1), u.given_name, u.status, u.role_slugs"
            " FROM user_identities i JOIN users u ON u.id = i.user_id"
            " WHERE i.channel = %s AND i.issuer = %s ORDER BY 1", [Channel.WORKOS.value, directory.id]).fetchall()
        groups = conn.execute(
            "SELECT external_id, display_name, status FROM groups WHERE channel = %s AND issuer = %s ORDER BY 1",
            [Channel.WORKOS.value, directory.id]).fetchall()
        members = conn.execute(
            "SELECT g.external_id, i.external_id FROM group_memberships m JOIN groups g ON g.id = m.group_id"
            " JOIN user_identities i ON i.user_id = m.user_id AND i.channel = g.channel AND i.issuer = g.issuer"
            " WHERE g.issuer = %s ORDER BY 1, 2", [directory.id]).fetchall()
    return {
        "users": [(external_id[prefix:], *rest) for external_id, *rest in users],
        "groups": [(external_id[group_prefix:], *rest) for external_id, *rest in groups],
        "members": [(group[group_prefix:], user[prefix:]) for group, user in members],
    }


def signed(body: bytes, secret: str = WEBHOOK_SECRET, *, at: datetime | None = None) -> str:
    moment = at or datetime.now(UTC)
    return sign(body, secret, timestamp_ms=int(moment.timestamp() * 1000))
