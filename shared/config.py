"""Settings: every value the app reads from its environment, declared once, typed, read on first use.

Contract (each item has a test in tests/shared/test_config.py):
- every setting the code reads is declared here (``SETTINGS``) and nothing else reads ``os.environ``;
  each one also appears in ``local.settings.sample.json`` and in the Bicep;
- importing this module reads nothing: a missing or malformed setting raises ``ConfigurationError``
  naming it when it is first used, never at import time;
- an empty value counts as unset (``local.settings.json`` and app settings write empty strings);
- settings that come in alternatives are read together and their mix-ups named: the database is
  ``DATABASE_URL`` or ``POSTGRES_HOST``/``POSTGRES_PORT``/``POSTGRES_DATABASE``/``POSTGRES_USER`` (Entra
  token); storage is ``AzureWebJobsStorage`` or its identity-based ``AzureWebJobsStorage__*`` form;
- a group is parsed once per process and cached; ``reset()`` forgets the cache (tests);
- the value of a secret setting never appears in an error message;
- an app setting still holding its ``@Microsoft.KeyVault(...)`` reference (the platform could not resolve
  it) is a ConfigurationError naming the setting, never taken for the value.

Function decorators name queues and schedules as ``%SETTING%`` expressions that the Functions host
resolves, so indexing the app never imports this module.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


class ConfigurationError(RuntimeError):
    """A setting is missing, malformed, or contradicts another; the message names it."""


# --- parsers: raise ValueError with a reason that does not repeat the value ------------------------


def _text(value: str) -> str:
    return value


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be a whole number of at least 1")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be a whole number of at least 0")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 65535:
        raise ValueError("must be a TCP port between 1 and 65535")
    return number


def _postgres_url(value: str) -> str:
    if urlsplit(value).scheme not in ("postgres", "postgresql"):
        raise ValueError("must be a postgresql:// URL")
    return value


def _https_or_loopback_url(value: str) -> str:
    parts = urlsplit(value)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError("must be an https:// URL (http:// only for 127.0.0.1 or localhost)")
    if not parts.hostname:
        raise ValueError("must be an absolute URL with a host name")
    return value.rstrip("/")


def _uuid(value: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", value):
        raise ValueError("must be a GUID such as 00000000-0000-0000-0000-000000000000")
    return value.lower()


_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _host_list(value: str) -> frozenset[str]:
    hosts = frozenset(part.strip().lower() for part in value.split(",") if part.strip())
    for host in hosts:
        if not re.fullmatch(r"[a-z0-9.:\-\[\]]+", host):
            raise ValueError(f"{host!r} is not a host name or address")
    return hosts


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL")
    return value.rstrip("/")


def _secret_list(value: str) -> tuple[str, ...]:
    secrets = tuple(part.strip() for part in value.split(",") if part.strip())
    if not 1 <= len(secrets) <= 2:
        raise ValueError("must be one secret, or two separated by a comma during a rotation")
    return secrets


def _sslmode(value: str) -> str:
    if value not in _SSL_MODES:
        raise ValueError(f"must be one of {', '.join(_SSL_MODES)}")
    return value


# Azure queue names: 3-63 lowercase letters, digits and single dashes, starting with a letter or
# digit; 56 at most here so that "<name>-poison" still fits.
_QUEUE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,55}")


def _queue_name(value: str) -> str:
    if not _QUEUE_NAME.fullmatch(value):
        raise ValueError(
            "must be 3-56 lowercase letters, digits and single dashes, starting and ending with a "
            "letter or digit (the host appends '-poison')"
        )
    return value


# --- declarations ------------------------------------------------------------------------------------


KEY_VAULT_REFERENCE_PREFIX = "@Microsoft.KeyVault("


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment setting: its name, how to parse it, its default and what it is for."""

    name: str
    parse: Callable[[str], T]
    help: str
    default: str | None = None
    secret: bool = False

    def raw(self) -> str | None:
        value = os.environ.get(self.name, "").strip()
        if value.startswith(KEY_VAULT_REFERENCE_PREFIX):
            # The platform leaves the reference text in place when it cannot resolve it.
            raise ConfigurationError(
                f"setting {self.name} is a Key Vault reference the platform could not resolve: check that the "
                "secret exists and that the app identity holds Key Vault Secrets User on the vault (README: "
                "\"Deploying\")")
        return value or self.default

    def optional(self) -> T | None:
        raw = self.raw()
        if raw is None:
            return None
        try:
            return self.parse(raw)
        except ValueError as error:
            shown = "" if self.secret else f" ({raw!r})"
            raise ConfigurationError(f"setting {self.name} is malformed{shown}: {error}") from None

    def required(self) -> T:
        value = self.optional()
        if value is None:
            raise ConfigurationError(f"setting {self.name} is not set: {self.help}")
        return value


