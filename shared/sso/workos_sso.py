"""Sign-in through WorkOS SSO with the SDK: the authorization URL (with PKCE) and the code exchange.

Contract (tests/sso/test_signin.py): ``begin`` asks the SDK for the organization's authorization URL
with PKCE and returns it with the state the SDK generated (256 random bits: our login state) and the
verifier to keep server-side; ``complete`` exchanges the code (with the verifier, or without one for
an IdP-initiated login) and maps the profile; any refusal or malformed answer from WorkOS is a
``SignInRefused`` (``provider_error``), never an exception page.
"""

from __future__ import annotations

from typing import Any

from shared.sso.profile import SignInProfile, SignInRefused


def begin(organization_id: str, *, redirect_uri: str, login_hint: str | None) -> tuple[str, str, dict[str, Any]]:
    """(authorization URL, state, flow to keep)."""
    from shared import config
    from shared.workos_api import client

    config.WORKOS_CLIENT_ID.required()  # SSO needs it (the Events API does not): name it, not a 500

    started = client().sso.get_authorization_url_with_pkce(
        redirect_uri=redirect_uri, organization=organization_id, login_hint=login_hint)
    return started["url"], started["state"], {"code_verifier": started["code_verifier"]}


def complete(code: str | None, flow: dict[str, Any] | None) -> SignInProfile:
    from workos import WorkOSError

    from shared.workos_api import client

    if not code:
        raise SignInRefused("provider_error", "the callback carries no code")
    try:
        sso = client().sso
        verifier = (flow or {}).get("code_verifier")
        answer = sso.get_profile_and_token_pkce(code=code, code_verifier=verifier) if verifier else \
            sso.get_profile_and_token(code=code)
    except (WorkOSError, OSError) as error:
        raise SignInRefused("provider_error", f"WorkOS refused the code: {type(error).__name__}") from error
    profile = answer.profile
    roles = [role.slug for role in (getattr(profile, "roles", None) or [])]
    role = getattr(profile, "role", None)
    if not roles and role is not None:
        roles = [role.slug]
    return SignInProfile(
        provider="workos", subject=profile.id, connection_id=profile.connection_id,
        organization_id=profile.organization_id, email=profile.email, first_name=profile.first_name,
        last_name=profile.last_name, role_slugs=tuple(roles), groups=tuple(getattr(profile, "groups", None) or ()))
