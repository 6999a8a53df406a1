"""The hand-over to a Thinkific school: its SSO endpoint with a JWT signed with the school's API key.

Contract (tests/sso/test_thinkific.py): ``sso_url`` answers
``{school}/api/sso/v2/sso/jwt?jwt=...&return_to=...&error_url=...`` where the JWT is HS256, signed
with the API key behind the app's ``api-key`` outbound secret reference, and carries ``first_name``,
``last_name``, ``email``, ``external_id`` (our stable user id) and ``iat``.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

from shared.identity.models import User
from shared.tenants.models import App

API_KEY_REFERENCE = "api-key"  # the name of the app's outbound secret reference holding the API key


class ThinkificNotConfigured(Exception):
    pass


def sso_url(app: App, user: User, *, return_to: str | None, error_url: str) -> str:
    import jwt

    from shared.secrets import resolve_secret

    reference = app.outbound_secret_refs.get(API_KEY_REFERENCE)
    if not reference:
        raise ThinkificNotConfigured(f"app {app.name!r} has no {API_KEY_REFERENCE!r} secret reference")
    token = jwt.encode({
        "first_name": user.given_name or "", "last_name": user.family_name or "", "email": user.primary_email or "",
        "external_id": user.id, "iat": int(time.time()),
    }, resolve_secret(reference), algorithm="HS256")
    query = {"jwt": token, "error_url": error_url}
    if return_to:
        query["return_to"] = app.base_url.rstrip("/") + return_to
    return f"{app.base_url.rstrip('/')}/api/sso/v2/sso/jwt?{urlencode(query)}"