SETTINGS: dict[str, Setting] = {}


def _declare(
    name: str, parse: Callable[[str], T], help: str, *, default: str | None = None, secret: bool = False
) -> Setting[T]:
    setting = Setting(name, parse, help, default=default, secret=secret)
    SETTINGS[name] = setting
    return setting


# Database: DATABASE_URL, or the POSTGRES_* group with an Entra access token as the password.
DATABASE_URL = _declare(
    "DATABASE_URL", _postgres_url, "postgresql:// URL of the app's database (through PgBouncer "
    "in Azure); leave empty locally to use the embedded server", secret=True)
DATABASE_DIRECT_URL = _declare(
    "DATABASE_DIRECT_URL", _postgres_url, "postgresql:// URL that bypasses PgBouncer, used by "
    "`migrate`; defaults to DATABASE_URL", secret=True)
POSTGRES_HOST = _declare(
    "POSTGRES_HOST", _text, "host name of the Azure Database for PostgreSQL flexible server")
POSTGRES_PORT = _declare(
    "POSTGRES_PORT", _port, "port the app connects to (6432: the server's built-in PgBouncer)",
    default="6432")
POSTGRES_DIRECT_PORT = _declare(
    "POSTGRES_DIRECT_PORT", _port, "port `migrate` connects to, bypassing PgBouncer", default="5432")
POSTGRES_DATABASE = _declare("POSTGRES_DATABASE", _text, "database name on the flexible server")
POSTGRES_USER = _declare(
    "POSTGRES_USER", _text, "Postgres role of the managed identity (its name in Entra ID)")
POSTGRES_SSLMODE = _declare(
    "POSTGRES_SSLMODE", _sslmode, "TLS mode for POSTGRES_HOST connections", default="require")
DB_POOL_MAX_SIZE = _declare(
    "DB_POOL_MAX_SIZE", _positive_int, "connections per pool per instance (see the README's "
    "PgBouncer arithmetic)", default="4")
DB_POOL_TIMEOUT_SECONDS = _declare(
    "DB_POOL_TIMEOUT_SECONDS", _positive_int, "seconds to wait for a pooled connection",
    default="10")
DB_STATEMENT_TIMEOUT_MS = _declare(
    "DB_STATEMENT_TIMEOUT_MS", _non_negative_int, "per-transaction statement timeout in ms "
    "(0: none)", default="30000")

# Managed identity used for Postgres tokens, storage and Key Vault.
AZURE_CLIENT_ID = _declare(
    "AZURE_CLIENT_ID", _uuid, "client id of the user-assigned managed identity; empty to use "
    "the developer's Azure CLI login")

# Storage for queues: a connection string, or the identity-based form.
STORAGE_CONNECTION_STRING = _declare(
    "AzureWebJobsStorage", _text, "storage connection string (UseDevelopmentStorage=true "
    "locally); in Azure use the AzureWebJobsStorage__* identity settings instead", secret=True)
STORAGE_QUEUE_SERVICE_URI = _declare(
    "AzureWebJobsStorage__queueServiceUri", _https_or_loopback_url,
    "queue endpoint for identity-based storage access")
