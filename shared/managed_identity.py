"""The app's one Azure credential, created on first use and shared by Postgres, storage and Key Vault.

In Azure it is the user-assigned managed identity named by ``AZURE_CLIENT_ID`` (asked directly, so no
credential chain is probed on a cold start); on an operator's machine, where ``AZURE_CLIENT_ID`` is
empty, it is their Azure CLI or developer login.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from shared import config

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

_lock = threading.Lock()
_credential: TokenCredential | None = None


def azure_credential() -> TokenCredential:
    """The shared credential; azure-identity caches its tokens until shortly before they expire."""
    global _credential
    with _lock:
        if _credential is None:
            client_id = config.azure_client_id()
            if client_id:
                from azure.identity import ManagedIdentityCredential

                _credential = ManagedIdentityCredential(client_id=client_id)
            else:
                from azure.identity import DefaultAzureCredential

                _credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        return _credential


def reset() -> None:
    global _credential
    with _lock:
        _credential = None
