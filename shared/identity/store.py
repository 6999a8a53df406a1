"""The identity store: one person is one user per tenant, whichever channel speaks of them.

Every channel (SCIM, WorkOS Directory Sync, Entra and WorkOS sign-in) writes users, groups and
memberships only through this module, which applies these rules (each has a test of the same name
in tests/identity/test_rules.py):

1. identity_first: a person a channel asserts is the user already linked to the same channel,
   issuer and external id, whatever that user's status. (SCIM's identity is the resource id, which is
   the user id: a POST has none yet, goes on to rules 2-5, and the user it lands on lends its id.)
2. then_entra_object_id: otherwise, the live user of the tenant with the same Entra object id (the
   IdP's immutable id, known to SCIM from Entra, Directory Sync and Entra sign-in alike).
3. then_verified_email: otherwise, the live user of the tenant whose primary email is the same
   (compared case-insensitively), when the email is verified: on one of the tenant's domains (or
   a subdomain), which the tenant proved it owns. An email elsewhere never matches.
4. a_match_never_takes_a_second_identity_from_one_source: a user found by rule 2 or 3 who already has
   another identity from the same channel and issuer is not the same person; that is an
   IdentityConflict, not a merge.
5. otherwise_only_the_authoritative_channel_creates: with no match, the tenant's authoritative
   channel (scim, workos, or sso-jit: WorkOS sign-in or Entra sign-in) creates the user; any other
   channel gets NotProvisioned.
6. the_authoritative_channel_changes_everything: it may change the email, names, roles and Entra
   object id, deactivate and reactivate (``active``), delete, and manage groups and memberships.
7. other_channels_only_link_and_fill: any other channel links its identity to the matched user and
   fills fields that are empty; it never changes a status, an email, a role or a value already
   set, and never touches groups (NotAuthoritative).
8. tombstones_return_only_through_the_authoritative_channel: a deleted user keeps its id (status
   deleted) and its identities; the authoritative channel matching it by identity, or by email
   when no live user has that email, brings it back active with the same id (outcome restored) —
   unless that tombstone has another identity from the same channel and issuer: then the address
   was given to someone new, who gets a new user. Other channels are refused (NotProvisioned).
9. inactive_users_stay_inactive_until_the_authoritative_channel_says: other channels may link to
   an inactive user but never reactivate it; sign-in refuses inactive users (its own check).
10. uniqueness_conflicts_are_reported_not_resolved: an email or Entra object id held by another live
    user of the tenant raises IdentityConflict naming the field and that user; nothing is written.
11. every_change_is_logged: each change appends one change-log entry per entity, in the same
    transaction, with its actor; an assertion that changes nothing writes nothing.

A deleted group is a tombstone too: upserting it again raises GroupDeleted, so a late event cannot
revive it. Deleting a group ends its memberships; one change-log entry says so.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from shared import db
from shared.identity.changelog import Change, append_changes
from shared.identity.models import (
    Actor,
    Channel,
    Group,
    GroupDeleted,
    GroupNotFound,
    IdentityConflict,
    IdentityError,
    NotAuthoritative,
    NotProvisioned,
    Outcome,
    PersonClaims,
    SyncResult,
    UnknownMembers,
    User,
    UserNotFound,
    UserStatus,
    authoritative_channels,
    parse_id,
)
from shared.tenants.models import Tenant

_USER_COLUMNS = (
    "id, tenant_id, primary_email, given_name, family_name, display_name, status, entra_object_id, role_slugs,"
    " created_by_channel, version, created_at, updated_at"
)
_PROFILE_FIELDS = ("primary_email", "given_name", "family_name", "display_name", "entra_object_id")


def _user(row: dict[str, Any]) -> User:
    return User(
        id=str(row["id"]), tenant_id=str(row["tenant_id"]), primary_email=row["primary_email"],
        given_name=row["given_name"], family_name=row["family_name"], display_name=row["display_name"],
        status=UserStatus(row["status"]),
        entra_object_id=str(row["entra_object_id"]) if row["entra_object_id"] else None,
        role_slugs=tuple(row["role_slugs"]), created_by_channel=row["created_by_channel"],
        version=row["version"], created_at=row["created_at"], updated_at=row["updated_at"],
    )


def _uuids(values: list[str]) -> list[uuid.UUID]:
    return sorted({key for key in map(parse_id, values) if key is not None})


def _one_user(conn: psycopg.Connection, where: str, params: list[Any]) -> User | None:
    row = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE {where} LIMIT 1", params).fetchone()  # noqa: S608 - fixed SQL
    return _user(row) if row else None


def is_authoritative(tenant: Tenant, channel: Channel) -> bool:
    return channel in authoritative_channels(tenant.provisioning_channel)


def email_is_verified(tenant: Tenant, email: str) -> bool:
    """Verified: on one of the tenant's domains or a subdomain of one (rule 3)."""
    domain = email.rpartition("@")[2].lower()
    return any(domain == own or domain.endswith("." + own) for own in tenant.domains)


def _clean(value: str | None) -> str | None:
    value = value.strip() if value else value
    return value or None


# --- matching ------------------------------------------------------------------------------------


def _by_identity(conn: psycopg.Connection, tenant_id: str, claims: PersonClaims) -> User | None:
    if claims.external_id is None:
        return None
    return _one_user(
        conn,
        "id = (SELECT user_id FROM user_identities WHERE tenant_id = %s AND channel = %s AND issuer = %s"
        " AND external_id = %s)",
        [tenant_id, claims.channel.value, claims.issuer, claims.external_id])