STORAGE_BLOB_SERVICE_URI = _declare(
    "AzureWebJobsStorage__blobServiceUri", _https_or_loopback_url,
    "blob endpoint for identity-based storage access (used by the Functions host)")
STORAGE_CREDENTIAL = _declare(
    "AzureWebJobsStorage__credential", _text, "'managedidentity' for identity-based storage access")
STORAGE_CLIENT_ID = _declare(
    "AzureWebJobsStorage__clientId", _uuid, "client id of the identity that reads the queues")

# Queues (names resolved by the host from %SETTING% in the decorators, and by the code to send).
DSYNC_APPLY_QUEUE = _declare(
    "DSYNC_APPLY_QUEUE", _queue_name, "queue of acknowledged WorkOS events to apply",
    default="dsync-apply")
TEAMS_TURNS_QUEUE = _declare(
    "TEAMS_TURNS_QUEUE", _queue_name, "queue of Teams turns answered out of band",
    default="teams-turns")
TEAMS_ALERTS_QUEUE = _declare(
    "TEAMS_ALERTS_QUEUE", _queue_name, "queue of proactive Teams alerts", default="teams-alerts")
HRMS_SYNC_QUEUE = _declare(
    "HRMS_SYNC_QUEUE", _queue_name, "queue of HRMS sync runs", default="hrms-sync")
HRMS_WRITEBACK_QUEUE = _declare(
    "HRMS_WRITEBACK_QUEUE", _queue_name, "queue of results to write back to the HRMS",
    default="hrms-writeback")

# Outbound HTTP and secrets.
OUTBOUND_ALLOWED_LOCAL_HOSTS = _declare(
    "OUTBOUND_ALLOWED_LOCAL_HOSTS", _host_list, "host names or addresses the outbound HTTP client may reach "
    "over plain http or on private/loopback addresses: the local stand-ins; empty in Azure")
KEY_VAULT_URL = _declare(
    "KEY_VAULT_URL", _https_url, "Key Vault holding per-tenant secrets (referenced by name from the "
    "database); empty locally, where SECRET_<NAME> environment variables stand in")
SECRET_CACHE_SECONDS = _declare(
    "SECRET_CACHE_SECONDS", _non_negative_int, "how long a resolved secret is kept in memory", default="300")

# Public address and SCIM.
PUBLIC_BASE_URL = _declare(
    "PUBLIC_BASE_URL", _https_or_loopback_url, "the app's public origin (the custom domain given to customers); "
    "empty: the host of each request")
SCIM_CURSOR_SECRET = _declare(
    "SCIM_CURSOR_SECRET", _text, "secret that seals SCIM cursors (RFC 9865), the same on every instance",
    secret=True)

# WorkOS (Directory Sync; SSO). The SDK would read WORKOS_* from the environment itself: the code
# passes every value explicitly, from here.
WORKOS_API_KEY = _declare(
    "WORKOS_API_KEY", _text, "WorkOS API key (sk_...): Events API, Admin Portal, organizations", secret=True)
WORKOS_CLIENT_ID = _declare("WORKOS_CLIENT_ID", _text, "WorkOS client id (client_...)")
WORKOS_BASE_URL = _declare(
    "WORKOS_BASE_URL", _https_or_loopback_url, "WorkOS API origin; empty: https://api.workos.com (the local "
    "stand-in in local runs)")
WORKOS_PRODUCTION_URL = "https://api.workos.com"
WORKOS_WEBHOOK_SECRET = _declare(
    "WORKOS_WEBHOOK_SECRET", _secret_list, "webhook signing secret of the WorkOS endpoint; during a rotation "
    "'NEW,OLD' (both are accepted)", secret=True)
ENTRA_AUTHORITY_HOST = _declare(
    "ENTRA_AUTHORITY_HOST", _https_url, "Microsoft Entra ID login origin for direct Entra sign-in (the HTTPS "
    "stand-in in local runs)", default="https://login.microsoftonline.com")
