"""Direct sign-in against a tenant's own Microsoft Entra ID: the authorization code flow with PKCE, through MSAL.

Contract (tests/sso/test_entra.py):
- ``begin(tenant, redirect_uri=, state=, login_hint=)`` returns the authorization URL to send the browser to and
  the flow to keep server-side with the login state. The flow is MSAL's dict (PKCE verifier, nonce, state,
  redirect URI, scopes, the authorization URL) and is plain JSON: it is stored in Postgres as JSONB and handed
  back to ``complete`` as it came out.
- ``complete(tenant, flow, response)`` takes the callback's query parameters and returns a ``SignInProfile``, or
  raises ``SignInRefused`` with a short reason: ``state_mismatch`` (the callback is not this sign-in's),
  ``provider_error`` (Entra answered an error: the user cancelled, consent is missing, our secret was refused...),
  ``invalid_response`` (neither code nor error, or a malformed answer), ``invalid_token`` (the ID token fails a
  check), ``wrong_tenant`` (a valid token of another Entra tenant), ``provider_unavailable`` (Entra could not be
  reached or its discovery failed; ``begin`` raises this one too).
- MSAL does not validate the ID token (since 1.38 it only decodes it; it compares the nonce), so this module
  does: RS256 signature against the tenant's JWKS (``{host}/{tid}/discovery/v2.0/keys``, one cached PyJWKClient
  per URL), ``aud`` = the tenant's client id, not expired (two minutes of clock skew), ``tid`` = the tenant's
  Entra tenant id, ``iss`` = ``{host}/{tid}/v2.0``, and ``nonce`` = the nonce the authorization request carried.
- One ``ConfidentialClientApplication`` per (Entra tenant id, client id, authority) per process, built on first
  use (thread-safe, once) and rebuilt only when the client secret resolved from ``tenant-{slug}-entra`` changes
  (a rotation). Its token cache keeps nothing: sign-in needs the ID token once, and a process-wide cache would
  hold every user's tokens. ``offline_access`` is not requested, so Entra issues no refresh token.
- The authority host is ``ENTRA_AUTHORITY_HOST``; for login.microsoftonline.com MSAL keeps its defaults, for any
  other host (the local stand-in) instance discovery is off, since Microsoft's discovery would refuse it.
- Configuration mistakes are not refusals: a tenant without Entra ids raises ValueError, a missing secret
  ``SecretNotFound``. No secret, code, verifier or token reaches a log or a message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import msal
from msal.exceptions import MsalServiceError

from shared import config
from shared.secrets import resolve_secret
from shared.sso.profile import SignInProfile, SignInRefused
from shared.tenants.models import Tenant

CLIENT_SECRET_REFERENCE = "tenant-{slug}-entra"  # noqa: S105 - the Key Vault name of the app registration secret
MICROSOFT_AUTHORITY_HOST = "login.microsoftonline.com"
SCOPES: tuple[str, ...] = ()  # MSAL adds openid and profile: the ID token is all sign-in needs
CLOCK_SKEW_SECONDS = 120
HTTP_TIMEOUT = (5.0, 30.0)  # connect, read: the house policy for outbound calls
JWKS_TIMEOUT_SECONDS = 10.0
JWKS_LIFESPAN_SECONDS = 3600.0  # an unknown kid refreshes sooner (Entra's key rollover)

_FORM_POST_ADVICE = "response_mode='form_post' is recommended"


class _DiscardingTokenCache(msal.TokenCache):
    """Keeps no token: the application is shared by every sign-in of a tenant and none needs a token later."""

    def add(self, event: dict, now: Any = None) -> None:
        return None


@dataclass
class _Cached:
    application: msal.ConfidentialClientApplication
    secret_digest: bytes


_lock = threading.Lock()
_applications: dict[tuple[str, str, str], _Cached] = {}
_build_locks: dict[tuple[str, str, str], threading.Lock] = {}
_jwks_clients: dict[str, jwt.PyJWKClient] = {}


def _entra_ids(tenant: Tenant) -> tuple[str, str]:
    if not tenant.entra_tenant_id or not tenant.entra_client_id:
        raise ValueError(f"tenant {tenant.slug!r} has no Entra tenant id and client id: it cannot sign in with Entra")
    return tenant.entra_tenant_id.lower(), tenant.entra_client_id.lower()


def _authority_host() -> str:
    return config.entra_authority_host().rstrip("/")


def _application(tenant: Tenant) -> msal.ConfidentialClientApplication:
    """The tenant's MSAL application, built once per process (and again after a secret rotation)."""
    tid, client_id = _entra_ids(tenant)
    host = _authority_host()
    authority = f"{host}/{tid}"
    secret = resolve_secret(CLIENT_SECRET_REFERENCE.format(slug=tenant.slug))
    digest = hashlib.sha256(secret.encode()).digest()
    key = (tid, client_id, authority)
    with _lock:
        cached = _applications.get(key)
        if cached is not None and cached.secret_digest == digest:
            return cached.application
        build_lock = _build_locks.setdefault(key, threading.Lock())
    # Building runs tenant discovery over the network: hold this key's lock only, not every tenant's.
    with build_lock:
        with _lock:
            cached = _applications.get(key)
        if cached is not None and cached.secret_digest == digest:
            return cached.application
        try:
            application = msal.ConfidentialClientApplication(
                client_id=client_id,
                client_credential=secret,
                authority=authority,
                # None keeps MSAL's default; another host (the stand-in) would fail Microsoft's instance discovery.
                instance_discovery=None if urlsplit(host).hostname == MICROSOFT_AUTHORITY_HOST else False,
                token_cache=_DiscardingTokenCache(),
                exclude_scopes=["offline_access"],
                timeout=HTTP_TIMEOUT,
            )
        except (OSError, MsalServiceError) as error:
            raise SignInRefused("provider_unavailable", f"Entra ID tenant {tid} could not be reached "
                                f"({type(error).__name__})") from None
        except ValueError:
            # MSAL's message quotes the discovery answer; the tenant id says enough.
            raise SignInRefused("provider_unavailable", f"Entra ID tenant {tid} did not answer OpenID discovery "
                                "(is the tenant id right?)") from None
        with _lock:
            _applications[key] = _Cached(application, digest)
        return application


