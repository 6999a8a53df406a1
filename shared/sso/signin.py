"""The sign-in flow, free of any transport: ``login``, ``callback`` and ``logout`` take a ``SignInRequest``
and answer a ``WebResponse`` (shared/sso/web.py).

Contract (tests/sso/test_signin.py):
- ``login`` (``GET /api/auth/login?tenant=SLUG | email=ADDR | org=ORG [&app=][&return_to=][&app_state=]``)
  finds the tenant (by slug, by the verified domain of the email, or by WorkOS organization), checks
  the app and the return path, creates a login state (shared/sso/states.py) bound to an HttpOnly,
  SameSite=Lax cookie (``__Host-`` and ``Secure`` when PUBLIC_BASE_URL is https) and redirects to
  WorkOS's authorization URL for the tenant's organization, or to the tenant's own Entra ID; an
  unknown or suspended tenant gets a clear page; a client over LOGIN_RATE_LIMIT_PER_MINUTE gets 429;
- ``callback`` consumes the state (exists, unexpired, unused, the cookie's), exchanges the code,
  requires the WorkOS profile's ``organization_id`` to be the tenant's (never the email domain) or
  the Entra token's ``tid`` to be the tenant's, admits the user by the tenant's authoritative channel
  (``scim``/``workos``: an active provisioned user; ``sso-jit``: created or updated from the profile),
  routes (shared/sso/routing.py) and hands over (a one-time code to ``instance`` and ``admin`` apps, a
  JWT to Thinkific). IdP-initiated logins (no state) are routed when the tenant allows them and
  otherwise restarted from ``login``. Error callbacks show a page with the tenant's support contact;
- every attempt, granted or refused, is recorded (shared/sso/attempts.py) with its reason.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import psycopg

from shared import config, db
from shared.identity.models import Actor, ActorKind, Channel, IdentityError, PersonClaims, User, UserStatus
from shared.sso import attempts, states
from shared.sso.profile import SignInProfile, SignInRefused
from shared.sso.routing import RoutingRefused, choose_app, safe_return_to
from shared.sso.web import (
    WebResponse,
    clear_login_cookie,
    login_cookie,
    login_cookie_name,
    page,
    read_cookie,
    redirect,
)
from shared.tenants.models import App, AppKind, SsoProvider, Tenant, TenantNotFound

log = logging.getLogger(__name__)

APP_STATE_PATTERN = re.compile(r"[\x21-\x7e]{1,512}")  # printable ASCII: it is echoed back verbatim
SIGNED_OUT = ("Signed out", "You are signed out.")


@dataclass(frozen=True)
class SignInRequest:
    params: dict[str, str]
    cookie_header: str | None
    client: str  # the caller's address
    origin: str  # https://host of this request (PUBLIC_BASE_URL wins when set)

    @property
    def secure(self) -> bool:
        return self.origin.startswith("https://")

    @property
    def callback_url(self) -> str:
        return f"{self.origin}/api/auth/callback"


class _Refusal(Exception):
    """A sign-in that ends on a page; recorded with its reason."""

    def __init__(self, status: int, reason: str, title: str, message: str, *, tenant: Tenant | None = None,
                 user_id: str | None = None, app_name: str | None = None,
                 profile: SignInProfile | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.title, self.message = status, reason, title, message
        self.tenant, self.user_id, self.app_name, self.profile = tenant, user_id, app_name, profile


def request_origin(url: str) -> str:
    """The public origin for links back to us: PUBLIC_BASE_URL, else the request's own."""
    configured = config.public_base_url()
    if configured:
        return configured
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# --- login -----------------------------------------------------------------------------------------


def _find_tenant(conn: psycopg.Connection, params: dict[str, str]) -> Tenant:
    from shared.tenants import registry

    if params.get("tenant"):
        return registry.get_tenant(conn, params["tenant"])
    if params.get("org"):
        tenant = registry.find_tenant_by_workos_organization(conn, params["org"])
    elif params.get("email"):
        domain = params["email"].rpartition("@")[2].strip().lower()
        tenant = None
        while domain and tenant is None:  # the domain or a parent domain the tenant verified
            tenant = registry.find_tenant_by_domain(conn, domain)
            domain = domain.partition(".")[2] if "." in domain.partition(".")[2] else ""
    else:
        raise _Refusal(400, "no_tenant", "Sign-in", "Open the sign-in link your organization gave you.")
    if tenant is None:
        raise TenantNotFound("no tenant for this sign-in")
    return tenant