def _live_by_entra_object_id(conn: psycopg.Connection, tenant_id: str, object_id: str) -> User | None:
    return _one_user(conn, "tenant_id = %s AND entra_object_id = %s AND status <> 'deleted'", [tenant_id, object_id])


def _by_email(conn: psycopg.Connection, tenant_id: str, email: str, *, include_tombstones: bool) -> User | None:
    """The live user with this email, else (when asked) the most recently deleted one."""
    if not include_tombstones:
        return _one_user(
            conn, "tenant_id = %s AND primary_email_key = lower(%s) AND status <> 'deleted'", [tenant_id, email])
    return _one_user(
        conn, "tenant_id = %s AND primary_email_key = lower(%s)"
        " ORDER BY status = 'deleted', deleted_at DESC NULLS LAST", [tenant_id, email])


def _has_other_identity(conn: psycopg.Connection, user: User, claims: PersonClaims) -> bool:
    return conn.execute(
        "SELECT 1 FROM user_identities WHERE user_id = %s AND channel = %s AND issuer = %s"
        " AND external_id IS DISTINCT FROM %s",
        [user.id, claims.channel.value, claims.issuer, claims.external_id]).fetchone() is not None


def match_person(conn: psycopg.Connection, tenant: Tenant, claims: PersonClaims) -> User | None:
    """The user these claims are about under rules 1-4 and 8, or None; writes nothing."""
    db.use_tenant(conn, tenant.id)
    user = _by_identity(conn, tenant.id, claims)
    if user is not None:
        return user
    authoritative = is_authoritative(tenant, claims.channel)
    candidate = None
    if claims.entra_object_id:
        candidate = _live_by_entra_object_id(conn, tenant.id, claims.entra_object_id.lower())
    email = _clean(claims.email)
    if candidate is None and email and email_is_verified(tenant, email):
        candidate = _by_email(conn, tenant.id, email, include_tombstones=authoritative)
    if candidate is not None and _has_other_identity(conn, candidate, claims):
        if candidate.status is UserStatus.DELETED:
            return None  # a recycled address: someone new, not the person who left (rule 8)
        by_object_id = bool(claims.entra_object_id) and candidate.entra_object_id == claims.entra_object_id.lower()
        field_name = "entra_object_id" if by_object_id else "email"
        raise IdentityConflict(field_name, claims.entra_object_id if by_object_id else email or "", candidate.id)
    return candidate


# --- writing people ------------------------------------------------------------------------------


def _check_unique(conn: psycopg.Connection, tenant_id: str, user_id: str | None, values: dict[str, Any],
                  *, email_known_free: bool = False) -> None:
    email = values.get("primary_email")
    if email and not email_known_free:
        other = _one_user(
            conn, "tenant_id = %s AND primary_email_key = lower(%s) AND status <> 'deleted'"
            " AND id IS DISTINCT FROM %s", [tenant_id, email, user_id])
        if other:
            raise IdentityConflict("email", email, other.id)
    object_id = values.get("entra_object_id")
    if object_id:
        other = _one_user(
            conn, "tenant_id = %s AND entra_object_id = %s AND status <> 'deleted' AND id IS DISTINCT FROM %s",
            [tenant_id, object_id, user_id])
        if other:
            raise IdentityConflict("entra_object_id", object_id, other.id)


def _claimed_values(claims: PersonClaims) -> dict[str, Any]:
    values: dict[str, Any] = {
        "primary_email": _clean(claims.email),
        "given_name": _clean(claims.given_name),
        "family_name": _clean(claims.family_name),
        "display_name": _clean(claims.display_name),
        "entra_object_id": claims.entra_object_id.lower() if claims.entra_object_id else None,
    }
    return {name: value for name, value in values.items() if value is not None}


def _link_identity(conn: psycopg.Connection, tenant_id: str, user_id: str, claims: PersonClaims) -> bool:
    """Link (or refresh) the identity; returns whether it is new."""
    external_id = user_id if claims.external_id is None else claims.external_id
    row = conn.execute(
        "INSERT INTO user_identities (tenant_id, user_id, channel, issuer, external_id, email)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, channel, issuer, external_id)"
        " DO UPDATE SET email = EXCLUDED.email, last_seen_at = now() RETURNING (xmax = 0)",
        [tenant_id, user_id, claims.channel.value, claims.issuer, external_id, _clean(claims.email)],
    ).fetchone()
    return bool(row[0])


def _create_user(conn: psycopg.Connection, tenant: Tenant, claims: PersonClaims, actor: Actor) -> User:
    values = _claimed_values(claims)
    # Matching already looked for a live user with a verified email (rule 3) and found none.
    email = values.get("primary_email")
    _check_unique(conn, tenant.id, None, values, email_known_free=bool(email) and email_is_verified(tenant, email))
    status = UserStatus.INACTIVE if claims.active is False else UserStatus.ACTIVE
    row = conn.cursor(row_factory=dict_row).execute(
        f"INSERT INTO users (tenant_id, primary_email, given_name, family_name, display_name, entra_object_id,"  # noqa: S608
        f" role_slugs, status, created_by_channel, deactivated_at)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END) RETURNING {_USER_COLUMNS}",
        [tenant.id, values.get("primary_email"), values.get("given_name"), values.get("family_name"),
         values.get("display_name"), values.get("entra_object_id"), list(claims.role_slugs or ()), status.value,
         claims.channel.value, status is UserStatus.INACTIVE],
    ).fetchone()
    user = _user(row)
    _link_identity(conn, tenant.id, user.id, claims)
    append_changes(conn, tenant.id, actor, [Change("user", user.id, Outcome.CREATED.value, _snapshot(user))])
    return user


