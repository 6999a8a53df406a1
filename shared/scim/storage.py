"""The Postgres ``ScimStorage``: SCIM users and groups of one tenant, on the identity store.

Contract (scim2-server's ``ScimStorageContract``, tests/scim/test_storage.py, plus):
- users and groups are the identity store's: every write goes through its rules (a SCIM user is a
  ``users`` row with the SCIM identity; memberships are ``group_memberships``), in the caller's
  transaction, so the change log moves with them; ``operation()`` is a savepoint, so one failed
  Bulk operation leaves the others;
- the resource's other attributes are kept as the IdP wrote them (a password never is); ``active``
  reads false when the identity store holds the user inactive;
- ``userName`` is unique per tenant (by comparison key) and so is a group's ``displayName``; the
  identity store's email and Entra object id conflicts are uniqueness errors too;
- deleting a user tombstones it (its memberships end) and the resource is gone: 404 from then on;
- filters, sorts and both index and cursor paging run in SQL (``shared.scim.sql``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import psycopg
from psycopg.types.json import Jsonb
from scim2_models import (
    InvalidCursorException,
    InvalidValueException,
    NotFoundException,
    Path,
    PreconditionFailedException,
    Resource,
    ResourceType,
    ResponseParameters,
    SearchRequest,
    UniquenessException,
)
from scim2_server.storage import ScimStorage, SearchPage

from shared import db
from shared.identity import store
from shared.identity.models import (
    Actor,
    Channel,
    GroupDeleted,
    IdentityConflict,
    IdentityError,
    PersonClaims,
    UnknownMembers,
    parse_id,
)
from shared.scim.provider import IDENTITY_SCHEMA, scim_provider
from shared.scim.sql import GROUPS, USERS, Params, Table, compile_filter, sort_key
from shared.tenants.models import Tenant

SCIM_ISSUER = "scim"
# A document never keeps these: id and meta are columns, groups is computed, a password is never stored.
_NOT_STORED = ("id", "meta", "password", "groups")
def _version(number: int) -> str:
    return f'W/"{number}"'


def _key(model: type[Resource[Any]], attribute: str, value: str | None) -> str | None:
    if value is None:
        return None
    binding = Path[model](attribute).resolve()  # type: ignore[index]
    return binding.comparable(value)


def _wants_members(parameters: ResponseParameters[Any] | None) -> bool:
    if parameters is None:
        return True
    excluded = {str(path).lower().rsplit(":", 1)[-1] for path in parameters.excluded_attributes or []}
    if "members" in excluded:
        return False
    wanted = [str(path).lower().rsplit(":", 1)[-1] for path in parameters.attributes or []]
    return not wanted or any(path == "members" or path.startswith("members.") for path in wanted)


class PostgresScimStorage(ScimStorage):
    supports_cursors = True

    def __init__(self, conn: psycopg.Connection, tenant: Tenant, actor: Actor, *, savepoints: bool = True,
                 lock_reads: bool = False) -> None:
        self.conn = conn
        self.tenant = tenant
        self.actor = actor
        self.savepoints = savepoints
        # A request that writes reads its resource FOR UPDATE: the handler reads before it
        # replaces or deletes, so the write can use that row instead of reading it again.
        self.lock_reads = lock_reads
        self._read_for_update: tuple[Table, dict[str, Any]] | None = None
        provider = scim_provider()
        self.user_model = provider.model_for(next(rt for rt in provider.resource_types if rt.id == "User"))
        self.group_model = provider.model_for(next(rt for rt in provider.resource_types if rt.id == "Group"))
        db.use_tenant(conn, tenant.id)

    @contextmanager
    def operation(self) -> Iterator[None]:
        """A savepoint, so that one failed operation of a Bulk request leaves the others. A single
        request needs none (its transaction is the unit), so it can do without the round trips."""
        self._read_for_update = None
        if not self.savepoints:
            yield
            return
        with self.conn.transaction():
            yield

    def _table(self, resource_type: ResourceType) -> Table:
        return USERS if resource_type.id == "User" else GROUPS

    def _model(self, table: Table) -> type[Resource[Any]]:
        return self.user_model if table is USERS else self.group_model

    # --- reading -------------------------------------------------------------------------------------

    def _rows(self, table: Table, ids: list[uuid.UUID], *, lock: bool = False) -> list[dict[str, Any]]:
        if not ids:
            return []
        status = ", u.status" if table is USERS else ", NULL AS status"
        join = " JOIN users u ON u.id = su.user_id" if table is USERS else ""
        rows = self.conn.execute(
            f"SELECT {table.alias}.{table.id_column}, {table.alias}.document, {table.alias}.version,"
            f" {table.alias}.created, {table.alias}.last_modified{status}"
            f" FROM {table.table} {table.alias}{join}"
            f" WHERE {table.alias}.tenant_id = %s AND {table.alias}.{table.id_column} = ANY(%s)"
            + (f" FOR UPDATE OF {table.alias}" if lock else ""),
            [self.tenant.id, ids]).fetchall()
        return [{"id": row[0], "document": row[1], "version": row[2], "created": row[3], "last_modified": row[4],
                 "status": row[5]} for row in rows]

    def _members(self, group_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
        members: dict[uuid.UUID, list[dict[str, Any]]] = {group_id: [] for group_id in group_ids}
        if not group_ids:
            return members
        rows = self.conn.execute(
            "SELECT group_id, user_id FROM group_memberships WHERE group_id = ANY(%s)"
            " ORDER BY group_id, created_at, user_id", [group_ids]).fetchall()
        for group_id, user_id in rows:
            members[group_id].append({"value": str(user_id), "type": "User", "$ref": f"Users/{user_id}"})
        return members

    def _resource(self, table: Table, row: dict[str, Any], members: list[dict[str, Any]] | None) -> Resource[Any]:
        document = dict(row["document"])
        if table is USERS and row["status"] == "inactive":
            document["active"] = False
        if members:
            document["members"] = members
        document["id"] = str(row["id"])
        document["meta"] = {
            "resourceType": table.resource_type, "created": row["created"].isoformat(),
            "lastModified": row["last_modified"].isoformat(), "version": _version(row["version"]),
        }
        return self._model(table).model_validate(document)

    def _stored_row(self, table: Table, resource_id: str | None, *, lock: bool = False) -> dict[str, Any]:
        key = parse_id(resource_id)
        rows = self._rows(table, [key], lock=lock) if key else []
        if not rows:
            raise NotFoundException(detail=f"{table.resource_type} {resource_id!r} not found")
        return rows[0]

    def _row_to_write(self, table: Table, resource_id: str | None) -> dict[str, Any]:
        """The row about to be written, locked: the one this operation read FOR UPDATE, or read now."""
        read, self._read_for_update = self._read_for_update, None
        if read is not None and read[0] is table and str(read[1]["id"]) == str(resource_id):
            return read[1]
        return self._stored_row(table, resource_id, lock=True)

    def get(self, resource_type: ResourceType, resource_id: str, *,
            response_parameters: ResponseParameters[Any] | None = None) -> Resource[Any]:
        table = self._table(resource_type)
        row = self._stored_row(table, resource_id, lock=self.lock_reads)
        if self.lock_reads:
            self._read_for_update = (table, row)
        members = None
        if table is GROUPS and _wants_members(response_parameters):
            members = self._members([row["id"]])[row["id"]]
        return self._resource(table, row, members)

    # --- searching -------------------------------------------------------------------------------------

    def search(self, resource_types: list[ResourceType], search_request: SearchRequest[Any], *,
               position: Any = None) -> SearchPage:
        params = Params()
        tables = list(dict.fromkeys(self._table(resource_type) for resource_type in resource_types))
        parts = []
        sort_type = "text"
        sorts = []
        for table in tables:
            model = self._model(table)
            binding = search_request.sort_binding(model) if search_request.sort_by is not None else None
            sorts.append((table, model, binding))
            if binding is not None:
                sort_type = sort_key(binding, model, table, Params())[1]
        for table, model, binding in sorts:
            sort_sql, _ = sort_key(binding, model, table, params) if binding is not None else (f"NULL::{sort_type}", "")
            where = "TRUE"
            if search_request.filter is not None:
                where = compile_filter(search_request.filter.ast, model, table, params)
            join = " JOIN users u ON u.id = su.user_id" if table is USERS else ""
            status = "u.status" if table is USERS else "NULL::text"
            alias = table.alias
            parts.append(
                f"SELECT {params.add(table.resource_type)}::text AS resource_type,"
                f" {alias}.{table.id_column}::text AS id, {sort_sql} AS sort_value, {alias}.document,"
                f" {alias}.version, {alias}.created, {alias}.last_modified, {status} AS status"
                f" FROM {table.table} {alias}{join}"
                f" WHERE {alias}.tenant_id = {params.add(self.tenant.id)} AND {where}")
        matching = " UNION ALL ".join(parts)
        descending = (search_request.sort_by is not None
                      and search_request.sort_order == SearchRequest.SortOrder.descending)
        if search_request.cursor is None:
            return self._index_page(matching, params, search_request, descending)
        total = self.conn.execute(f"SELECT count(*) FROM ({matching}) AS matching", params.values).fetchone()[0]
        return self._cursor_page(matching, params, search_request, position, descending, sort_type, total)

    @staticmethod
    def _order(descending: bool, *, reverse: bool = False) -> str:
        direction = "DESC" if descending != reverse else "ASC"
        return (f" ORDER BY (sort_value IS NULL) {direction}, sort_value {direction} NULLS LAST,"
                f" id {direction}")

    def _index_page(self, matching: str, params: Params, search_request: SearchRequest[Any],
                    descending: bool) -> SearchPage:
        """One query: the page's resources and, beside each, the number of all the matching ones."""
        start = search_request.start_index_0 or 0
        limit = "" if search_request.count is None else f" LIMIT {int(search_request.count)}"
        rows = self.conn.execute(
            f"SELECT resource_type, id, document, version, created, last_modified, status, count(*) OVER () AS total"
            f" FROM ({matching}) AS matching{self._order(descending)}{limit} OFFSET {int(start)}",
            params.values).fetchall()
        if rows:
            total = rows[0][7]
        else:  # a page past the end (or count=0) still reports the total
            total = self.conn.execute(f"SELECT count(*) FROM ({matching}) AS matching", params.values).fetchone()[0]
        return SearchPage(total, self._resources_of(rows, search_request))

    def _resources_of(self, rows: list[tuple[Any, ...]], parameters: SearchRequest[Any]) -> list[Resource[Any]]:
        group_ids = [uuid.UUID(row[1]) for row in rows if row[0] == GROUPS.resource_type]
        members = self._members(group_ids) if group_ids and _wants_members(parameters) else {}
        resources = []
        for resource_type, resource_id, document, version, created, last_modified, status, *_ in rows:
            table = USERS if resource_type == USERS.resource_type else GROUPS
            key = uuid.UUID(resource_id)
            resources.append(self._resource(table, {
                "id": key, "document": document, "version": version, "created": created,
                "last_modified": last_modified, "status": status}, members.get(key)))
        return resources

    _FILLERS: ClassVar[dict[str, str]] = {
        "text": "''", "boolean": "false", "numeric": "0", "timestamptz": "'-infinity'::timestamptz"}

    def _cursor_page(self, matching: str, params: Params, search_request: SearchRequest[Any], position: Any,
                     descending: bool, sort_type: str, total: int) -> SearchPage:
        count = search_request.count
        if count == 0:
            return SearchPage(total, [])
        filler = self._FILLERS.get(sort_type, "''")
        row_key = f"ROW((sort_value IS NULL), coalesce(sort_value, {filler}), id)"
        collate = ' COLLATE "C"' if sort_type == "text" else ""
        direction, anchor = self._read_position(position, sort_type)
        condition = "TRUE"
        if anchor is not None:
            missing, value, anchor_id = anchor
            forward = direction == "next"
            comparison = ">" if forward != descending else "<"
            anchor_key = (f"ROW({params.add(missing)}::boolean, coalesce({params.add(value)}::{sort_type}, {filler})"
                          f"{collate}, {params.add(anchor_id)}::text)")
            condition = f"{row_key} {comparison} {anchor_key}"
        values = params.values
        backwards = direction == "previous"
        limit = "" if count is None else f" LIMIT {int(count) + 1}"
        rows = self.conn.execute(
            f"SELECT resource_type, id, document, version, created, last_modified, status, (sort_value IS NULL),"
            f" sort_value FROM ({matching}) AS matching"
            f" WHERE {condition}{self._order(descending, reverse=backwards)}{limit}", values).fetchall()
        more = count is not None and len(rows) > count
        rows = rows[:count] if count is not None else rows
        if backwards:
            rows.reverse()
        page = SearchPage(total, self._resources_of(rows, search_request))
        if rows:
            after_last = more if not backwards else anchor is not None
            before_first = (anchor is not None) if not backwards else more
            if after_last:
                page.next = self._position("next", rows[-1])
            if before_first:
                page.previous = self._position("previous", rows[0])
        return page

    @staticmethod
    def _position(direction: str, row: tuple[Any, ...]) -> dict[str, Any]:
        identifier, missing, value = row[1], row[7], row[8]
        if isinstance(value, datetime):
            encoded: Any = {"datetime": value.isoformat()}
        elif isinstance(value, Decimal):
            encoded = {"numeric": str(value)}
        else:
            encoded = value
        return {"d": direction, "m": missing, "k": None if missing else encoded, "i": identifier}

    @staticmethod
    def _read_position(position: Any, sort_type: str) -> tuple[str, tuple[bool, Any, str] | None]:
        if position is None:
            return "next", None
        try:
            direction, missing, value, identifier = position["d"], position["m"], position["k"], position["i"]
        except (TypeError, KeyError):
            raise InvalidCursorException from None
        if (direction not in ("next", "previous") or not isinstance(identifier, str)
                or not isinstance(missing, bool)):
            raise InvalidCursorException
        if isinstance(value, dict):
            value = value.get("datetime") or value.get("numeric")
        return direction, (missing, value, identifier)

    # --- writing users ---------------------------------------------------------------------------------

    def _document(self, resource: Resource[Any]) -> dict[str, Any]:
        document = resource.model_dump(mode="json")
        for name in _NOT_STORED:
            document.pop(name, None)
        return document

    def _claims(self, resource: Any, external_id: str | None) -> PersonClaims:
        emails = resource.emails or []
        chosen = (next((email for email in emails if email.primary), None)
                  or next((email for email in emails if (email.type or "").lower() == "work"), None)
                  or (emails[0] if emails else None))
        email = chosen.value if chosen is not None else None
        if email is None and resource.user_name and "@" in resource.user_name:
            email = resource.user_name
        name = resource.name
        roles = None if resource.roles is None else tuple(
            str(role.value).strip() for role in resource.roles if role.value)
        return PersonClaims(
            channel=Channel.SCIM, issuer=SCIM_ISSUER, external_id=external_id, email=email,
            given_name=name.given_name if name else None, family_name=name.family_name if name else None,
            display_name=resource.display_name or (name.formatted if name else None),
            # The document is the truth: a user is inactive exactly when it says active=false.
            entra_object_id=self._entra_object_id(resource), role_slugs=roles, active=resource.active is not False,
        )

    def _entra_object_id(self, resource: Any) -> str | None:
        """The Entra object id: our extension's ``entraObjectId``, or a GUID ``externalId`` when the tenant's
        users come from Entra (its Entra or Teams tenant is known)."""
        extension = resource.model_dump(mode="json").get(IDENTITY_SCHEMA) or {}
        candidate = extension.get("entraObjectId")
        if candidate is None and (self.tenant.entra_tenant_id or self.tenant.teams_tenant_id):
            candidate = resource.external_id
        parsed = parse_id(candidate)
        return str(parsed) if parsed else None

    def _sync(self, resource: Any, external_id: str | None) -> str:
        try:
            result = store.sync_person(self.conn, self.tenant, self._claims(resource, external_id), self.actor)
        except IdentityConflict as conflict:
            raise UniquenessException(detail=f"{conflict.field} is already in use by another user") from None
        except IdentityError as error:
            raise InvalidValueException(detail=str(error)) from None
        return result.user.id

    def _check_user_name(self, user_name_key: str, user_id: str | None) -> None:
        # Checked before writing, not left to the unique index: a violation would abort the
        # transaction, and the storage must stay usable after refusing one write.
        taken = self.conn.execute(
            "SELECT 1 FROM scim_users WHERE tenant_id = %s AND user_name_key = %s AND user_id IS DISTINCT FROM %s",
            [self.tenant.id, user_name_key, user_id]).fetchone()
        if taken:
            raise UniquenessException(detail="userName is already in use")

    def _store_emails(self, user_id: str, resource: Any, *, replace: bool) -> None:
        """Index the user's email values (in one statement, replacing the former ones on an update)."""
        keys = sorted({_key(self.user_model, "emails.value", email.value) for email in resource.emails or []
                       if email.value})
        if replace:
            self.conn.execute(
                "WITH gone AS (DELETE FROM scim_user_emails WHERE user_id = %(user)s)"
                " INSERT INTO scim_user_emails (tenant_id, user_id, value_key)"
                " SELECT %(tenant)s, %(user)s, key FROM unnest(%(keys)s::text[]) AS key",
                {"user": user_id, "tenant": self.tenant.id, "keys": keys})
        elif keys:
            self.conn.execute(
                "INSERT INTO scim_user_emails (tenant_id, user_id, value_key)"
                " SELECT %(tenant)s, %(user)s, key FROM unnest(%(keys)s::text[]) AS key",
                {"user": user_id, "tenant": self.tenant.id, "keys": keys})

    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        table = self._table(resource_type)
        if table is GROUPS:
            return self._create_group(resource)
        user: Any = resource
        user_name_key = _key(self.user_model, "userName", user.user_name)
        self._check_user_name(user_name_key, None)
        user_id = self._sync(user, None)
        document = self._document(user)
        row = self.conn.execute(
            # One clock reading for both: two clock_timestamp() calls can differ by a microsecond, and a
            # new resource's lastModified must equal its created.
            "INSERT INTO scim_users (user_id, tenant_id, user_name, user_name_key, external_id, document,"
            " created, last_modified) SELECT %s, %s, %s, %s, %s, %s, clock.now, clock.now"
            " FROM (SELECT clock_timestamp() AS now) AS clock"
            " ON CONFLICT (user_id) DO NOTHING RETURNING version, created, last_modified",
            [user_id, self.tenant.id, user.user_name, user_name_key,
             _key(self.user_model, "externalId", user.external_id), Jsonb(document)]).fetchone()
        if row is None:  # the person it matched already has a SCIM user
            raise UniquenessException(detail="this person already has a SCIM user")
        self._store_emails(user_id, user, replace=False)
        status = "inactive" if user.active is False else "active"
        return self._resource(USERS, {"id": user_id, "document": document, "version": row[0], "created": row[1],
                                      "last_modified": row[2], "status": status}, None)

    def update(self, resource_type: ResourceType, resource: Resource[Any], *,
               expected_version: str | None = None) -> Resource[Any]:
        table = self._table(resource_type)
        row = self._row_to_write(table, resource.id)
        if expected_version is not None and _version(row["version"]) != expected_version:
            raise PreconditionFailedException
        if table is GROUPS:
            return self._update_group(row, resource)
        user: Any = resource
        user_id = str(row["id"])
        user_name_key = _key(self.user_model, "userName", user.user_name)
        if user_name_key != _key(self.user_model, "userName", row["document"].get("userName")):
            self._check_user_name(user_name_key, user_id)
        self._sync(user, user_id)
        document = self._document(user)
        version, created, last_modified = self.conn.execute(
            "UPDATE scim_users SET user_name = %s, user_name_key = %s, external_id = %s, document = %s,"
            " version = version + 1, last_modified = clock_timestamp() WHERE user_id = %s"
            " RETURNING version, created, last_modified",
            [user.user_name, user_name_key, _key(self.user_model, "externalId", user.external_id),
             Jsonb(document), user_id]).fetchone()
        self._store_emails(user_id, user, replace=True)
        status = "inactive" if user.active is False else "active"
        return self._resource(USERS, {"id": user_id, "document": document, "version": version, "created": created,
                                      "last_modified": last_modified, "status": status}, None)

    def delete(self, resource_type: ResourceType, resource_id: str, *, expected_version: str | None = None) -> None:
        table = self._table(resource_type)
        row = self._row_to_write(table, resource_id)
        if expected_version is not None and _version(row["version"]) != expected_version:
            raise PreconditionFailedException
        if table is GROUPS:
            store.delete_group(self.conn, self.tenant, str(row["id"]), Channel.SCIM, self.actor)
            self.conn.execute("DELETE FROM scim_groups WHERE group_id = %s", [row["id"]])
            return
        groups = [group_id for (group_id,) in self.conn.execute(
            "SELECT group_id FROM group_memberships WHERE user_id = %s", [row["id"]]).fetchall()]
        store.delete_user(self.conn, self.tenant, str(row["id"]), Channel.SCIM, self.actor)
        self.conn.execute("DELETE FROM scim_users WHERE user_id = %s", [row["id"]])
        self.touch_groups(groups)

    # --- writing groups --------------------------------------------------------------------------------

    def touch_groups(self, group_ids: list[Any]) -> None:
        """A membership changed: the groups get a new version (ETag) and date."""
        if group_ids:
            self.conn.execute(
                "UPDATE scim_groups SET version = version + 1, last_modified = clock_timestamp()"
                " WHERE group_id = ANY(%s)", [list(group_ids)])

    def _check_display_name(self, key: str, group_id: Any) -> None:
        taken = self.conn.execute(
            "SELECT 1 FROM scim_groups WHERE tenant_id = %s AND display_name_key = %s"
            " AND group_id IS DISTINCT FROM %s",
            [self.tenant.id, key, group_id]).fetchone()
        if taken:
            raise UniquenessException(detail="a group with this displayName already exists")

    @staticmethod
    def member_ids(members: list[Any] | None) -> list[str]:
        """User ids of a members list; a group member or a malformed id is refused (400)."""
        ids = []
        for member in members or []:
            value = member.get("value") if isinstance(member, dict) else getattr(member, "value", None)
            kind = member.get("type") if isinstance(member, dict) else getattr(member, "type", None)
            if kind is not None and str(kind).lower() == "group":
                raise InvalidValueException(detail="groups cannot be members of groups here")
            parsed = parse_id(value)
            if parsed is None:
                raise InvalidValueException(detail=f"member {value!r} is not a user of this tenant")
            ids.append(str(parsed))
        return ids

    def add_members(self, group_id: str, user_ids: list[str]) -> list[str]:
        try:
            return store.add_members(self.conn, self.tenant, group_id, user_ids, Channel.SCIM, self.actor)
        except UnknownMembers as unknown:
            raise InvalidValueException(detail=f"not users of this tenant: {', '.join(unknown.user_ids)}") from None

    def remove_members(self, group_id: str, user_ids: list[str]) -> list[str]:
        return store.remove_members(self.conn, self.tenant, group_id, user_ids, Channel.SCIM, self.actor)

    def _create_group(self, resource: Any) -> Resource[Any]:
        key = _key(self.group_model, "displayName", resource.display_name)
        self._check_display_name(key, None)
        members = self.member_ids(resource.members)
        group_id = str(uuid.uuid4())
        try:
            store.upsert_group(self.conn, self.tenant, Channel.SCIM, SCIM_ISSUER, group_id, resource.display_name,
                               self.actor, new_group_id=group_id)
        except GroupDeleted as error:  # a fresh id cannot be a tombstone; kept for the type checker
            raise InvalidValueException(detail=str(error)) from None
        document = self._document(resource)
        document.pop("members", None)
        self.conn.execute(
            "INSERT INTO scim_groups (group_id, tenant_id, display_name, display_name_key, external_id, document,"
            " created, last_modified) SELECT %s, %s, %s, %s, %s, %s, clock.now, clock.now"
            " FROM (SELECT clock_timestamp() AS now) AS clock",  # one reading: see the users' insert
            [group_id, self.tenant.id, resource.display_name, key,
             _key(self.group_model, "externalId", resource.external_id), Jsonb(document)])
        self.add_members(group_id, members)
        return self.get(next(rt for rt in scim_provider().resource_types if rt.id == "Group"), group_id)

    def _update_group(self, row: dict[str, Any], resource: Any) -> Resource[Any]:
        group_id = str(row["id"])
        key = _key(self.group_model, "displayName", resource.display_name)
        self._check_display_name(key, row["id"])
        store.upsert_group(self.conn, self.tenant, Channel.SCIM, SCIM_ISSUER, group_id, resource.display_name,
                           self.actor)
        wanted = set(self.member_ids(resource.members))
        current = set(store.group_member_ids(self.conn, self.tenant, group_id))
        self.add_members(group_id, sorted(wanted - current))
        self.remove_members(group_id, sorted(current - wanted))
        document = self._document(resource)
        document.pop("members", None)
        self.conn.execute(
            "UPDATE scim_groups SET display_name = %s, display_name_key = %s, external_id = %s, document = %s,"
            " version = version + 1, last_modified = clock_timestamp() WHERE group_id = %s",
            [resource.display_name, key, _key(self.group_model, "externalId", resource.external_id),
             Jsonb(document), group_id])
        return self.get(next(rt for rt in scim_provider().resource_types if rt.id == "Group"), group_id)