def _login_options(conn: psycopg.Connection, tenant: Tenant, params: dict[str, str]) -> dict[str, str | None]:
    from shared.tenants.apps import AppNotFound, get_app

    app_name = params.get("app") or None
    if app_name:
        try:
            get_app(conn, tenant, app_name)
        except (AppNotFound, ValueError):
            raise _Refusal(400, "unknown_app", "Sign-in", f"There is no app {app_name!r} here.", tenant=tenant) \
                from None
    return_to = params.get("return_to") or None
    if return_to and safe_return_to(return_to) is None:
        raise _Refusal(400, "unsafe_return_to", "Sign-in", "The return address must be a path on the app.",
                       tenant=tenant)
    app_state = params.get("app_state") or None
    if app_state and not APP_STATE_PATTERN.fullmatch(app_state):
        raise _Refusal(400, "invalid_app_state", "Sign-in", "app_state must be 1-512 printable characters.",
                       tenant=tenant)
    email = params.get("email") or None
    return {"app": app_name, "return_to": return_to, "app_state": app_state,
            "login_hint": email if email and "@" in email else None}


def _check_pace(client: str) -> None:
    with db.transaction() as conn:  # a transaction of its own: refused hits count too
        if attempts.over_limit(conn, client):
            raise _Refusal(429, "rate_limited", "Too many attempts", "Too many sign-in attempts. Wait a minute.")


def login(request: SignInRequest) -> WebResponse:
    try:
        _check_pace(request.client)
        with db.transaction(all_tenants=True) as conn:
            try:
                tenant = _find_tenant(conn, request.params)
            except TenantNotFound:
                raise _Refusal(404, "unknown_tenant", "Unknown organization",
                               "We do not know this organization. Check the sign-in link you were given.") from None
            db.use_tenant(conn, tenant.id)
            if not tenant.is_active:
                raise _Refusal(403, "tenant_suspended", "Sign-in unavailable",
                               "Sign-in for your organization is switched off for now.", tenant=tenant)
            options = _login_options(conn, tenant, request.params)
            url, state, flow = _begin(tenant, request, options["login_hint"])
            states.create_state(conn, state, tenant.id, tenant.sso_provider.value, app_name=options["app"],
                                return_to=options["return_to"], app_state=options["app_state"],
                                login_hint=options["login_hint"], flow=flow)
    except _Refusal as refusal:
        return _refuse(request, refusal)
    max_age = int(states.STATE_LIFETIME.total_seconds())
    return redirect(url, cookies=(login_cookie(state, secure=request.secure, max_age=max_age),))


def _begin(tenant: Tenant, request: SignInRequest, login_hint: str | None) -> tuple[str, str, dict[str, Any]]:
    if tenant.sso_provider is SsoProvider.ENTRA:
        from shared.sso import entra

        state = secrets.token_urlsafe(32)
        try:
            url, flow = entra.begin(tenant, redirect_uri=request.callback_url, state=state, login_hint=login_hint)
        except SignInRefused as refused:
            log.warning("login: Entra ID unavailable for %s: %s", tenant.slug, refused)
            raise _Refusal(503, refused.reason, "Sign-in unavailable",
                           "Sign-in is unavailable right now. Try again in a moment.", tenant=tenant) from None
        return url, state, flow
    if not tenant.workos_organization_id:
        raise _Refusal(409, "sso_not_configured", "Sign-in not set up",
                       "Single sign-on is not set up for your organization yet.", tenant=tenant)
    from shared.sso import workos_sso
    from shared.workos_api import WorkOSUnavailable

    try:
        return workos_sso.begin(tenant.workos_organization_id, redirect_uri=request.callback_url,
                                login_hint=login_hint)
    except config.ConfigurationError as error:
        log.error("login: %s", error)  # names the setting; the page does not
        raise _Refusal(503, "not_configured", "Sign-in unavailable",
                       "Sign-in is not set up on this service yet.", tenant=tenant) from None
    except (WorkOSUnavailable, OSError) as error:
        log.warning("login: WorkOS unavailable: %s", error)
        raise _Refusal(503, "provider_unavailable", "Sign-in unavailable",
                       "Sign-in is unavailable right now. Try again in a moment.", tenant=tenant) from None


# --- callback --------------------------------------------------------------------------------------


def _error_callback(request: SignInRequest) -> WebResponse:
    """``?error=...`` from the IdP: a page with the tenant's support contact (the state says who)."""
    tenant = None
    cookie = read_cookie(request.cookie_header, login_cookie_name(request.secure))
    try:
        with db.transaction(all_tenants=True) as conn:
            state = states.consume_state(conn, request.params.get("state"), cookie)
            tenant = _tenant_by_id(conn, state.tenant_id)
    except (states.StateRejected, TenantNotFound):
        pass
    code = request.params.get("error", "")[:100]
    return _refuse(request, _Refusal(
        400, f"provider_error:{code}", "Sign-in did not complete",
        "Your organization's sign-in service did not let you in. Try again, or ask for access.", tenant=tenant))