def _snapshot(user: User) -> dict[str, Any]:
    return {"primary_email": user.primary_email, "given_name": user.given_name, "family_name": user.family_name,
            "display_name": user.display_name, "status": user.status.value,
            "entra_object_id": user.entra_object_id, "role_slugs": list(user.role_slugs)}


def _planned_update(user: User, claims: PersonClaims, authoritative: bool) -> tuple[dict[str, Any], Outcome | None]:
    """Column changes the claims make to the user (rules 6, 7, 8, 9), and the status outcome if any."""
    claimed = _claimed_values(claims)
    changes: dict[str, Any] = {}
    for name in _PROFILE_FIELDS:
        if name not in claimed:
            if authoritative and name in claims.clears_absent and getattr(user, name) is not None:
                changes[name] = None
            continue
        current = getattr(user, name)
        may_change = authoritative or current is None
        if may_change and claimed[name] != current:
            changes[name] = claimed[name]
    if not authoritative:
        return changes, None
    if claims.role_slugs is not None and tuple(sorted(set(claims.role_slugs))) != tuple(sorted(user.role_slugs)):
        changes["role_slugs"] = sorted(set(claims.role_slugs))
    status_outcome = None
    if user.status is UserStatus.DELETED:
        changes["status"] = UserStatus.INACTIVE.value if claims.active is False else UserStatus.ACTIVE.value
        status_outcome = Outcome.RESTORED
    elif claims.active is True and user.status is UserStatus.INACTIVE:
        changes["status"] = UserStatus.ACTIVE.value
        status_outcome = Outcome.REACTIVATED
    elif claims.active is False and user.status is UserStatus.ACTIVE:
        changes["status"] = UserStatus.INACTIVE.value
        status_outcome = Outcome.DEACTIVATED
    return changes, status_outcome


def _apply_update(conn: psycopg.Connection, user: User, changes: dict[str, Any]) -> User:
    from psycopg import sql

    assignments = [sql.SQL("{} = %s").format(sql.Identifier(name)) for name in changes]
    status = changes.get("status")
    extra = sql.SQL("")
    if status == UserStatus.ACTIVE.value:
        extra = sql.SQL(", deactivated_at = NULL, deleted_at = NULL")
    elif status == UserStatus.INACTIVE.value:
        extra = sql.SQL(", deactivated_at = now(), deleted_at = NULL")
    query = sql.SQL(
        "UPDATE users SET {}, version = version + 1, updated_at = now(){} WHERE id = %s RETURNING {}"
    ).format(sql.SQL(", ").join(assignments), extra, sql.SQL(_USER_COLUMNS))
    row = conn.cursor(row_factory=dict_row).execute(query, [*changes.values(), user.id]).fetchone()
    return _user(row)


def sync_person(conn: psycopg.Connection, tenant: Tenant, claims: PersonClaims, actor: Actor) -> SyncResult:
    """Apply what a channel asserts about a person, under the rules above."""
    db.use_tenant(conn, tenant.id)
    authoritative = is_authoritative(tenant, claims.channel)
    user = match_person(conn, tenant, claims)
    if user is None:
        if not authoritative:
            raise NotProvisioned(
                f"no user of tenant {tenant.slug!r} matches this {claims.channel.value} identity, and "
                f"{claims.channel.value} does not provision this tenant ({tenant.provisioning_channel.value} does)")
        return SyncResult(_create_user(conn, tenant, claims, actor), Outcome.CREATED)
    if user.status is UserStatus.DELETED and not authoritative:
        raise NotProvisioned(f"the user matching this {claims.channel.value} identity was deleted")

    changes, status_outcome = _planned_update(user, claims, authoritative)
    unique_values = dict(changes)
    if status_outcome is Outcome.RESTORED:  # a tombstone's values were free for others meanwhile
        unique_values.setdefault("primary_email", user.primary_email)
        unique_values.setdefault("entra_object_id", user.entra_object_id)
    _check_unique(conn, tenant.id, user.id, unique_values)
    linked = _link_identity(conn, tenant.id, user.id, claims)
    if changes:
        before = _snapshot(user)
        user = _apply_update(conn, user, changes)
        diff = {name: [before[name], value] for name, value in _snapshot(user).items() if before[name] != value}
        outcome = status_outcome or Outcome.UPDATED
        append_changes(conn, tenant.id, actor, [Change("user", user.id, outcome.value, diff)])
        return SyncResult(user, outcome)
    if linked:
        append_changes(conn, tenant.id, actor, [Change(
            "user", user.id, Outcome.LINKED.value, {"identity": f"{claims.channel.value}:{claims.issuer}"})])
        return SyncResult(user, Outcome.LINKED)
    return SyncResult(user, Outcome.UNCHANGED)