OPERATOR_TENANT = _declare(
    "OPERATOR_TENANT", _text, "slug of the operator's own tenant: its users who sign in to its admin app get "
    "operator scope in the admin API (other tenants' admin apps give their own tenant's scope)")
LOGIN_RATE_LIMIT_PER_MINUTE = _declare(
    "LOGIN_RATE_LIMIT_PER_MINUTE", _positive_int, "sign-in starts and callbacks a client may make per minute",
    default="60")
SIGN_IN_LOG_RETENTION_DAYS = _declare(
    "SIGN_IN_LOG_RETENTION_DAYS", _positive_int, "days the record of sign-in attempts is kept", default="400")
DSYNC_POLL_SCHEDULE = _declare(
    "DSYNC_POLL_SCHEDULE", _text, "NCRONTAB schedule of the Directory Sync Events API poller (seconds first, UTC)",
    default="0 */1 * * * *")
DSYNC_EVENT_RETENTION_DAYS = _declare(
    "DSYNC_EVENT_RETENTION_DAYS", _positive_int, "days applied Directory Sync events stay in the inbox",
    default="30")

# Teams bot. One Azure Bot registration serves every customer tenant (README: "Teams"): its app
# registration is multi-organization, the Azure Bot resource SingleTenant (or a user-assigned identity).
BOT_APP_TYPES = ("SingleTenant", "UserAssignedMSI")


def _bot_app_type(value: str) -> str:
    for app_type in BOT_APP_TYPES:
        if value.lower() == app_type.lower():
            return app_type
    raise ValueError(f"must be one of {', '.join(BOT_APP_TYPES)} (multi-tenant registrations are no longer created)")


def _version(value: str) -> str:
    if not re.fullmatch(r"\d{1,4}\.\d{1,4}\.\d{1,4}", value):
        raise ValueError("must be a version such as 1.0.0")
    return value


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError("must be a number of at least 0")
    return number


MICROSOFT_APP_TYPE = _declare(
    "MicrosoftAppType", _bot_app_type, "identity type of the Azure Bot: SingleTenant (app registration "
    "with a client secret) or UserAssignedMSI", default="SingleTenant")
MICROSOFT_APP_ID = _declare(
    "MicrosoftAppId", _uuid, "the bot's Microsoft App ID (the app registration's client id, or the "
    "managed identity's); empty: the Teams endpoint refuses every request")
MICROSOFT_APP_PASSWORD = _declare(
    "MicrosoftAppPassword", _text, "client secret of the bot's app registration (SingleTenant; a Key Vault "
    "reference in Azure)", secret=True)
MICROSOFT_APP_TENANT_ID = _declare(
    "MicrosoftAppTenantId", _uuid, "the bot's home tenant: where its outgoing tokens are issued")
BOT_OPENID_METADATA_URL = _declare(
    "BOT_OPENID_METADATA_URL", _https_or_loopback_url, "OpenID metadata of the Bot Framework channel tokens "
    "(the Bot connector stand-in in local runs)",
    default="https://login.botframework.com/v1/.well-known/openidconfiguration")
TEAMS_SERVICE_URL = _declare(
    "TEAMS_SERVICE_URL", _https_or_loopback_url, "Bot connector service URL used to open a conversation with "
    "a user who has never written to the bot (others use the URL their messages came from)",
    default="https://smba.trafficmanager.net/teams/")
TEAMS_APP_ID = _declare(
    "TEAMS_APP_ID", _uuid, "id of the Teams app package (manifest id); empty: the bot's app id")
TEAMS_APP_VERSION = _declare(
    "TEAMS_APP_VERSION", _version, "version written into the Teams app package", default="1.0.0")
TEAMS_CHAT_INLINE_SECONDS = _declare(
    "TEAMS_CHAT_INLINE_SECONDS", _non_negative_float, "how long a chat turn waits for the tenant's chatbot "
    "before the answer is left to the teams-turns queue (Bot Framework allows 15 s a turn)", default="5")