def _tenant_or_none(tenant_id: str | None) -> Tenant | None:
    if tenant_id is None:
        return None
    with db.transaction(all_tenants=True) as conn:
        return _tenant_by_id(conn, tenant_id)


def _tenant_by_id(conn: psycopg.Connection, tenant_id: str) -> Tenant:
    from shared.tenants.registry import get_tenant_by_id

    return get_tenant_by_id(conn, tenant_id)


def callback(request: SignInRequest) -> WebResponse:
    params = request.params
    if params.get("error"):
        return _error_callback(request)
    try:
        _check_pace(request.client)
        if not params.get("state"):
            return _idp_initiated(request)
        try:
            with db.transaction(all_tenants=True) as conn:
                cookie = read_cookie(request.cookie_header, login_cookie_name(request.secure))
                state = states.consume_state(conn, params.get("state"), cookie)
                tenant = _tenant_by_id(conn, state.tenant_id)
        except states.StateRejected as rejected:
            raise _Refusal(400, rejected.reason, "Sign-in expired",
                           "This sign-in has expired or was already used. Start again from your app.",
                           tenant=_tenant_or_none(rejected.tenant_id)) from None
        if not tenant.is_active:
            raise _Refusal(403, "tenant_suspended", "Sign-in unavailable",
                           "Sign-in for your organization is switched off for now.", tenant=tenant)
        profile = _exchange(tenant, state, params)
        return _admit_and_hand_over(request, tenant, profile, state)
    except _Refusal as refusal:
        return _refuse(request, refusal)


def _exchange(tenant: Tenant, state: states.LoginState, params: dict[str, str]) -> SignInProfile:
    try:
        if state.provider == SsoProvider.ENTRA.value:
            from shared.sso import entra

            return entra.complete(tenant, state.flow, params)
        from shared.sso import workos_sso

        profile = workos_sso.complete(params.get("code"), state.flow)
    except SignInRefused as refused:
        raise _Refusal(400 if refused.reason != "wrong_tenant" else 403, refused.reason, "Sign-in did not complete",
                       "Your sign-in could not be verified. Start again.", tenant=tenant) from None
    if not tenant.workos_organization_id or profile.organization_id != tenant.workos_organization_id:
        raise _Refusal(403, "organization_mismatch", "Wrong organization",
                       "You signed in with an account of another organization.", tenant=tenant, profile=profile)
    return profile


def _idp_initiated(request: SignInRequest) -> WebResponse:
    """No state: a login the IdP started. WorkOS names the organization; the tenant decides."""
    from shared.sso import workos_sso
    from shared.tenants.registry import find_tenant_by_workos_organization

    try:
        profile = workos_sso.complete(request.params.get("code"), None)
    except SignInRefused:
        raise _Refusal(400, "idp_initiated_invalid", "Sign-in did not complete",
                       "This sign-in link is not valid. Start again from your app.") from None
    with db.transaction(all_tenants=True) as conn:
        tenant = find_tenant_by_workos_organization(conn, profile.organization_id or "")
    if tenant is None:
        raise _Refusal(404, "unknown_tenant", "Unknown organization", "We do not know your organization.",
                       profile=profile)
    if not tenant.allow_idp_initiated:
        # Restart as an SP-initiated login, which carries a state bound to this browser.
        return redirect(f"{request.origin}/api/auth/login?{urlencode({'org': tenant.workos_organization_id})}")
    if not tenant.is_active:
        raise _Refusal(403, "tenant_suspended", "Sign-in unavailable",
                       "Sign-in for your organization is switched off for now.", tenant=tenant)
    return _admit_and_hand_over(request, tenant, profile, None)


# --- who may enter, where they go --------------------------------------------------------------------


def _claims(tenant: Tenant, profile: SignInProfile) -> PersonClaims:
    entra = profile.provider == "entra"
    jit = tenant.provisioning_channel.value == "sso-jit"
    return PersonClaims(
        channel=Channel.ENTRA if entra else Channel.SSO, issuer=profile.connection_id or profile.provider,
        external_id=profile.subject, email=profile.email, given_name=profile.first_name,
        family_name=profile.last_name, entra_object_id=profile.entra_object_id,
        role_slugs=profile.role_slugs if jit else None, active=True if jit else None)


def _admit(conn: psycopg.Connection, tenant: Tenant, profile: SignInProfile) -> User:
    from shared.identity import store

    try:
        user = store.sync_person(conn, tenant, _claims(tenant, profile), _actor(profile)).user
    except IdentityError as error:
        raise _Refusal(403, f"not_admitted:{type(error).__name__}", "No access",
                       "Your account has no access here. Ask your administrator.", tenant=tenant,
                       profile=profile) from None
    if user.status is not UserStatus.ACTIVE:
        raise _Refusal(403, f"user_{user.status.value}", "No access",
                       "Your account is not active here. Ask your administrator.", tenant=tenant,
                       user_id=user.id, profile=profile)
    return user