def _jwks_client(url: str) -> jwt.PyJWKClient:
    with _lock:
        client = _jwks_clients.get(url)
        if client is None:
            client = _jwks_clients[url] = jwt.PyJWKClient(
                url, cache_jwk_set=True, lifespan=JWKS_LIFESPAN_SECONDS, timeout=JWKS_TIMEOUT_SECONDS)
        return client


def _quiet_form_post_advice() -> None:
    """Silence MSAL's advice to use form_post, given on every flow it starts: the callback reads the answer from
    its query (a GET), and with PKCE and a confidential client a code leaked from a URL cannot be redeemed.
    Installed on use, once: filters added while a module is imported inside catch_warnings (pytest's collection)
    would be dropped."""
    if not any(entry[1] is not None and entry[1].pattern == _FORM_POST_ADVICE for entry in warnings.filters):
        warnings.filterwarnings("ignore", message=_FORM_POST_ADVICE, category=UserWarning, module=r"msal\.")


def reset() -> None:
    """Forget every cached application and JWKS client (tests; a changed authority host)."""
    with _lock:
        _applications.clear()
        _build_locks.clear()
        _jwks_clients.clear()


def begin(tenant: Tenant, *, redirect_uri: str, state: str, login_hint: str | None = None) -> tuple[str, dict]:
    """(the authorization URL to redirect the browser to, the flow to keep server-side with the login state)"""
    if not state:
        raise ValueError("begin needs the login state: MSAL would otherwise invent one the caller does not know")
    application = _application(tenant)
    _quiet_form_post_advice()
    flow = application.initiate_auth_code_flow(
        scopes=SCOPES, redirect_uri=redirect_uri, state=state, login_hint=login_hint or None)
    # Exactly what Postgres will hand back: a value JSON cannot carry fails here, not at the callback.
    flow = json.loads(json.dumps(flow))
    return flow["auth_uri"], flow