# --- many people at once ---------------------------------------------------------------------------
#
# A directory that catches up sends thousands of people; one set-based statement per step instead
# of several per person. Only the plain cases take the fast path: a person already linked whose
# change touches no unique value, or a new person whose email no user has (live or deleted) and who
# carries no Entra object id. Everything else goes through sync_person, one by one, with every rule.


def _new_user_rows(claims_list: list[PersonClaims]) -> list[tuple[str, PersonClaims, dict[str, Any]]]:
    return [(str(uuid.uuid4()), claims, _claimed_values(claims)) for claims in claims_list]


def _insert_new_people(conn: psycopg.Connection, tenant: Tenant, new: list[tuple[str, PersonClaims, dict[str, Any]]]
                       ) -> dict[str, User]:
    # Rows travel as one JSON document (jsonb_to_recordset): arrays would be escaped value by value.
    rows = conn.cursor(row_factory=dict_row).execute(
        f"INSERT INTO users (id, tenant_id, primary_email, given_name, family_name, display_name, role_slugs,"  # noqa: S608
        f" status, created_by_channel, deactivated_at)"
        f" SELECT v.id, %s, v.email, v.given, v.family, v.display, ARRAY(SELECT jsonb_array_elements_text(v.roles)),"
        f" v.status, %s, CASE WHEN v.status = 'inactive' THEN now() END"
        f" FROM jsonb_to_recordset(%s) AS v(id uuid, email text, given text, family text, display text, roles jsonb,"
        f" status text) RETURNING {_USER_COLUMNS}",
        [tenant.id, new[0][1].channel.value, Jsonb([{
            "id": user_id, "email": values.get("primary_email"), "given": values.get("given_name"),
            "family": values.get("family_name"), "display": values.get("display_name"),
            "roles": sorted(set(claims.role_slugs or ())),
            "status": UserStatus.INACTIVE.value if claims.active is False else UserStatus.ACTIVE.value,
        } for user_id, claims, values in new])]).fetchall()
    users = {str(row["id"]): _user(row) for row in rows}
    conn.execute(
        "INSERT INTO user_identities (tenant_id, user_id, channel, issuer, external_id, email)"
        " SELECT %s, v.user_id, %s, %s, v.external_id, v.email"
        " FROM jsonb_to_recordset(%s) AS v(user_id uuid, external_id text, email text)",
        [tenant.id, new[0][1].channel.value, new[0][1].issuer, Jsonb([
            {"user_id": user_id, "external_id": claims.external_id, "email": _clean(claims.email)}
            for user_id, claims, _ in new])])
    return users


def _update_people(conn: psycopg.Connection, updates: list[tuple[User, dict[str, Any]]]) -> dict[str, User]:
    """Write planned changes (no unique value among them) in one statement."""
    def value(user: User, changes: dict[str, Any], name: str) -> Any:
        return changes[name] if name in changes else getattr(user, name)

    rows = conn.cursor(row_factory=dict_row).execute(
        f"UPDATE users u SET given_name = v.given, family_name = v.family, display_name = v.display,"  # noqa: S608
        f" role_slugs = ARRAY(SELECT jsonb_array_elements_text(v.roles)), status = v.status,"
        f" deactivated_at = CASE WHEN v.status = u.status THEN u.deactivated_at"
        f"                       WHEN v.status = 'inactive' THEN now() END,"
        f" deleted_at = CASE WHEN v.status = u.status THEN u.deleted_at END,"
        f" version = u.version + 1, updated_at = now()"
        f" FROM jsonb_to_recordset(%s) AS v(id uuid, given text, family text, display text, roles jsonb, status text)"
        f" WHERE u.id = v.id"
        f" RETURNING {', '.join('u.' + column.strip() for column in _USER_COLUMNS.split(','))}",
        [Jsonb([{"id": user.id, "given": value(user, changes, "given_name"),
                 "family": value(user, changes, "family_name"), "display": value(user, changes, "display_name"),
                 "roles": list(value(user, changes, "role_slugs")),
                 "status": changes.get("status", user.status.value)}
                for user, changes in updates])],
    ).fetchall()
    return {str(row["id"]): _user(row) for row in rows}


def _refresh_identities(conn: psycopg.Connection, tenant: Tenant, claims_list: list[PersonClaims]) -> None:
    if not claims_list:
        return
    conn.execute(
        "UPDATE user_identities i SET email = v.email, last_seen_at = now()"
        " FROM jsonb_to_recordset(%s) AS v(external_id text, email text)"
        " WHERE i.tenant_id = %s AND i.channel = %s AND i.issuer = %s AND i.external_id = v.external_id",
        [Jsonb([{"external_id": claims.external_id, "email": _clean(claims.email)} for claims in claims_list]),
         tenant.id, claims_list[0].channel.value, claims_list[0].issuer])


def _contested_emails(conn: psycopg.Connection, tenant: Tenant, claims_list: list[PersonClaims],
                      linked: dict[str, User]) -> set[str]:
    """Emails a new person may not take on the fast path, because the outcome would depend on the
    order people are handled in: held by a user already (live or deleted), named twice in the batch,
    or claimed by someone who goes the slow way (a changed email, an Entra object id)."""
    seen: set[str] = set()
    contested: set[str] = set()
    for claims in claims_list:
        email = (_clean(claims.email) or "").lower()
        if not email:
            continue
        user = linked.get(claims.external_id)
        changing = user is not None and (user.primary_email or "").lower() != email
        if email in seen or claims.entra_object_id or changing:
            contested.add(email)
        seen.add(email)
    fresh = sorted(seen - contested)
    if fresh:
        # Per key (LATERAL ... OFFSET 0): a bulk load outruns the statistics (see sync_people).
        contested.update(row[0] for row in conn.execute(
            "SELECT k.email FROM unnest(%s::text[]) AS k(email) WHERE EXISTS (SELECT 1 FROM users u"
            " WHERE u.tenant_id = %s AND u.primary_email_key = k.email OFFSET 0)", [fresh, tenant.id]).fetchall())
    return contested


