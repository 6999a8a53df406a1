"""What a sign-in tells us about a person, whichever provider verified it (WorkOS or Entra ID)."""

from __future__ import annotations

from dataclasses import dataclass


class SignInRefused(Exception):
    """The provider's answer cannot sign anyone in; ``reason`` is a short code for the attempt log
    (``invalid_token``, ``wrong_tenant``, ``provider_error``...), the message says more."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class SignInProfile:
    provider: str  # "workos" or "entra"
    subject: str  # WorkOS profile id, or the Entra object id (oid)
    connection_id: str | None  # WorkOS connection id; the Entra tenant id for Entra
    organization_id: str | None  # WorkOS organization id (None for Entra)
    email: str | None
    first_name: str | None = None
    last_name: str | None = None
    role_slugs: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    # False when the provider left groups out (Entra's overage claim past 200 groups): use the groups
    # provisioning already knows.
    groups_complete: bool = True
    entra_tenant_id: str | None = None
    entra_object_id: str | None = None
