"""The bot's identity, both ways: channel tokens checked on /api/messages, and the bot's own tokens for
the Bot connector. botbuilder's validation does the checking; this module sets it up and closes its gaps.

Contract (tests/teams/test_auth.py):
- ``authenticate(activity, authorization)`` accepts only a Bot Framework channel token: RS256 from the keys
  at ``BOT_OPENID_METADATA_URL``, issuer ``https://api.botframework.com``, ``aud`` = ``MicrosoftAppId``,
  not expired (5 minutes of skew), ``serviceurl`` = the activity's ``serviceUrl``, and a signing key that
  endorses the activity's channel. Every failure, whatever botbuilder raises, is ``Unauthorized``; emulator
  and skill tokens are refused (this bot is neither), and so is an activity without a service URL;
- an empty ``MicrosoftAppId`` raises ``ConfigurationError`` (never anonymous access);
- the OpenID metadata and keys are fetched off the event loop with timeouts, kept a day, and fetched again
  (at most every 5 minutes) when a token names a key id they do not hold: a key rotation is picked up at
  once instead of after botbuilder's daily refresh;
- credentials for outgoing calls are built once per process and (app id, scope); their token comes from
  MSAL's cache until shortly before it expires, refreshed off the event loop by ``prepare_token()``;
- connector clients are built once per (event loop, service URL, audience) and shared by every turn and
  send (building one costs milliseconds in msrest); no user-token client is built (the bot has no OAuth
  sign-in).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import jwt
from botbuilder.schema import Activity
from botframework.connector.auth import (
    AppCredentials,
    AuthenticationConfiguration,
    AuthenticationConstants,
    BotFrameworkAuthentication,
    BotFrameworkAuthenticationFactory,
    ConnectorFactory,
    ServiceClientCredentialsFactory,
    SkillValidation,
)
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor

from shared import config

if TYPE_CHECKING:
    from botframework.connector.auth import AuthenticateRequestResult

log = logging.getLogger(__name__)

CHANNEL_ISSUER = "https://api.botframework.com"
CONNECTOR_SCOPE = "https://api.botframework.com"
METADATA_LIFETIME_SECONDS = 24 * 3600
UNKNOWN_KEY_REFRESH_SECONDS = 300
METADATA_TIMEOUT_SECONDS = 5.0
TOKEN_REFRESH_MARGIN_SECONDS = 300
USER_AGENT = "EnterpriseConnections (Teams bot)"


class Unauthorized(Exception):
    """The request does not carry a valid channel token for this bot; the reason is for the log only."""


# --- channel -> bot: the signing keys, fetched off the event loop ---------------------------------------------


class _Key:
    def __init__(self, public_key: Any, endorsements: list[str]) -> None:
        self.public_key = public_key
        self.endorsements = endorsements


class OffLoopOpenIdMetadata:
    """Stands in for botbuilder's ``_OpenIdMetadata`` (same ``get(kid)``), whose refresh calls blocking
    ``requests`` without a timeout on the event loop and raises IndexError for an unknown key id."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._keys: dict[str, _Key] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    def _fetch(self) -> dict[str, _Key]:
        with httpx.Client(timeout=METADATA_TIMEOUT_SECONDS, follow_redirects=False) as client:
            metadata = client.get(self.url)
            metadata.raise_for_status()
            keys = client.get(metadata.json()["jwks_uri"])
            keys.raise_for_status()
        found = {}
        for jwk in keys.json().get("keys", []):
            # botbuilder skips the endorsement check for a key that lists none: such a key signs nothing here.
            if jwk.get("kty") == "RSA" and jwk.get("kid") and jwk.get("endorsements"):
                public_key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
                found[jwk["kid"]] = _Key(public_key, list(jwk.get("endorsements") or []))
        return found

    async def _refresh(self) -> None:
        async with self._lock:
            self._keys = await asyncio.to_thread(self._fetch)
            self._fetched_at = time.monotonic()

    async def get(self, key_id: str | None) -> _Key:
        age = time.monotonic() - self._fetched_at
        if age > METADATA_LIFETIME_SECONDS or (key_id not in self._keys and age > UNKNOWN_KEY_REFRESH_SECONDS):
            await self._refresh()
        key = self._keys.get(key_id or "")
        if key is None:
            raise Unauthorized("the token's signing key is not published")
        return key


_metadata_lock = threading.Lock()