def sync_people(conn: psycopg.Connection, tenant: Tenant, claims_list: list[PersonClaims], actor: Actor
                ) -> list[SyncResult | IdentityError]:
    """sync_person for many people of one channel and issuer (each with its external id, none twice),
    with the same rules and outcomes; a person the rules refuse gets their IdentityError in the list,
    and the others are applied. Results come in the order of ``claims_list``."""
    if not claims_list:
        return []
    channel, issuer = claims_list[0].channel, claims_list[0].issuer
    external_ids = [claims.external_id for claims in claims_list]
    if any(c.channel != channel or c.issuer != issuer for c in claims_list) or None in external_ids \
            or len(set(external_ids)) != len(external_ids):
        raise ValueError("sync_people takes people of one channel and issuer, each with a distinct external id")
    db.use_tenant(conn, tenant.id)
    authoritative = is_authoritative(tenant, channel)
    # Index lookups per person whatever the statistics say: a directory's first sync grows these tables
    # faster than autovacuum analyzes them (LATERAL ... OFFSET 0 keeps each lookup per key).
    linked = {row["external_id"]: _user(row) for row in conn.cursor(row_factory=dict_row).execute(
        f"SELECT k.external_id, {', '.join('u.' + column.strip() for column in _USER_COLUMNS.split(','))}"  # noqa: S608
        " FROM unnest(%s::text[]) AS k(external_id) CROSS JOIN LATERAL (SELECT i.user_id FROM user_identities i"
        " WHERE i.tenant_id = %s AND i.channel = %s AND i.issuer = %s AND i.external_id = k.external_id OFFSET 0) i"
        " JOIN LATERAL (SELECT * FROM users WHERE id = i.user_id OFFSET 0) u ON true",
        [external_ids, tenant.id, channel.value, issuer]).fetchall()}
    contested = _contested_emails(conn, tenant, claims_list, linked)

    results: dict[int, SyncResult | IdentityError] = {}
    slow: list[int] = []
    new: list[tuple[int, PersonClaims]] = []
    updates: list[tuple[int, User, dict[str, Any], Outcome | None]] = []
    unchanged: list[tuple[int, User]] = []
    for index, claims in enumerate(claims_list):
        user = linked.get(claims.external_id)
        if user is None:
            email = (_clean(claims.email) or "").lower()
            if claims.entra_object_id or not authoritative or (email and email in contested):
                slow.append(index)  # matching or refusing takes every rule: sync_person
            else:
                new.append((index, claims))
            continue
        if user.status is UserStatus.DELETED:
            slow.append(index)  # a tombstone returning: its email may be someone else's by now
            continue
        changes, status_outcome = _planned_update(user, claims, authoritative)
        if "primary_email" in changes or "entra_object_id" in changes:
            slow.append(index)
        elif changes:
            updates.append((index, user, changes, status_outcome))
        else:
            unchanged.append((index, user))

    entries: list[Change] = []
    if new:
        rows = _new_user_rows([claims for _, claims in new])
        created = _insert_new_people(conn, tenant, rows)
        for (index, _), (user_id, _, _) in zip(new, rows, strict=True):
            user = created[user_id]
            results[index] = SyncResult(user, Outcome.CREATED)
            entries.append(Change("user", user.id, Outcome.CREATED.value, _snapshot(user)))
    if updates:
        written = _update_people(conn, [(user, changes) for _, user, changes, _ in updates])
        for index, before, _, status_outcome in updates:
            after = written[before.id]
            old, now = _snapshot(before), _snapshot(after)
            outcome = status_outcome or Outcome.UPDATED
            results[index] = SyncResult(after, outcome)
            entries.append(Change("user", after.id, outcome.value,
                                  {name: [old[name], value] for name, value in now.items() if old[name] != value}))
    for index, user in unchanged:
        results[index] = SyncResult(user, Outcome.UNCHANGED)
    _refresh_identities(conn, tenant, [claims_list[index] for index, *_ in updates]
                        + [claims_list[index] for index, _ in unchanged])
    append_changes(conn, tenant.id, actor, entries)
    for index in slow:
        try:
            results[index] = sync_person(conn, tenant, claims_list[index], actor)
        except IdentityError as error:
            results[index] = error
    return [results[index] for index in range(len(claims_list))]


def deactivate_identities(conn: psycopg.Connection, tenant: Tenant, channel: Channel, issuer: str, actor: Actor
                          ) -> list[str]:
    """Deactivate every active user linked to this channel and issuer (a directory that was removed);
    returns their ids. One change-log entry per user, as sync_person would write."""
    _require_authoritative(tenant, channel, "deactivate users")
    db.use_tenant(conn, tenant.id)
    ids = sorted(str(user_id) for (user_id,) in conn.execute(
        "UPDATE users u SET status = 'inactive', deactivated_at = now(), version = u.version + 1, updated_at = now()"
        " WHERE u.tenant_id = %s AND u.status = 'active' AND u.id IN (SELECT i.user_id FROM user_identities i"
        " WHERE i.tenant_id = %s AND i.channel = %s AND i.issuer = %s) RETURNING u.id",
        [tenant.id, tenant.id, channel.value, issuer]).fetchall())
    append_changes(conn, tenant.id, actor, [
        Change("user", user_id, Outcome.DEACTIVATED.value, {"status": ["active", "inactive"]}) for user_id in ids])
    return ids