TEAMS_CHAT_TIMEOUT_SECONDS = _declare(
    "TEAMS_CHAT_TIMEOUT_SECONDS", _positive_int, "how long the teams-turns worker waits for the tenant's "
    "chatbot", default="60")
TEAMS_SENDS_PER_SECOND = _declare(
    "TEAMS_SENDS_PER_SECOND", _non_negative_float, "alert messages per second per tenant, across every "
    "instance (Teams allows an app 50 requests per second per tenant); 0: no pacing", default="40")
TEAMS_ALERT_BATCH_SIZE = _declare(
    "TEAMS_ALERT_BATCH_SIZE", _positive_int, "recipients per teams-alerts queue message", default="50")
TEAMS_RETENTION_DAYS = _declare(
    "TEAMS_RETENTION_DAYS", _positive_int, "days alerts, their delivery status and chat turn records are kept",
    default="90")

# HRMS read (the timer's schedule is resolved by the host from %HRMS_SCHEDULE_CHECK%).
HRMS_SCHEDULE_CHECK = _declare(
    "HRMS_SCHEDULE_CHECK", _text, "NCRONTAB schedule of the timer that queues the HRMS syncs that are due "
    "(each tenant's own schedule decides when)", default="0 */5 * * * *")
HRMS_FULL_SYNC_DAYS = _declare(
    "HRMS_FULL_SYNC_DAYS", _positive_int, "a scheduled sync is a full one (which finds departed employees) when "
    "the last full one is older than this; the others are incremental where the HRMS allows", default="7")
HRMS_RUN_RETENTION_DAYS = _declare(
    "HRMS_RUN_RETENTION_DAYS", _positive_int, "days the history of finished HRMS sync runs is kept", default="400")

# Retention (the timer's schedule is resolved by the host from %RETENTION_SCHEDULE%).
RETENTION_SCHEDULE = _declare(
    "RETENTION_SCHEDULE", _text, "NCRONTAB schedule of the retention timer (seconds first, UTC)",
    default="0 17 3 * * *")
ADMIN_AUDIT_RETENTION_DAYS = _declare(
    "ADMIN_AUDIT_RETENTION_DAYS", _positive_int, "days the admin audit is kept", default="400")

# Read by the Functions host, not by the code; listed so that the sample and the Bicep stay in step.
HOST_SETTINGS: tuple[str, ...] = ("FUNCTIONS_WORKER_RUNTIME",)


# --- groups ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntraPostgres:
    """A flexible server reached with an Entra access token as the password."""

    host: str
    port: int
    direct_port: int
    database: str
    user: str
    sslmode: str

    def conninfo(self, *, direct: bool = False) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host,
            port=self.direct_port if direct else self.port,
            dbname=self.database,
            user=self.user,
            sslmode=self.sslmode,
        )


@dataclass(frozen=True)
class DatabaseSettings:
    url: str | None
    direct_url: str | None
    entra: EntraPostgres | None
    pool_max_size: int
    pool_timeout_seconds: int
    statement_timeout_ms: int

    @property
    def uses_entra_token(self) -> bool:
        return self.entra is not None

    def conninfo(self, *, direct: bool = False) -> str:
        """Connection string for the app (through PgBouncer) or, with direct, for migrations."""
        if self.entra is not None:
            return self.entra.conninfo(direct=direct)
        assert self.url is not None
        return (self.direct_url or self.url) if direct else self.url


