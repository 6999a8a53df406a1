"""The one secret resolver: a reference (a Key Vault secret name kept in the database) -> its value.

Contract (tests/shared/test_secrets.py):
- with KEY_VAULT_URL set, a secret comes from that Key Vault through the app's managed identity;
- without it (local runs), from the environment variable SECRET_<NAME> (upper case, dashes as
  underscores), which local.settings.json or the stand-ins' setup provide;
- a value is kept in memory for SECRET_CACHE_SECONDS (default 300), so hot paths do not call Key
  Vault each time; ``forget()`` drops what is kept (after a rotation, and in tests);
- a reference that is not a Key Vault secret name raises InvalidSecretReference before any call; a
  missing secret raises SecretNotFound naming the reference; no value ever reaches a log or an
  error message.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from shared import config

_NAME = re.compile(r"[A-Za-z0-9-]{1,127}")


class SecretError(Exception):
    pass


class InvalidSecretReference(SecretError, ValueError):
    pass


class SecretNotFound(SecretError, LookupError):
    pass


_lock = threading.Lock()
_cache: dict[str, tuple[str, float]] = {}
_client: Any = None


def _key_vault_client(vault_url: str) -> Any:
    global _client
    if _client is None:
        from azure.keyvault.secrets import SecretClient

        from shared.managed_identity import azure_credential

        _client = SecretClient(vault_url=vault_url, credential=azure_credential())
    return _client


def _fetch(reference: str) -> str:
    vault_url = config.key_vault_url()
    if vault_url is None:
        value = config.local_secret(reference)
        if value is None:
            variable = config.LOCAL_SECRET_PREFIX + reference.upper().replace("-", "_")
            raise SecretNotFound(f"secret {reference!r} is not set locally (environment variable {variable})")
        return value
    from azure.core.exceptions import ResourceNotFoundError

    try:
        value = _key_vault_client(vault_url).get_secret(reference).value
    except ResourceNotFoundError:
        raise SecretNotFound(f"secret {reference!r} is not in the Key Vault") from None
    if value is None:
        raise SecretNotFound(f"secret {reference!r} has no value in the Key Vault")
    return value


def resolve_secret(reference: str) -> str:
    """The current value of a referenced secret."""
    if not _NAME.fullmatch(reference or ""):
        raise InvalidSecretReference(f"{reference!r} is not a Key Vault secret name (letters, digits, dashes)")
    now = time.monotonic()
    with _lock:
        cached = _cache.get(reference)
        if cached is not None and cached[1] > now:
            return cached[0]
    value = _fetch(reference)
    with _lock:
        _cache[reference] = (value, now + config.secret_cache_seconds())
    return value


def forget() -> None:
    """Drop every cached value (and the Key Vault client, which holds the vault URL)."""
    global _client
    with _lock:
        _cache.clear()
        _client = None