def _require_authoritative(tenant: Tenant, channel: Channel, what: str) -> None:
    if not is_authoritative(tenant, channel):
        raise NotAuthoritative(f"{channel.value} may not {what} in tenant {tenant.slug!r}: "
                               f"{tenant.provisioning_channel.value} provisions it")


def get_user(conn: psycopg.Connection, tenant: Tenant, user_id: str) -> User:
    """A user of the tenant by id, whatever its status."""
    db.use_tenant(conn, tenant.id)
    key = parse_id(user_id)
    user = _one_user(conn, "tenant_id = %s AND id = %s", [tenant.id, key]) if key else None
    if user is None:
        raise UserNotFound(f"tenant {tenant.slug!r} has no user {user_id}")
    return user


def find_user(conn: psycopg.Connection, tenant: Tenant, id_or_email: str) -> User:
    """A user by id, or the live user with this email (else the latest tombstone with it)."""
    if "@" not in id_or_email:
        return get_user(conn, tenant, id_or_email)
    db.use_tenant(conn, tenant.id)
    user = _by_email(conn, tenant.id, id_or_email, include_tombstones=True)
    if user is None:
        raise UserNotFound(f"tenant {tenant.slug!r} has no user {id_or_email}")
    return user


def delete_user(conn: psycopg.Connection, tenant: Tenant, user_id: str, channel: Channel, actor: Actor) -> User:
    """Tombstone a user: status deleted, memberships ended, identities kept for rule 8."""
    _require_authoritative(tenant, channel, "delete users")
    user = get_user(conn, tenant, user_id)
    if user.status is UserStatus.DELETED:
        return user
    row = conn.cursor(row_factory=dict_row).execute(
        f"UPDATE users SET status = 'deleted', deleted_at = now(), version = version + 1, updated_at = now()"  # noqa: S608
        f" WHERE id = %s RETURNING {_USER_COLUMNS}", [user.id]).fetchone()
    groups = [str(group_id) for (group_id,) in conn.execute(
        "DELETE FROM group_memberships WHERE user_id = %s RETURNING group_id", [user.id]).fetchall()]
    entries = [Change("membership", group_id, "removed", {}, related_id=user.id) for group_id in sorted(groups)]
    entries.append(Change("user", user.id, "deleted", {"status": [user.status.value, "deleted"]}))
    append_changes(conn, tenant.id, actor, entries)
    return _user(row)


def list_users(
    conn: psycopg.Connection, tenant: Tenant, *, status: UserStatus | None = None, limit: int = 1000,
    after_id: str | None = None,
) -> list[User]:
    """Users in id order, a page at a time (``after_id``: the last id of the previous page)."""
    db.use_tenant(conn, tenant.id)
    rows = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = %s AND (%s::text IS NULL OR status = %s)"  # noqa: S608
        " AND (%s::uuid IS NULL OR id > %s::uuid) ORDER BY id LIMIT %s",
        [tenant.id, status, status, after_id, after_id, limit]).fetchall()
    return [_user(row) for row in rows]


def search_users(
    conn: psycopg.Connection, tenant: Tenant, *, text: str | None = None, status: UserStatus | None = None,
    channel: Channel | None = None, after_id: str | None = None, limit: int = 50,
) -> list[User]:
    """Users whose email or names contain ``text`` (case-insensitively), in id order, a page at a time."""
    db.use_tenant(conn, tenant.id)
    pattern = None if not text else "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {_USER_COLUMNS} FROM users u WHERE tenant_id = %(tenant)s"  # noqa: S608
        " AND (%(pattern)s::text IS NULL OR primary_email ILIKE %(pattern)s OR display_name ILIKE %(pattern)s"
        "      OR given_name ILIKE %(pattern)s OR family_name ILIKE %(pattern)s"
        "      OR (coalesce(given_name, '') || ' ' || coalesce(family_name, '')) ILIKE %(pattern)s)"
        " AND (%(status)s::text IS NULL OR status = %(status)s)"
        " AND (%(channel)s::text IS NULL OR EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = u.id"
        "      AND i.channel = %(channel)s))"
        " AND (%(after)s::uuid IS NULL OR id > %(after)s::uuid) ORDER BY id LIMIT %(limit)s",
        {"tenant": tenant.id, "pattern": pattern, "status": status, "channel": channel, "after": after_id,
         "limit": limit}).fetchall()
    return [_user(row) for row in rows]


def user_group_names(conn: psycopg.Connection, tenant: Tenant, user_id: str) -> list[dict[str, str]]:
    db.use_tenant(conn, tenant.id)
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT g.id::text AS id, g.display_name, g.channel FROM group_memberships m JOIN groups g ON g.id = m.group_id"
        " WHERE m.tenant_id = %s AND m.user_id = %s ORDER BY g.display_name", [tenant.id, user_id]).fetchall()


