"""Who is talking in Teams, and where each user can be reached later. Plain SQL, async (the bot runs on
the event loop); free of botbuilder.

Contract (tests/teams/test_people.py):
- a Teams tenant id maps to the tenant whose ``teams_tenant_id`` it is; a suspended tenant admits nobody;
- the Teams user maps to an active user of that tenant: by the Entra object id (``users.entra_object_id``, or
  the object id a stored conversation reference already ties to a user), else by the email the member lookup
  gives (``primary_email``, case-insensitive). Inactive and deleted users are not admitted;
- a conversation reference is stored per (tenant, user) with the Teams tenant id beside it, replacing the
  previous one; an object id moves to the user it now belongs to (a re-provisioned person);
- ``forget_installation`` marks the user's reference uninstalled (proactive sends skip it until the next
  install or message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from shared import db


@dataclass(frozen=True)
class TeamsTenant:
    id: str
    slug: str
    active: bool
    support_contact: str | None


@dataclass(frozen=True)
class Member:
    """A provisioned, active user talking to the bot."""

    tenant: TeamsTenant
    user_id: str
    email: str | None
    display_name: str | None


@dataclass(frozen=True)
class Lookup:
    tenant: TeamsTenant | None
    member: Member | None


_BY_OBJECT_ID = """
SELECT t.id::text, t.slug, t.status = 'active', t.support_contact, u.id::text, u.primary_email, u.display_name
FROM tenants t
LEFT JOIN LATERAL (
    SELECT users.id, users.primary_email, users.display_name FROM users
    WHERE users.tenant_id = t.id AND users.status = 'active'
      AND (users.entra_object_id = %(aad)s
           OR users.id = (SELECT c.user_id FROM teams_conversations c
                          WHERE c.tenant_id = t.id AND c.aad_object_id = %(aad)s))
    ORDER BY users.entra_object_id = %(aad)s DESC NULLS LAST
    LIMIT 1
) u ON true
WHERE t.teams_tenant_id = %(teams_tenant)s
"""


def _tenant(row: tuple[Any, ...]) -> TeamsTenant:
    return TeamsTenant(row[0], row[1], row[2], row[3])


async def lookup_by_object_id(teams_tenant_id: str, aad_object_id: str | None) -> Lookup:
    """The tenant of a Teams tenant id and, when the object id is known there, its active user."""
    # A lookup by global identifiers: the only place the bot reads across tenants.
    async with db.async_transaction(all_tenants=True) as conn:
        cursor = await conn.execute(_BY_OBJECT_ID, {"teams_tenant": teams_tenant_id, "aad": aad_object_id})
        row = await cursor.fetchone()
    if row is None:
        return Lookup(None, None)
    tenant = _tenant(row)
    if not tenant.active or row[4] is None:
        return Lookup(tenant, None)
    return Lookup(tenant, Member(tenant, row[4], row[5], row[6]))


async def member_by_email(tenant: TeamsTenant, email: str) -> Member | None:
    async with db.async_transaction(tenant_id=tenant.id) as conn:
        cursor = await conn.execute(
            "SELECT id::text, primary_email, display_name FROM users WHERE tenant_id = %s"
            " AND lower(primary_email) = lower(%s) AND status = 'active'", [tenant.id, email])
        row = await cursor.fetchone()
    return Member(tenant, row[0], row[1], row[2]) if row else None


@dataclass(frozen=True)
class StoredReference:
    teams_tenant_id: str
    aad_object_id: str
    teams_user_id: str
    conversation_id: str
    service_url: str
    reference: dict[str, Any]


async def remember_conversation(member: Member, stored: StoredReference, *, installed: bool = True) -> None:
    async with db.async_transaction(tenant_id=member.tenant.id) as conn:
        await save_reference(conn, member.tenant.id, member.user_id, stored, installed=installed)


async def save_reference(conn: psycopg.AsyncConnection, tenant_id: str, user_id: str, stored: StoredReference, *,
                         installed: bool = True) -> None:
    # The object id belongs to one user: a person re-provisioned as a new user takes it along.
    await conn.execute("DELETE FROM teams_conversations WHERE tenant_id = %s AND aad_object_id = %s AND user_id <> %s",
                       [tenant_id, stored.aad_object_id, user_id])
    await conn.execute(
        "INSERT INTO teams_conversations (tenant_id, user_id, teams_tenant_id, aad_object_id, teams_user_id,"
        " conversation_id, service_url, reference, installed) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, user_id) DO UPDATE SET teams_tenant_id = excluded.teams_tenant_id,"
        " aad_object_id = excluded.aad_object_id, teams_user_id = excluded.teams_user_id,"
        " conversation_id = excluded.conversation_id, service_url = excluded.service_url,"
        " reference = excluded.reference, installed = excluded.installed, updated_at = now()",
        [tenant_id, user_id, stored.teams_tenant_id, stored.aad_object_id, stored.teams_user_id,
         stored.conversation_id, stored.service_url, Jsonb(stored.reference), installed])


async def forget_installation(tenant: TeamsTenant, aad_object_id: str) -> None:
    async with db.async_transaction(tenant_id=tenant.id) as conn:
        await conn.execute("UPDATE teams_conversations SET installed = false, updated_at = now()"
                           " WHERE tenant_id = %s AND aad_object_id = %s", [tenant.id, aad_object_id])


@dataclass(frozen=True)
class Reachability:
    """How a proactive message can reach a user: a stored conversation, or an object id to open one with."""

    user_id: str
    reference: dict[str, Any] | None
    aad_object_id: str | None
    teams_tenant_id: str | None
    installed: bool


async def reachability(conn: psycopg.AsyncConnection, tenant_id: str, user_ids: list[str]) -> dict[str, Reachability]:
    cursor = await conn.execute(
        "SELECT u.id::text, c.reference, coalesce(c.aad_object_id, u.entra_object_id)::text,"
        " coalesce(c.teams_tenant_id, t.teams_tenant_id)::text, coalesce(c.installed, true)"
        " FROM users u JOIN tenants t ON t.id = u.tenant_id"
        " LEFT JOIN teams_conversations c ON c.tenant_id = u.tenant_id AND c.user_id = u.id"
        " WHERE u.tenant_id = %s AND u.id = ANY(%s::uuid[]) AND u.status = 'active'", [tenant_id, user_ids])
    return {row[0]: Reachability(row[0], row[1], row[2], row[3], row[4]) for row in await cursor.fetchall()}


async def tenant_service_url(conn: psycopg.AsyncConnection, tenant_id: str) -> str | None:
    """The service URL the tenant's users last wrote from (Teams' regional endpoint for that tenant)."""
    cursor = await conn.execute("SELECT service_url FROM teams_conversations WHERE tenant_id = %s"
                                " ORDER BY updated_at DESC LIMIT 1", [tenant_id])
    row = await cursor.fetchone()
    return row[0] if row else None
