"""Opaque credentials this service issues: admin keys, SCIM tokens, app secrets.

Contract (tests/shared/test_issued_secrets.py):
- a credential is a recognisable prefix and 32 random bytes, URL-safe; it is shown once, when issued;
- only its SHA-256 is stored (a unique column, so presenting it is one indexed lookup of the hash)
  with a hint (prefix and last four characters) that listings show instead;
- a presented value is hashed before it goes anywhere near a query or a log.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime

ADMIN_KEY_PREFIX = "eca_"
ADMIN_TOKEN_PREFIX = "ect_"  # noqa: S105 - a prefix: short-lived admin tokens of signed-in users
SCIM_TOKEN_PREFIX = "ecs_"  # noqa: S105 - prefixes make issued secrets recognisable
APP_SECRET_PREFIX = "ecp_"  # noqa: S105
APP_CLIENT_ID_PREFIX = "ecc_"


@dataclass(frozen=True)
class IssuedSecret:
    value: str
    hash: str
    hint: str


@dataclass(frozen=True)
class IssuedCredential:
    """What listings show of an issued credential: never its value."""

    id: str
    name: str
    hint: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {name: value.isoformat() if isinstance(value, datetime) else value
                for name, value in asdict(self).items()}


def secret_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def issue_secret(prefix: str) -> IssuedSecret:
    value = prefix + secrets.token_urlsafe(32)
    return IssuedSecret(value=value, hash=secret_hash(value), hint=f"{prefix}…{value[-4:]}")


def new_client_id() -> str:
    """A public identifier (not a secret) for an app's inbound credentials."""
    return APP_CLIENT_ID_PREFIX + secrets.token_hex(12)