def _actor(profile: SignInProfile) -> Actor:
    return Actor(ActorKind.SSO, f"{profile.provider}:{profile.connection_id or '-'}")


def _groups(conn: psycopg.Connection, tenant: Tenant, user: User, profile: SignInProfile) -> set[str]:
    from shared.identity import store

    groups = set(profile.groups)
    if not profile.groups_complete or not groups:  # what provisioning knows fills the gap
        groups |= {row["display_name"] for row in store.user_group_names(conn, tenant, user.id)}
    return groups


def _admit_and_hand_over(request: SignInRequest, tenant: Tenant, profile: SignInProfile,
                         state: states.LoginState | None) -> WebResponse:
    from shared.tenants.apps import list_apps

    with db.transaction(tenant_id=tenant.id) as conn:
        user = _admit(conn, tenant, profile)
        roles = set(profile.role_slugs) or set(user.role_slugs)
        groups = _groups(conn, tenant, user, profile)
        apps = {app.name: app for app in list_apps(conn, tenant)}
        requested = state.app_name if state else None
        try:
            app = choose_app(tenant.routing, apps, roles, groups, requested)
        except RoutingRefused as refused:
            raise _Refusal(403, refused.reason, "No access", str(refused).capitalize() + ".", tenant=tenant,
                           user_id=user.id, app_name=requested, profile=profile) from None
        return_to = state.return_to if state else None
        location = _hand_over(conn, request, tenant, app, user, sorted(roles), sorted(groups), state, return_to)
        attempts.record(conn, outcome="granted", reason="signed_in", client=request.client, tenant_id=tenant.id,
                        user_id=user.id, provider=profile.provider, connection_id=profile.connection_id,
                        app_name=app.name)
    return redirect(location, cookies=(clear_login_cookie(secure=request.secure),))


def _hand_over(conn: psycopg.Connection, request: SignInRequest, tenant: Tenant, app: App, user: User,
               roles: list[str], groups: list[str], state: states.LoginState | None, return_to: str | None) -> str:
    if app.kind is AppKind.THINKIFIC:
        from shared.sso.thinkific import ThinkificNotConfigured, sso_url

        try:
            return sso_url(app, user, return_to=return_to, error_url=app.post_logout_url or app.base_url)
        except ThinkificNotConfigured as error:
            log.error("sign-in: %s", error)
            raise _Refusal(503, "thinkific_not_configured", "Sign-in unavailable",
                           "The school is not set up for sign-in yet.", tenant=tenant, user_id=user.id,
                           app_name=app.name) from None
    from shared.sso.handoff import issue_code

    claims = {
        "user": {"id": user.id, "email": user.primary_email, "given_name": user.given_name,
                 "family_name": user.family_name, "display_name": user.display_name, "roles": roles,
                 "groups": groups},
        "tenant": {"id": tenant.id, "slug": tenant.slug}, "app": app.name,
        "app_state": state.app_state if state else None, "return_to": return_to,
    }
    code = issue_code(conn, app, user.id, claims)
    return f"{app.handover_url}?{urlencode({'code': code})}"


# --- refusals and logout -----------------------------------------------------------------------------


def _refuse(request: SignInRequest, refusal: _Refusal) -> WebResponse:
    tenant = refusal.tenant
    profile = refusal.profile
    try:
        with db.transaction(all_tenants=True) as conn:
            attempts.record(conn, outcome="refused", reason=refusal.reason, client=request.client,
                            tenant_id=tenant.id if tenant else None, user_id=refusal.user_id,
                            provider=profile.provider if profile else None,
                            connection_id=profile.connection_id if profile else None, app_name=refusal.app_name)
    except psycopg.Error:
        log.exception("sign-in: the refused attempt could not be recorded")
    contact = tenant.support_contact if tenant else None
    return page(refusal.status, refusal.title, refusal.message, contact=contact,
                cookies=(clear_login_cookie(secure=request.secure),))


def logout(request: SignInRequest) -> WebResponse:
    """Clear our cookie and go to the app's post-logout URL (``tenant`` and ``app`` name it)."""
    from shared.tenants.apps import AppNotFound, get_app
    from shared.tenants.registry import get_tenant

    cookies = (clear_login_cookie(secure=request.secure),)
    slug, app_name = request.params.get("tenant"), request.params.get("app")
    if slug and app_name:
        try:
            with db.transaction() as conn:
                tenant = get_tenant(conn, slug)
                db.use_tenant(conn, tenant.id)
                app = get_app(conn, tenant, app_name)
            if app.post_logout_url:
                return redirect(app.post_logout_url, cookies=cookies)
        except (TenantNotFound, AppNotFound, ValueError):
            pass
    return page(200, *SIGNED_OUT, cookies=cookies)