def user_identities(conn: psycopg.Connection, tenant: Tenant, user_id: str) -> list[dict[str, Any]]:
    db.use_tenant(conn, tenant.id)
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT channel, issuer, external_id, email, created_at, last_seen_at FROM user_identities"
        " WHERE tenant_id = %s AND user_id = %s ORDER BY created_at", [tenant.id, user_id]).fetchall()


# --- groups and memberships ----------------------------------------------------------------------

_GROUP_COLUMNS = "id, tenant_id, channel, issuer, external_id, display_name, status, version, created_at, updated_at"


def _group(row: dict[str, Any]) -> Group:
    return Group(str(row["id"]), str(row["tenant_id"]), Channel(row["channel"]), row["issuer"], row["external_id"],
                 row["display_name"], row["status"], row["version"], row["created_at"], row["updated_at"])


def get_group(conn: psycopg.Connection, tenant: Tenant, group_id: str) -> Group:
    db.use_tenant(conn, tenant.id)
    key = parse_id(group_id)
    row = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {_GROUP_COLUMNS} FROM groups WHERE tenant_id = %s AND id = %s",  # noqa: S608
        [tenant.id, key]).fetchone() if key else None
    if row is None:
        raise GroupNotFound(f"tenant {tenant.slug!r} has no group {group_id}")
    return _group(row)


def upsert_group(
    conn: psycopg.Connection, tenant: Tenant, channel: Channel, issuer: str, external_id: str, display_name: str,
    actor: Actor, *, new_group_id: str | None = None,
) -> tuple[Group, Outcome]:
    """Create the group with this key (with ``new_group_id`` as its id when given), or rename it; a
    tombstoned group raises GroupDeleted."""
    _require_authoritative(tenant, channel, "manage groups")
    db.use_tenant(conn, tenant.id)
    display_name = display_name.strip()
    row = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {_GROUP_COLUMNS} FROM groups WHERE tenant_id = %s AND channel = %s AND issuer = %s"  # noqa: S608
        " AND external_id = %s FOR UPDATE", [tenant.id, channel.value, issuer, external_id]).fetchone()
    if row is None:
        row = conn.cursor(row_factory=dict_row).execute(
            f"INSERT INTO groups (id, tenant_id, channel, issuer, external_id, display_name)"  # noqa: S608
            f" VALUES (coalesce(%s::uuid, gen_random_uuid()), %s, %s, %s, %s, %s) RETURNING {_GROUP_COLUMNS}",
            [new_group_id, tenant.id, channel.value, issuer, external_id, display_name]).fetchone()
        group = _group(row)
        append_changes(conn, tenant.id, actor, [Change("group", group.id, "created", {"display_name": display_name})])
        return group, Outcome.CREATED
    group = _group(row)
    if group.status == "deleted":
        raise GroupDeleted(f"group {group.id} was deleted")
    if group.display_name == display_name:
        return group, Outcome.UNCHANGED
    row = conn.cursor(row_factory=dict_row).execute(
        f"UPDATE groups SET display_name = %s, version = version + 1, updated_at = now() WHERE id = %s"  # noqa: S608
        f" RETURNING {_GROUP_COLUMNS}", [display_name, group.id]).fetchone()
    append_changes(conn, tenant.id, actor, [Change(
        "group", group.id, "updated", {"display_name": [group.display_name, display_name]})])
    return _group(row), Outcome.UPDATED


def delete_group(conn: psycopg.Connection, tenant: Tenant, group_id: str, channel: Channel, actor: Actor) -> Group:
    """Tombstone a group and end its memberships (one change-log entry says how many)."""
    _require_authoritative(tenant, channel, "delete groups")
    group = get_group(conn, tenant, group_id)
    if group.status == "deleted":
        return group
    ended = conn.execute(
        "WITH ended AS (DELETE FROM group_memberships WHERE group_id = %s RETURNING 1) SELECT count(*) FROM ended",
        [group.id]).fetchone()[0]
    row = conn.cursor(row_factory=dict_row).execute(
        f"UPDATE groups SET status = 'deleted', deleted_at = now(), version = version + 1, updated_at = now()"  # noqa: S608
        f" WHERE id = %s RETURNING {_GROUP_COLUMNS}", [group.id]).fetchone()
    append_changes(conn, tenant.id, actor, [Change("group", group.id, "deleted", {"memberships_ended": ended})])
    return _group(row)


def add_members(
    conn: psycopg.Connection, tenant: Tenant, group_id: str, user_ids: list[str], channel: Channel, actor: Actor
) -> list[str]:
    """Add users to a group; returns those newly added (already members are left as they are)."""
    _require_authoritative(tenant, channel, "manage memberships")
    group = get_group(conn, tenant, group_id)
    if group.status == "deleted":
        raise GroupDeleted(f"group {group.id} was deleted")
    wanted = _uuids(user_ids)
    known = {user_id for (user_id,) in conn.execute(
        "SELECT id FROM users WHERE tenant_id = %s AND id = ANY(%s) AND status <> 'deleted'",
        [tenant.id, wanted]).fetchall()}
    unknown = sorted({user_id for user_id in user_ids if parse_id(user_id) not in known})
    if unknown:
        raise UnknownMembers(unknown)
    added = sorted(str(user_id) for (user_id,) in conn.execute(
        "INSERT INTO group_memberships (tenant_id, group_id, user_id) SELECT %s, %s, id FROM users"
        " WHERE tenant_id = %s AND id = ANY(%s) ON CONFLICT DO NOTHING RETURNING user_id",
        [tenant.id, group.id, tenant.id, wanted]).fetchall())
    append_changes(conn, tenant.id, actor, [Change("membership", group.id, "added", {}, related_id=user_id)
                                            for user_id in added])
    return added