@cache
def database() -> DatabaseSettings:
    url = DATABASE_URL.optional()
    host = POSTGRES_HOST.optional()
    if url and host:
        raise ConfigurationError(
            "settings DATABASE_URL and POSTGRES_HOST are both set: use one (DATABASE_URL with a "
            "password, or POSTGRES_HOST/POSTGRES_DATABASE/POSTGRES_USER with an Entra token)")
    entra = None
    if host:
        entra = EntraPostgres(
            host=host,
            port=POSTGRES_PORT.required(),
            direct_port=POSTGRES_DIRECT_PORT.required(),
            database=POSTGRES_DATABASE.required(),
            user=POSTGRES_USER.required(),
            sslmode=POSTGRES_SSLMODE.required(),
        )
    elif not url:
        raise ConfigurationError(
            "the database is not configured: set DATABASE_URL, or POSTGRES_HOST, POSTGRES_DATABASE "
            "and POSTGRES_USER to connect with the managed identity")
    return DatabaseSettings(
        url=url,
        direct_url=DATABASE_DIRECT_URL.optional(),
        entra=entra,
        pool_max_size=DB_POOL_MAX_SIZE.required(),
        pool_timeout_seconds=DB_POOL_TIMEOUT_SECONDS.required(),
        statement_timeout_ms=DB_STATEMENT_TIMEOUT_MS.required(),
    )


@dataclass(frozen=True)
class StorageSettings:
    connection_string: str | None
    queue_service_uri: str | None
    client_id: str | None


@cache
def storage() -> StorageSettings:
    connection_string = STORAGE_CONNECTION_STRING.optional()
    queue_uri = STORAGE_QUEUE_SERVICE_URI.optional()
    if connection_string and queue_uri:
        raise ConfigurationError(
            "settings AzureWebJobsStorage and AzureWebJobsStorage__queueServiceUri are both set: "
            "use the connection string or the identity-based settings, not both")
    if not connection_string and not queue_uri:
        raise ConfigurationError(
            "queue storage is not configured: set AzureWebJobsStorage (a connection string) or "
            "AzureWebJobsStorage__queueServiceUri with AzureWebJobsStorage__credential=managedidentity")
    client_id = None
    if queue_uri:
        credential = STORAGE_CREDENTIAL.optional()
        if credential is not None and credential.lower() != "managedidentity":
            raise ConfigurationError(
                "setting AzureWebJobsStorage__credential must be 'managedidentity'")
        client_id = STORAGE_CLIENT_ID.optional() or AZURE_CLIENT_ID.optional()
    return StorageSettings(connection_string, queue_uri, client_id)


@dataclass(frozen=True)
class QueueNames:
    dsync_apply: str
    teams_turns: str
    teams_alerts: str
    hrms_sync: str
    hrms_writeback: str

    def all(self) -> tuple[str, ...]:
        return (self.dsync_apply, self.teams_turns, self.teams_alerts, self.hrms_sync,
                self.hrms_writeback)


@cache
def queues() -> QueueNames:
    return QueueNames(
        dsync_apply=DSYNC_APPLY_QUEUE.required(),
        teams_turns=TEAMS_TURNS_QUEUE.required(),
        teams_alerts=TEAMS_ALERTS_QUEUE.required(),
        hrms_sync=HRMS_SYNC_QUEUE.required(),
        hrms_writeback=HRMS_WRITEBACK_QUEUE.required(),
    )


def azure_client_id() -> str | None:
    return AZURE_CLIENT_ID.optional()


def outbound_allowed_local_hosts() -> frozenset[str]:
    return OUTBOUND_ALLOWED_LOCAL_HOSTS.optional() or frozenset()


def key_vault_url() -> str | None:
    return KEY_VAULT_URL.optional()


def public_base_url() -> str | None:
    return PUBLIC_BASE_URL.optional()


def scim_cursor_secret() -> str:
    return SCIM_CURSOR_SECRET.required()


@dataclass(frozen=True)
class WorkOSSettings:
    api_key: str
    client_id: str | None
    base_url: str


def workos() -> WorkOSSettings:
    return WorkOSSettings(WORKOS_API_KEY.required(), WORKOS_CLIENT_ID.optional(),
                          WORKOS_BASE_URL.optional() or WORKOS_PRODUCTION_URL)


def workos_configured() -> bool:
    return WORKOS_API_KEY.optional() is not None


def workos_webhook_secrets() -> tuple[str, ...]:
    return WORKOS_WEBHOOK_SECRET.required()


def operator_tenant() -> str | None:
    return OPERATOR_TENANT.optional()


def login_rate_limit_per_minute() -> int:
    return LOGIN_RATE_LIMIT_PER_MINUTE.required()