def _install_metadata(url: str) -> None:
    """Put our metadata object where botbuilder's extractor looks it up (a process-wide dict)."""
    with _metadata_lock:
        if not isinstance(JwtTokenExtractor.metadataCache.get(url), OffLoopOpenIdMetadata):
            JwtTokenExtractor.metadataCache[url] = OffLoopOpenIdMetadata(url)


# --- bot -> connector: credentials built once ------------------------------------------------------------------


class BotCredentials(AppCredentials):
    """The bot's client credentials for one scope: an MSAL application built once, tokens from its cache."""

    def __init__(self, settings: config.BotSettings, oauth_scope: str) -> None:
        super().__init__(app_id=settings.app_id, channel_auth_tenant=settings.tenant_id, oauth_scope=oauth_scope)
        self.settings = settings
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._application: Any = None

    def _msal(self) -> Any:
        if self._application is None:
            import msal

            host = self.settings.authority_host.rstrip("/")
            if self.settings.app_type == "UserAssignedMSI":
                self._application = msal.ManagedIdentityClient(
                    msal.UserAssignedManagedIdentity(client_id=self.settings.app_id), http_client=_requests_session(),
                    token_cache=msal.TokenCache())
            else:
                self._application = msal.ConfidentialClientApplication(
                    client_id=self.settings.app_id,
                    client_credential=self.settings.password,
                    authority=f"{host}/{self.settings.tenant_id}",
                    instance_discovery=None if urlsplit(host).hostname == "login.microsoftonline.com" else False,
                    timeout=10,
                )
        return self._application

    def _acquire(self) -> None:
        scope = self.oauth_scope if self.oauth_scope.endswith("/.default") else self.oauth_scope + "/.default"
        if self.settings.app_type == "UserAssignedMSI":
            answer = self._msal().acquire_token_for_client(resource=self.oauth_scope)
        else:
            answer = self._msal().acquire_token_for_client(scopes=[scope])
        if "access_token" not in answer:
            # MSAL's error and its description name the cause (AADSTS codes), never the secret.
            raise PermissionError(f"the bot could not get a token: {answer.get('error')}: "
                                  f"{answer.get('error_description', '')[:300]}")
        self._token = answer["access_token"]
        self._expires_at = time.time() + float(answer.get("expires_in", 3599))

    def _fresh(self) -> bool:
        return self._token is not None and time.time() < self._expires_at - TOKEN_REFRESH_MARGIN_SECONDS

    def get_access_token(self, force_refresh: bool = False) -> str:
        """The cached token (botbuilder calls this on the event loop: ``prepare_token`` fills it first)."""
        with self._lock:
            if force_refresh or not self._fresh():
                self._acquire()
            assert self._token is not None
            return self._token

    async def prepare_token(self) -> None:
        if not self._fresh():
            await asyncio.to_thread(self.get_access_token)


def _requests_session() -> Any:
    import requests

    return requests.Session()


class CachedCredentialsFactory(ServiceClientCredentialsFactory):
    """One BotCredentials per scope for the configured bot; botbuilder's own factory builds a new MSAL
    application, and fetches a new token, on every turn."""

    def __init__(self, settings: config.BotSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._credentials: dict[str, BotCredentials] = {}

    async def is_valid_app_id(self, app_id: str) -> bool:
        return app_id == self.settings.app_id

    async def is_authentication_disabled(self) -> bool:
        return False  # an empty app id never gets this far: config.bot() refuses it

    def credentials(self, oauth_scope: str | None = None) -> BotCredentials:
        scope = oauth_scope or CONNECTOR_SCOPE
        with self._lock:
            credentials = self._credentials.get(scope)
            if credentials is None:
                credentials = self._credentials[scope] = BotCredentials(self.settings, scope)
            return credentials

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str,
                                 validate_authority: bool) -> BotCredentials:
        if app_id != self.settings.app_id:
            raise PermissionError("credentials asked for another app id")
        credentials = self.credentials(oauth_scope)
        await credentials.prepare_token()
        return credentials


# --- connector clients, once per event loop, service URL and audience -----------------------------------------