def remove_members(
    conn: psycopg.Connection, tenant: Tenant, group_id: str, user_ids: list[str], channel: Channel, actor: Actor
) -> list[str]:
    """Remove users from a group; returns those that were members."""
    _require_authoritative(tenant, channel, "manage memberships")
    group = get_group(conn, tenant, group_id)
    removed = sorted(str(user_id) for (user_id,) in conn.execute(
        "DELETE FROM group_memberships WHERE group_id = %s AND user_id = ANY(%s) RETURNING user_id",
        [group.id, _uuids(user_ids)]).fetchall())
    append_changes(conn, tenant.id, actor, [Change("membership", group.id, "removed", {}, related_id=user_id)
                                            for user_id in removed])
    return removed


def change_memberships(conn: psycopg.Connection, tenant: Tenant, channel: Channel, actor: Actor, *,
                       added: list[tuple[str, str]] = (), removed: list[tuple[str, str]] = ()
                       ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """add_members and remove_members for many groups at once: (group id, user id) pairs. Pairs whose
    group is deleted or whose user is deleted (or not of the tenant) are skipped; returns the pairs
    actually added and removed, each with its change-log entry."""
    _require_authoritative(tenant, channel, "manage memberships")
    db.use_tenant(conn, tenant.id)

    def document(pairs: list[tuple[str, str]]) -> Jsonb:
        return Jsonb([{"group_id": group_id, "user_id": user_id} for group_id, user_id in pairs])

    done_added = done_removed = []
    if added:
        done_added = sorted((str(g), str(u)) for g, u in conn.execute(
            "INSERT INTO group_memberships (tenant_id, group_id, user_id)"
            " SELECT %s, p.group_id, p.user_id FROM jsonb_to_recordset(%s) AS p(group_id uuid, user_id uuid)"
            " WHERE EXISTS (SELECT 1 FROM groups g WHERE g.id = p.group_id AND g.tenant_id = %s"
            "               AND g.status = 'active' OFFSET 0)"  # per pair: see sync_people
            " AND EXISTS (SELECT 1 FROM users u WHERE u.id = p.user_id AND u.tenant_id = %s"
            "             AND u.status <> 'deleted' OFFSET 0)"
            " ON CONFLICT DO NOTHING RETURNING group_id, user_id",
            [tenant.id, document(added), tenant.id, tenant.id]).fetchall())
    if removed:
        done_removed = sorted((str(g), str(u)) for g, u in conn.execute(
            "DELETE FROM group_memberships m USING jsonb_to_recordset(%s) AS p(group_id uuid, user_id uuid)"
            " WHERE m.group_id = p.group_id AND m.user_id = p.user_id AND m.tenant_id = %s"
            " RETURNING m.group_id, m.user_id", [document(removed), tenant.id]).fetchall())
    append_changes(conn, tenant.id, actor, [
        *(Change("membership", group_id, "added", {}, related_id=user_id) for group_id, user_id in done_added),
        *(Change("membership", group_id, "removed", {}, related_id=user_id) for group_id, user_id in done_removed)])
    return done_added, done_removed


def group_member_ids(conn: psycopg.Connection, tenant: Tenant, group_id: str) -> list[str]:
    db.use_tenant(conn, tenant.id)
    key = parse_id(group_id)
    return [str(user_id) for (user_id,) in conn.execute(
        "SELECT user_id FROM group_memberships WHERE group_id = %s ORDER BY user_id", [key]).fetchall()] if key else []


def users_by_identity(conn: psycopg.Connection, tenant: Tenant, channel: Channel, issuer: str,
                      external_ids: list[str]) -> dict[str, str]:
    """The live (not deleted) users linked to these identities: external id -> user id."""
    db.use_tenant(conn, tenant.id)
    return {external_id: str(user_id) for external_id, user_id in conn.execute(
        "SELECT k.external_id, i.user_id FROM unnest(%s::text[]) AS k(external_id)"
        " CROSS JOIN LATERAL (SELECT i.user_id FROM user_identities i JOIN users u ON u.id = i.user_id"
        "   WHERE i.tenant_id = %s AND i.channel = %s AND i.issuer = %s AND i.external_id = k.external_id"
        "   AND u.status <> 'deleted' OFFSET 0) i", [external_ids, tenant.id, channel.value, issuer]).fetchall()}


def groups_by_key(conn: psycopg.Connection, tenant: Tenant, channel: Channel, issuer: str,
                  external_ids: list[str], *, include_deleted: bool = False) -> dict[str, str]:
    """The groups with these keys: external id -> group id (live ones unless asked)."""
    db.use_tenant(conn, tenant.id)
    return {external_id: str(group_id) for external_id, group_id in conn.execute(
        "SELECT external_id, id FROM groups WHERE tenant_id = %s AND channel = %s AND issuer = %s"
        " AND external_id = ANY(%s) AND (%s OR status = 'active')",
        [tenant.id, channel.value, issuer, external_ids, include_deleted]).fetchall()}
