"""shared/config.py: its contract, item by item."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from shared import config
from shared.config import ConfigurationError
from tests.stack import PROJECT_ROOT, PYTHON, base_environment

SAMPLE = json.loads((PROJECT_ROOT / "local.settings.sample.json").read_text())["Values"]


def test_every_declared_setting_is_in_the_sample_and_nothing_else_is():
    declared = set(config.SETTINGS) | set(config.HOST_SETTINGS)
    assert declared - set(SAMPLE) == set(), "declared in shared/config.py but missing from the sample"
    assert set(SAMPLE) - declared == set(), "in the sample but not declared in shared/config.py"


def test_sample_defaults_agree_with_the_declared_defaults():
    for name, setting in config.SETTINGS.items():
        if setting.default is not None:
            assert SAMPLE[name] == setting.default, name


def test_no_module_but_config_reads_the_environment():
    readers = []
    for path in [*PROJECT_ROOT.glob("shared/**/*.py"), *PROJECT_ROOT.glob("functions/**/*.py"),
                 PROJECT_ROOT / "function_app.py"]:
        if path.name == "config.py" and path.parent.name == "shared":
            continue
        if re.search(r"os\.(environ|getenv)", path.read_text()):
            readers.append(str(path.relative_to(PROJECT_ROOT)))
    assert readers == []


def test_importing_never_reads_a_setting_so_malformed_values_fail_only_at_first_use():
    malformed = {"DB_POOL_MAX_SIZE": "many", "DATABASE_URL": "mysql://x", "HRMS_SYNC_QUEUE": "Bad_Name"}
    env = base_environment() | malformed
    script = (
        "import function_app, shared.config, shared.db, shared.queues, shared.health\n"
        "from shared import config\n"
        "try:\n    config.database()\nexcept config.ConfigurationError as e:\n    print(e)\n"
    )
    result = subprocess.run([PYTHON, "-c", script], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                            check=True)
    assert "DATABASE_URL is malformed" in result.stdout


def test_a_missing_database_names_both_alternatives():
    with pytest.raises(ConfigurationError) as error:
        config.database()
    assert "DATABASE_URL" in str(error.value)
    assert "POSTGRES_HOST" in str(error.value)


def test_both_database_alternatives_at_once_is_an_error(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://localhost/app")
    monkeypatch.setenv("POSTGRES_HOST", "db.example.com")
    with pytest.raises(ConfigurationError, match="DATABASE_URL and POSTGRES_HOST are both set"):
        config.database()


def test_the_entra_alternative_requires_its_database_and_user(monkeypatch):
    monkeypatch.setenv("POSTGRES_HOST", "db.example.com")
    monkeypatch.setenv("POSTGRES_DATABASE", "app")
    with pytest.raises(ConfigurationError, match="POSTGRES_USER is not set"):
        config.database()


def test_the_entra_alternative_connects_through_pgbouncer_and_migrates_directly(monkeypatch):
    entra = {"POSTGRES_HOST": "db.example.com", "POSTGRES_DATABASE": "app", "POSTGRES_USER": "id-app"}
    for name, value in entra.items():
        monkeypatch.setenv(name, value)
    settings = config.database()
    assert settings.uses_entra_token
    assert "port=6432" in settings.conninfo()
    assert "port=5432" in settings.conninfo(direct=True)
    assert "sslmode=require" in settings.conninfo()


def test_a_malformed_secret_is_named_but_never_shown(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://admin:hunter2@db/app")
    with pytest.raises(ConfigurationError) as error:
        config.database()
    assert "DATABASE_URL" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_a_malformed_plain_setting_is_named_with_its_value(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://localhost/app")
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "0")
    with pytest.raises(ConfigurationError, match=r"DB_POOL_MAX_SIZE is malformed \('0'\)"):
        config.database()


def test_an_empty_value_counts_as_unset(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://localhost/app")
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "")
    assert config.database().pool_max_size == int(config.DB_POOL_MAX_SIZE.default)


def test_storage_takes_a_connection_string_or_the_identity_form_but_not_both(monkeypatch):
    with pytest.raises(ConfigurationError, match="AzureWebJobsStorage__queueServiceUri"):
        config.storage()
    monkeypatch.setenv("AzureWebJobsStorage__queueServiceUri", "https://acct.queue.core.windows.net")
    monkeypatch.setenv("AzureWebJobsStorage__clientId", "11111111-2222-3333-4444-555555555555")
    assert config.storage().client_id == "11111111-2222-3333-4444-555555555555"
    config.reset()
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    with pytest.raises(ConfigurationError, match="both set"):
        config.storage()


def test_identity_storage_falls_back_to_the_app_identity(monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage__queueServiceUri", "https://acct.queue.core.windows.net")
    monkeypatch.setenv("AZURE_CLIENT_ID", "AAAAAAAA-2222-3333-4444-555555555555")
    assert config.storage().client_id == "aaaaaaaa-2222-3333-4444-555555555555"


def test_identity_storage_refuses_plain_http_outside_loopback(monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage__queueServiceUri", "http://acct.queue.core.windows.net")
    with pytest.raises(ConfigurationError, match="AzureWebJobsStorage__queueServiceUri is malformed"):
        config.storage()


@pytest.mark.parametrize("bad", ["ab", "Upper", "dash--twice", "-leading", "trailing-", "x" * 57])
def test_queue_names_follow_azure_rules_with_room_for_the_poison_suffix(monkeypatch, bad):
    monkeypatch.setenv("HRMS_SYNC_QUEUE", bad)
    with pytest.raises(ConfigurationError, match="HRMS_SYNC_QUEUE is malformed"):
        config.queues()


def test_queue_names_default_to_the_designed_names():
    assert config.queues().all() == ("dsync-apply", "teams-turns", "teams-alerts", "hrms-sync", "hrms-writeback")


def test_groups_are_parsed_once_until_reset(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://localhost/one")
    assert config.database().url.endswith("/one")
    monkeypatch.setenv("DATABASE_URL", "postgresql://localhost/two")
    assert config.database().url.endswith("/one")
    config.reset()
    assert config.database().url.endswith("/two")


def test_local_settings_fill_only_what_the_environment_leaves_unset(tmp_path: Path):
    first = tmp_path / "local.settings.json"
    first.write_text(json.dumps({"Values": {"A": "from-first", "B": "", "C": "from-first"}}))
    second = tmp_path / "dev-settings.json"
    second.write_text(json.dumps({"B": "from-second", "C": "from-second"}))
    environ = {"A": "from-env"}
    loaded = config.load_local_settings(first, second, tmp_path / "missing.json", environ=environ)
    assert environ == {"A": "from-env", "B": "from-second", "C": "from-first"}
    assert sorted(loaded) == ["B", "C"]


def test_every_setting_is_documented_in_the_readme():
    readme = (PROJECT_ROOT / "README.md").read_text()
    undocumented = [name for name in [*config.SETTINGS, *config.HOST_SETTINGS]
                    if name not in readme and name.replace("AzureWebJobsStorage", "") not in readme]
    assert undocumented == []


def test_an_unresolved_key_vault_reference_is_named_and_never_taken_for_the_value(monkeypatch):
    monkeypatch.setenv("WORKOS_API_KEY", "@Microsoft.KeyVault(SecretUri=https://kv-ec.vault.azure.net/secrets/workos-api-key/)")

    with pytest.raises(config.ConfigurationError, match="setting WORKOS_API_KEY is a Key Vault reference the "
                                                        "platform could not resolve") as raised:
        config.workos_configured()
    assert "Key Vault Secrets User" in str(raised.value)
