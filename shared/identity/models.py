"""The identity store's vocabulary: channels, users, groups, who acted, and what can go wrong."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.tenants.models import ProvisioningChannel

_ID_LENGTH = 36


def parse_id(value: object) -> uuid.UUID | None:
    """A user or group id (the 36-character form) as a UUID, or None when it is not one: ids are
    compared as uuid in SQL, where the key indexes serve, never as text."""
    text = str(value) if value is not None else ""
    if len(text) != _ID_LENGTH:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


class Channel(StrEnum):
    """Where an assertion about a person comes from."""

    SCIM = "scim"  # the tenant's IdP pushing SCIM
    WORKOS = "workos"  # WorkOS Directory Sync
    ENTRA = "entra"  # sign-in directly against the tenant's Entra ID
    SSO = "sso"  # sign-in through WorkOS SSO


def authoritative_channels(provisioning: ProvisioningChannel) -> frozenset[Channel]:
    """The channels that decide who exists, for a tenant's provisioning setting."""
    return {
        ProvisioningChannel.SCIM: frozenset({Channel.SCIM}),
        ProvisioningChannel.WORKOS: frozenset({Channel.WORKOS}),
        ProvisioningChannel.SSO_JIT: frozenset({Channel.SSO, Channel.ENTRA}),
    }[provisioning]


class UserStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    DELETED = "deleted"  # a tombstone: the id stays, the user is gone


class ActorKind(StrEnum):
    SCIM_TOKEN = "scim-token"  # noqa: S105 - an actor kind
    IDP = "idp"
    SSO = "sso"
    ADMIN = "admin"
    SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    """Who made a change: recorded with every change-log entry."""

    kind: ActorKind
    id: str


@dataclass(frozen=True)
class PersonClaims:
    """What one channel asserts about a person; None means the channel says nothing about a field."""

    channel: Channel
    issuer: str
    # None for a resource that has no identity yet and takes the id of the user it lands on (a SCIM
    # POST: SCIM's identity is the resource id, which is the user id).
    external_id: str | None
    email: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    display_name: str | None = None
    entra_object_id: str | None = None
    role_slugs: tuple[str, ...] | None = None
    active: bool | None = None
    # Profile fields the channel states in full: None there means "empty", not "says nothing" (a
    # directory snapshot, where a name that disappeared must be cleared).
    clears_absent: frozenset[str] = frozenset()


@dataclass(frozen=True)
class User:
    id: str
    tenant_id: str
    primary_email: str | None
    given_name: str | None
    family_name: str | None
    display_name: str | None
    status: UserStatus
    entra_object_id: str | None
    role_slugs: tuple[str, ...]
    created_by_channel: str
    version: int
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "primary_email": self.primary_email, "given_name": self.given_name,
            "family_name": self.family_name, "display_name": self.display_name, "status": self.status.value,
            "entra_object_id": self.entra_object_id, "role_slugs": list(self.role_slugs),
            "created_by_channel": self.created_by_channel, "version": self.version,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class Group:
    id: str
    tenant_id: str
    channel: Channel
    issuer: str
    external_id: str
    display_name: str
    status: str
    version: int
    created_at: datetime
    updated_at: datetime


class Outcome(StrEnum):
    CREATED = "created"
    RESTORED = "restored"
    REACTIVATED = "reactivated"
    DEACTIVATED = "deactivated"
    UPDATED = "updated"
    LINKED = "linked"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class SyncResult:
    user: User
    outcome: Outcome


class IdentityError(Exception):
    """Base of what the identity store refuses; nothing was written."""


class NotProvisioned(IdentityError):
    """No user matches, and this channel may not create one (it is not the tenant's authoritative one)."""


class NotAuthoritative(IdentityError):
    """This channel may not make this change: only the tenant's authoritative channel may."""


class IdentityConflict(IdentityError):
    """A unique value (email, Entra object id, identity) belongs to another user of the tenant."""

    def __init__(self, field_name: str, value: str, other_user_id: str) -> None:
        super().__init__(f"{field_name} {value!r} already belongs to user {other_user_id}")
        self.field = field_name
        self.other_user_id = other_user_id


class UserNotFound(IdentityError, LookupError):
    pass


class GroupNotFound(IdentityError, LookupError):
    pass


class GroupDeleted(IdentityError):
    """The group is a tombstone: a late event must not bring it back."""


class UnknownMembers(IdentityError):
    def __init__(self, user_ids: list[str]) -> None:
        super().__init__(f"not users of this tenant (or deleted): {', '.join(user_ids)}")
        self.user_ids = user_ids