class SharedConnectorClients(ConnectorFactory):
    """botbuilder's factory builds a new ConnectorClient (and msrest configuration) for every turn and send."""

    def __init__(self, credentials_factory: CachedCredentialsFactory) -> None:
        self.credentials_factory = credentials_factory
        self._clients: dict[tuple[Any, str, str], Any] = {}

    async def create(self, service_url: str, audience: str | None = None) -> Any:
        from botframework.connector.aio import ConnectorClient

        scope = audience or CONNECTOR_SCOPE
        credentials = self.credentials_factory.credentials(scope)
        await credentials.prepare_token()
        loop = asyncio.get_running_loop()
        key = (loop, service_url, scope)
        client = self._clients.get(key)
        if client is None:
            for stale in [known for known in self._clients if known[0].is_closed()]:
                del self._clients[stale]
            client = self._clients[key] = ConnectorClient(credentials, base_url=service_url)
            client.config.add_user_agent(USER_AGENT)
        return client


class _Authentication(BotFrameworkAuthentication):
    """botbuilder's parameterized authentication, with shared connector clients and no user-token client."""

    def __init__(self, inner: BotFrameworkAuthentication, clients: SharedConnectorClients) -> None:
        self.inner = inner
        self.clients = clients

    async def authenticate_request(self, activity: Activity, auth_header: str) -> AuthenticateRequestResult:
        result = await self.inner.authenticate_request(activity, auth_header)
        result.connector_factory = self.clients
        return result

    async def authenticate_streaming_request(self, auth_header: str, channel_id_header: str) -> Any:
        raise PermissionError("streaming requests are not accepted")

    def create_connector_factory(self, claims_identity: Any) -> ConnectorFactory:
        return self.clients

    async def create_user_token_client(self, claims_identity: Any) -> None:
        return None

    def get_originating_audience(self) -> str:
        return self.inner.get_originating_audience()


# --- the authentication object, once per process -------------------------------------------------------------


async def _refuse_skills(claims: list[dict[str, Any]]) -> None:
    for claim_set in claims:
        if SkillValidation.is_skill_claim(claim_set):
            raise PermissionError("skill calls are not accepted: this bot is not a skill")


class BotIdentity:
    def __init__(self, settings: config.BotSettings) -> None:
        self.settings = settings
        self.credentials_factory = CachedCredentialsFactory(settings)
        _install_metadata(settings.openid_metadata_url)
        parameterized = BotFrameworkAuthenticationFactory.create(
            to_channel_from_bot_login_url=f"{settings.authority_host.rstrip('/')}/{settings.tenant_id or ''}",
            to_channel_from_bot_oauth_scope=CONNECTOR_SCOPE,
            to_bot_from_channel_token_issuer=CHANNEL_ISSUER,
            oauth_url=AuthenticationConstants.OAUTH_URL,
            to_bot_from_channel_open_id_metadata_url=settings.openid_metadata_url,
            # Emulator tokens are refused before validation (authenticate checks the issuer first).
            to_bot_from_emulator_open_id_metadata_url=settings.openid_metadata_url,
            caller_id=None,
            credential_factory=self.credentials_factory,
            auth_configuration=AuthenticationConfiguration(claims_validator=_refuse_skills),
        )
        self.authentication: BotFrameworkAuthentication = _Authentication(
            parameterized, SharedConnectorClients(self.credentials_factory))

    async def authenticate(self, activity: Activity, authorization: str | None) -> AuthenticateRequestResult:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme != "Bearer" or not token.strip():
            raise Unauthorized("no Bearer token")
        if not activity.service_url or not activity.channel_id:
            raise Unauthorized("the activity names no service URL or channel")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthorized("the token is not a JWT") from None
        if unverified.get("iss") != CHANNEL_ISSUER:
            raise Unauthorized("the token is not from the Bot Framework channel")
        try:
            return await self.authentication.authenticate_request(activity, authorization)
        except Unauthorized:
            raise
        except Exception as error:  # botbuilder raises anything from PermissionError to IndexError
            raise Unauthorized(f"{type(error).__name__}: {str(error)[:200]}") from None


_identity: BotIdentity | None = None
_identity_lock = threading.Lock()


def identity() -> BotIdentity:
    """The process's bot identity, built on first use from the settings (ConfigurationError when incomplete)."""
    global _identity
    with _identity_lock:
        if _identity is None:
            _identity = BotIdentity(config.bot())
        return _identity


def reset() -> None:
    """Forget the identity and the cached keys (tests; a changed configuration)."""
    global _identity
    with _identity_lock:
        _identity = None
        for url, metadata in list(JwtTokenExtractor.metadataCache.items()):
            if isinstance(metadata, OffLoopOpenIdMetadata):
                del JwtTokenExtractor.metadataCache[url]
