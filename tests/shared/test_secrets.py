"""shared/secrets.py: Key Vault in Azure (faked at the SDK boundary), environment variables locally."""

from __future__ import annotations

import logging

import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared import secrets
from shared.secrets import InvalidSecretReference, SecretNotFound


@pytest.fixture(autouse=True)
def fresh_cache():
    secrets.forget()
    yield
    secrets.forget()


class FakeSecretClient:
    """azure.keyvault.secrets.SecretClient as far as the resolver uses it."""

    def __init__(self, vault_url: str, credential: object) -> None:
        self.vault_url = vault_url
        self.values = {"tenant-acme-personio": "s3cret-v1"}
        self.calls: list[str] = []

    def get_secret(self, name: str):
        self.calls.append(name)
        if name not in self.values:
            raise ResourceNotFoundError(f"(SecretNotFound) A secret with (name/id) {name} was not found")
        return type("KeyVaultSecret", (), {"value": self.values[name]})()


@pytest.fixture
def key_vault(monkeypatch):
    import azure.keyvault.secrets

    clients: list[FakeSecretClient] = []

    def make(vault_url, credential):
        clients.append(FakeSecretClient(vault_url, credential))
        return clients[-1]

    monkeypatch.setattr(azure.keyvault.secrets, "SecretClient", make)
    monkeypatch.setattr("shared.managed_identity._credential", object())
    monkeypatch.setenv("KEY_VAULT_URL", "https://ec-prod.vault.azure.net")
    return clients


def test_in_azure_a_reference_resolves_through_key_vault(key_vault):
    assert secrets.resolve_secret("tenant-acme-personio") == "s3cret-v1"
    assert key_vault[0].vault_url == "https://ec-prod.vault.azure.net"


def test_values_are_cached_for_a_while_then_fetched_again(key_vault, monkeypatch):
    secrets.resolve_secret("tenant-acme-personio")
    secrets.resolve_secret("tenant-acme-personio")
    assert key_vault[0].calls == ["tenant-acme-personio"]
    monkeypatch.setenv("SECRET_CACHE_SECONDS", "0")
    secrets.forget()
    secrets.resolve_secret("tenant-acme-personio")
    secrets.resolve_secret("tenant-acme-personio")
    assert key_vault[-1].calls == ["tenant-acme-personio", "tenant-acme-personio"]


def test_a_missing_key_vault_secret_is_named(key_vault):
    with pytest.raises(SecretNotFound, match="'tenant-acme-bamboohr' is not in the Key Vault"):
        secrets.resolve_secret("tenant-acme-bamboohr")


def test_locally_a_reference_resolves_from_the_environment(monkeypatch):
    monkeypatch.setenv("SECRET_TENANT_ACME_PERSONIO", "local-value")
    assert secrets.resolve_secret("tenant-acme-personio") == "local-value"


def test_a_missing_local_secret_names_the_variable_to_set():
    with pytest.raises(SecretNotFound, match="SECRET_TENANT_ACME_HIBOB"):
        secrets.resolve_secret("tenant-acme-hibob")


@pytest.mark.parametrize("reference", ["", "has space", "under_score", "x" * 128, "../etc"])
def test_a_reference_that_is_not_a_key_vault_name_is_refused_before_any_call(key_vault, reference):
    with pytest.raises(InvalidSecretReference):
        secrets.resolve_secret(reference)
    assert key_vault == []


def test_values_never_reach_the_log(key_vault, caplog):
    caplog.set_level(logging.DEBUG)
    secrets.resolve_secret("tenant-acme-personio")
    assert "s3cret-v1" not in caplog.text