def sign_in_log_retention_days() -> int:
    return SIGN_IN_LOG_RETENTION_DAYS.required()


def entra_authority_host() -> str:
    return ENTRA_AUTHORITY_HOST.required()


def dsync_event_retention_days() -> int:
    return DSYNC_EVENT_RETENTION_DAYS.required()


def admin_audit_retention_days() -> int:
    return ADMIN_AUDIT_RETENTION_DAYS.required()


def secret_cache_seconds() -> int:
    return SECRET_CACHE_SECONDS.required()


@dataclass(frozen=True)
class BotSettings:
    app_type: str
    app_id: str
    password: str | None
    tenant_id: str | None
    openid_metadata_url: str
    authority_host: str


def bot() -> BotSettings:
    """The bot's identity; an empty app id is a configuration error, never anonymous access."""
    app_type = MICROSOFT_APP_TYPE.required()
    app_id = MICROSOFT_APP_ID.required()
    password = MICROSOFT_APP_PASSWORD.optional()
    tenant_id = MICROSOFT_APP_TENANT_ID.optional()
    if app_type == "SingleTenant" and (not password or not tenant_id):
        raise ConfigurationError(
            "settings MicrosoftAppPassword and MicrosoftAppTenantId are needed when MicrosoftAppType is SingleTenant")
    return BotSettings(app_type, app_id, password, tenant_id, BOT_OPENID_METADATA_URL.required(),
                       ENTRA_AUTHORITY_HOST.required())


@dataclass(frozen=True)
class TeamsSettings:
    service_url: str
    chat_inline_seconds: float
    chat_timeout_seconds: int
    sends_per_second: float
    alert_batch_size: int


def teams() -> TeamsSettings:
    return TeamsSettings(TEAMS_SERVICE_URL.required(), TEAMS_CHAT_INLINE_SECONDS.required(),
                         TEAMS_CHAT_TIMEOUT_SECONDS.required(), TEAMS_SENDS_PER_SECOND.required(),
                         TEAMS_ALERT_BATCH_SIZE.required())


def teams_retention_days() -> int:
    return TEAMS_RETENTION_DAYS.required()


def hrms_full_sync_days() -> int:
    return HRMS_FULL_SYNC_DAYS.required()


def hrms_run_retention_days() -> int:
    return HRMS_RUN_RETENTION_DAYS.required()


# Locally, a secret reference NAME resolves to the environment variable SECRET_<NAME> (upper case,
# dashes as underscores): a family of settings, declared here rather than one by one.
LOCAL_SECRET_PREFIX = "SECRET_"  # noqa: S105 - a name prefix


def local_secret(reference: str) -> str | None:
    """The local stand-in for a Key Vault secret, or None."""
    value = os.environ.get(LOCAL_SECRET_PREFIX + reference.upper().replace("-", "_"), "")
    return value or None


def reset() -> None:
    """Forget every parsed group, so that the next use reads the environment again."""
    for group in (database, storage, queues):
        group.cache_clear()


# --- local runs ----------------------------------------------------------------------------------


def load_local_settings(*paths: Path, environ: dict[str, str] | None = None) -> list[str]:
    """Fill unset variables from local settings files, as `func start` does; returns what it set.

    Each file is a ``local.settings.json`` (values under ``"Values"``) or a flat JSON object. Earlier
    files win over later ones and the real environment wins over all (Core Tools skips a value that
    is already defined in the environment). Only local runs and the ops CLI call this: neither file
    is published (.funcignore).
    """
    target: dict[str, str] = os.environ if environ is None else environ  # type: ignore[assignment]
    loaded: list[str] = []
    for path in paths:
        if not path.is_file():
            continue
        document = json.loads(path.read_text(encoding="utf-8"))
        values: Mapping[str, object] = document.get("Values", document)
        for name, value in values.items():
            if target.get(name, "") == "" and value not in (None, ""):
                target[name] = str(value)
                loaded.append(name)
    return loaded