def complete(tenant: Tenant, flow: dict, response: Mapping[str, str]) -> SignInProfile:
    """response: the callback's query parameters (code, state, or error/error_description). Raises SignInRefused."""
    tid, client_id = _entra_ids(tenant)
    expected_state, state = flow.get("state"), response.get("state")
    if not (isinstance(expected_state, str) and isinstance(state, str) and expected_state
            and hmac.compare_digest(expected_state.encode(), state.encode())):
        raise SignInRefused("state_mismatch", "the callback's state does not belong to this sign-in")
    if response.get("error"):
        # Answered before MSAL is even built: a cancelled sign-in needs no discovery.
        raise SignInRefused("provider_error", _describe_error(response))
    if not response.get("code"):
        raise SignInRefused("invalid_response", "the callback carries neither a code nor an error")
    application = _application(tenant)
    try:
        # A copy: MSAL pops claims_challenge from the flow it is given.
        result = application.acquire_token_by_auth_code_flow(dict(flow), dict(response))
    except (OSError, MsalServiceError) as error:
        raise SignInRefused("provider_unavailable", f"Entra ID's token endpoint could not be reached "
                            f"({type(error).__name__})") from None
    except RuntimeError:  # MSAL's own nonce comparison (oidc.py); its message quotes the token
        raise SignInRefused("invalid_token", "the ID token's nonce is not this sign-in's") from None
    except (ValueError, LookupError, TypeError):  # a malformed flow, callback or token answer
        raise SignInRefused("invalid_response", "the callback or Entra ID's token answer is malformed") from None
    if "error" in result:
        raise SignInRefused("provider_error", _describe_error(result))
    id_token = result.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise SignInRefused("invalid_token", "Entra ID's token answer has no ID token")
    claims = _verified_claims(id_token, tid=tid, client_id=client_id, nonce=_sent_nonce(flow))
    return _profile(claims, tid)


def _describe_error(answer: Mapping[str, Any]) -> str:
    """``error: first line of error_description`` (Entra appends trace and correlation ids on further lines)."""
    error = str(answer.get("error") or "error")[:100]
    description = str(answer.get("error_description") or "").strip().splitlines()
    return f"Entra ID answered {error}: {description[0][:300]}" if description else f"Entra ID answered {error}"


def _sent_nonce(flow: Mapping[str, Any]) -> str | None:
    """The nonce the authorization request carried (MSAL sends a hash of the one it keeps in the flow)."""
    auth_uri = flow.get("auth_uri")
    if not isinstance(auth_uri, str):
        return None
    values = parse_qs(urlsplit(auth_uri).query).get("nonce")
    return values[0] if values else None


def _verified_claims(id_token: str, *, tid: str, client_id: str, nonce: str | None) -> dict[str, Any]:
    host = _authority_host()
    try:
        key = _jwks_client(f"{host}/{tid}/discovery/v2.0/keys").get_signing_key_from_jwt(id_token)
        claims = jwt.decode(
            id_token, key.key, algorithms=["RS256"], audience=client_id, leeway=CLOCK_SKEW_SECONDS,
            # The issuer is compared below, after tid: a token of another tenant is named as such.
            options={"require": ["iss", "aud", "exp", "iat"], "verify_iss": False})
    except jwt.PyJWKClientConnectionError:
        raise SignInRefused("provider_unavailable", f"Entra ID tenant {tid}'s signing keys could not be "
                            "fetched") from None
    except jwt.PyJWTError as error:
        raise SignInRefused("invalid_token", f"the ID token is not valid: {error}") from None
    token_tid = str(claims.get("tid") or "").lower()
    if token_tid != tid:
        raise SignInRefused("wrong_tenant", f"the ID token was issued for Entra tenant {token_tid[:64] or '(none)'}, "
                            f"not this tenant's {tid}")
    if claims.get("iss") != f"{host}/{tid}/v2.0":
        raise SignInRefused("invalid_token", "the ID token's issuer is not the tenant's Entra ID")
    token_nonce = claims.get("nonce")
    if not nonce or not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce.encode(), nonce.encode()):
        raise SignInRefused("invalid_token", "the ID token's nonce is not this sign-in's")
    if not isinstance(claims.get("oid"), str) or not claims["oid"]:
        raise SignInRefused("invalid_token", "the ID token has no object id (oid)")
    return claims


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _looks_like_email(value: str | None) -> bool:
    if not value or value.count("@") != 1 or any(character.isspace() for character in value):
        return False
    local, domain = value.split("@")
    return bool(local) and "." in domain.strip(".")


def _profile(claims: Mapping[str, Any], tid: str) -> SignInProfile:
    email = _text(claims.get("email"))
    if email is None:
        username = _text(claims.get("preferred_username"))
        email = username if _looks_like_email(username) else None
    claim_names = claims.get("_claim_names")
    overage = (isinstance(claim_names, dict) and "groups" in claim_names) or bool(claims.get("hasgroups"))
    oid = str(claims["oid"]).lower()
    return SignInProfile(
        provider="entra",
        subject=oid,
        connection_id=tid,
        organization_id=None,
        email=email,
        first_name=_text(claims.get("given_name")),
        last_name=_text(claims.get("family_name")),
        role_slugs=_strings(claims.get("roles")),
        groups=() if overage else _strings(claims.get("groups")),
        groups_complete=not overage,
        entra_tenant_id=tid,
        entra_object_id=oid,
    )
