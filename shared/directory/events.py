"""Directory Sync events as WorkOS sends them, checked before anything is recorded.

Contract (tests/directory/test_events.py):
- ``parse_event`` takes the decoded JSON of one event (webhook body or Events API item) and returns a
  ``DirectoryEvent``, or raises ``MalformedEvent`` saying which field is wrong;
- the envelope is ``{"object": "event", "id", "event", "data", "created_at"}``; for the ``dsync.*``
  types the fields the applier needs are checked too (ids, ``updated_at``, ``state``...), so a
  recorded event can always be applied or refused with a reason, never crash the applier;
- other event types parse with ``is_directory_event`` false: they are acknowledged and not recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

USER_EVENTS = ("dsync.user.created", "dsync.user.updated", "dsync.user.deleted")
GROUP_EVENTS = ("dsync.group.created", "dsync.group.updated", "dsync.group.deleted")
MEMBERSHIP_EVENTS = ("dsync.group.user_added", "dsync.group.user_removed")
DIRECTORY_EVENTS = ("dsync.activated", "dsync.deleted")
DSYNC_EVENTS = DIRECTORY_EVENTS + USER_EVENTS + GROUP_EVENTS + MEMBERSHIP_EVENTS
MAX_ID_LENGTH = 200


class MalformedEvent(ValueError):
    """The document is not an event this service can record; the message names the field."""


@dataclass(frozen=True)
class DirectoryEvent:
    id: str
    event: str
    created_at: datetime
    organization_id: str | None
    directory_id: str | None
    data: dict[str, Any]

    @property
    def is_directory_event(self) -> bool:
        return self.event in DSYNC_EVENTS

    def as_document(self) -> dict[str, Any]:
        return {"object": "event", "id": self.id, "event": self.event, "data": self.data,
                "created_at": self.created_at.isoformat().replace("+00:00", "Z")}


def parse_time(value: Any, field_name: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedEvent(f"{field_name} must be an ISO 8601 timestamp")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedEvent(f"{field_name} {value[:40]!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise MalformedEvent(f"{field_name} must carry a time zone (Z)")
    return moment


def _text(document: dict[str, Any], name: str, where: str, *, nullable: bool = False) -> str | None:
    value = document.get(name)
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise MalformedEvent(f"{where}{name} must be a non-empty string")
    return value


def _object(document: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = document.get(name)
    if not isinstance(value, dict):
        raise MalformedEvent(f"{where}{name} must be an object")
    return value


def check_user(user: dict[str, Any], where: str = "data.") -> None:
    for name in ("id", "directory_id"):
        _text(user, name, where)
    _text(user, "organization_id", where, nullable=True)
    parse_time(user.get("updated_at"), f"{where}updated_at")
    if user.get("state") not in ("active", "inactive", "suspended"):
        raise MalformedEvent(f"{where}state must be active, inactive or suspended")
    for name in ("email", "first_name", "last_name", "name"):
        if user.get(name) is not None and not isinstance(user[name], str):
            raise MalformedEvent(f"{where}{name} must be a string or null")
    roles = user.get("roles")
    if roles is not None and not (isinstance(roles, list) and all(
            isinstance(role, dict) and isinstance(role.get("slug"), str) for role in roles)):
        raise MalformedEvent(f"{where}roles must be a list of {{slug}} objects")
    role = user.get("role")
    if role is not None and not (isinstance(role, dict) and isinstance(role.get("slug"), str)):
        raise MalformedEvent(f"{where}role must be a {{slug}} object")


def check_group(group: dict[str, Any], where: str = "data.") -> None:
    for name in ("id", "directory_id"):
        _text(group, name, where)
    _text(group, "organization_id", where, nullable=True)
    parse_time(group.get("updated_at"), f"{where}updated_at")
    if not isinstance(group.get("name"), str):
        raise MalformedEvent(f"{where}name must be a string")


def _scope(event: str, data: dict[str, Any]) -> tuple[str | None, str | None]:
    """(organization id, directory id) of a dsync event, its data checked."""
    if event in DIRECTORY_EVENTS:
        return _text(data, "organization_id", "data.", nullable=True), _text(data, "id", "data.")
    if event in USER_EVENTS:
        check_user(data)
        return data.get("organization_id"), data["directory_id"]
    if event in GROUP_EVENTS:
        check_group(data)
        return data.get("organization_id"), data["directory_id"]
    directory_id = _text(data, "directory_id", "data.")
    user, group = _object(data, "user", "data."), _object(data, "group", "data.")
    check_user(user, "data.user.")
    check_group(group, "data.group.")
    return user.get("organization_id") or group.get("organization_id"), directory_id


def parse_event(document: Any) -> DirectoryEvent:
    if not isinstance(document, dict):
        raise MalformedEvent("an event must be a JSON object")
    if document.get("object", "event") != "event":
        raise MalformedEvent("object must be 'event'")
    event_id = _text(document, "id", "")
    event = _text(document, "event", "")
    created_at = parse_time(document.get("created_at"), "created_at")
    data = _object(document, "data", "")
    organization_id = directory_id = None
    if event in DSYNC_EVENTS:
        organization_id, directory_id = _scope(event, data)
    return DirectoryEvent(event_id, event, created_at, organization_id, directory_id, data)
