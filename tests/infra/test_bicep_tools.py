"""The offline Bicep tooling itself, on small fixture files (never bicep/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra import bicep_tools

CLEAN = """\
@secure()
param adminPassword string

@allowed(['dev', 'prod'])
param environmentName string = 'dev'

param location string = resourceGroup().location

var prefix = 'ec-${environmentName}'

resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: '${replace(prefix, '-', '')}st'
  location: location
  sku: { name: 'Standard_GRS' }
  kind: 'StorageV2'
  properties: {
    minimumTlsVersion: 'TLS1_2'
    allowSharedKeyAccess: false
  }
}

output storageId string = st.id
"""

# Files tree-sitter-bicep 1.1.0 rejects. The spread operator is valid Bicep (0.27+) that the grammar predates.
BROKEN = {
    "spread": "param base object = {}\nvar merged = {\n  ...base\n  b: 2\n}\n",
    "unterminated string": "param name string = 'abc\nvar x = 1\n",
    "missing brace": "resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  properties: {\n}\n",
}

# Two storage accounts on TLS 1.0 (CKV_AZURE_44); the second suppresses that check with a checkov comment.
# checkov 3.3.30 has no Bicep check for allowSharedKeyAccess (its CKV2_AZURE_40 is Terraform only): tests that care
# about shared keys assert them through load().
STORAGE_FOR_CHECKOV = """\
resource weak 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stweak'
  location: 'westeurope'
  sku: { name: 'Standard_GRS' }
  kind: 'StorageV2'
  properties: {
    allowSharedKeyAccess: true
    minimumTlsVersion: 'TLS1_0'
  }
}

resource excused 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_44: a legacy client needs TLS 1.0
  name: 'stexcused'
  location: 'westeurope'
  sku: { name: 'Standard_GRS' }
  kind: 'StorageV2'
  properties: {
    minimumTlsVersion: 'TLS1_0'
  }
}
"""


def _write(directory: Path, text: str, name: str = "main.bicep") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_clean_file_has_no_syntax_errors(tmp_path: Path) -> None:
    assert bicep_tools.syntax_errors(_write(tmp_path, CLEAN)) == []


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_file_has_syntax_errors(tmp_path: Path, case: str) -> None:
    path = _write(tmp_path, BROKEN[case])
    errors = bicep_tools.syntax_errors(path)
    assert errors
    for error in errors:
        assert error.startswith(f"{path}:")
        assert ": ERROR near '" in error


def test_load_gives_parameters_variables_resources_and_outputs(tmp_path: Path) -> None:
    template = bicep_tools.load(_write(tmp_path, CLEAN))

    assert template["parameters"]["adminPassword"]["decorators"] == [{"type": "secure"}]
    assert template["parameters"]["environmentName"]["default"] == "dev"
    assert set(template["variables"]) == {"prefix"}
    storage = template["resources"]["st"]
    assert storage["type"] == "Microsoft.Storage/storageAccounts"
    assert storage["api_version"] == "2023-05-01"
    assert storage["config"]["properties"]["allowSharedKeyAccess"] is False
    assert set(template["outputs"]) == {"storageId"}


def test_body_unwraps_conditions_and_loops(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
param deploy bool
param names array

resource plain 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'plain'
}

resource maybe 'Microsoft.Storage/storageAccounts@2023-05-01' = if (deploy) {
  name: 'maybe'
}

resource many 'Microsoft.Storage/storageAccounts@2023-05-01' = [for n in names: {
  name: n
}]
""",
    )
    resources = bicep_tools.load(path)["resources"]
    assert resources["maybe"]["config"]["condition"] == "deploy"
    assert resources["many"]["config"]["loop_type"]["detail"] == {"item_name": "n", "array_name": "names"}
    assert [bicep_tools.body(resources[name])["name"] for name in ("plain", "maybe", "many")] == ["plain", "maybe", "n"]


def test_load_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    path = _write(tmp_path, CLEAN)
    assert bicep_tools.load(path) is bicep_tools.load(path)
    _write(tmp_path, CLEAN.replace("Standard_GRS", "Standard_ZRS"))
    assert bicep_tools.load(path)["resources"]["st"]["config"]["sku"]["name"] == "Standard_ZRS"


def test_load_names_the_file_it_cannot_parse(tmp_path: Path) -> None:
    path = _write(tmp_path, BROKEN["missing brace"])
    with pytest.raises(ValueError, match="pycep-parser cannot parse"):
        bicep_tools.load(path)


@pytest.fixture(scope="module")
def checkov_storage(tmp_path_factory: pytest.TempPathFactory) -> bicep_tools.CheckovResult:
    directory = tmp_path_factory.mktemp("checkov")
    _write(directory, STORAGE_FOR_CHECKOV)
    return bicep_tools.run_checkov(directory)


def test_checkov_reports_the_failing_check(checkov_storage: bicep_tools.CheckovResult) -> None:
    assert checkov_storage.parsing_errors == []
    weak_tls = [
        check
        for check in checkov_storage.failed
        if check["check_id"] == "CKV_AZURE_44" and check["resource"] == "Microsoft.Storage/storageAccounts.weak"
    ]
    assert len(weak_tls) == 1, bicep_tools.describe(checkov_storage.failed)
    assert weak_tls[0]["file_path"] == "/main.bicep"
    assert weak_tls[0]["file_line_range"] == [1, 10]
    assert checkov_storage.passed_count > 0


def test_checkov_skip_comment_skips_the_check(checkov_storage: bicep_tools.CheckovResult) -> None:
    [skipped] = checkov_storage.skipped
    assert skipped["check_id"] == "CKV_AZURE_44"
    assert skipped["resource"] == "Microsoft.Storage/storageAccounts.excused"
    assert skipped["suppress_comment"] == "a legacy client needs TLS 1.0"
    assert not [
        check
        for check in checkov_storage.failed
        if check["resource"].endswith(".excused") and check["check_id"] == "CKV_AZURE_44"
    ]


def test_checkov_lists_files_it_cannot_parse(tmp_path: Path) -> None:
    _write(tmp_path, BROKEN["missing brace"])
    result = bicep_tools.run_checkov(tmp_path)
    assert result.parsing_errors == [str(tmp_path / "main.bicep")]
    assert result.failed == []


def test_checkov_on_an_empty_directory(tmp_path: Path) -> None:
    result = bicep_tools.run_checkov(tmp_path)
    assert (result.failed, result.skipped, result.passed_count, result.resource_count) == ([], [], 0, 0)


def test_run_checkov_without_the_venv_says_how_to_build_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bicep_tools, "CHECKOV", bicep_tools.REPO_ROOT / ".venv-checkov-missing" / "bin" / "checkov")
    with pytest.raises(RuntimeError, match="make test"):
        bicep_tools.run_checkov(tmp_path)


def test_run_checkov_crash_raises_with_stderr(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="checkov crashed"):
        bicep_tools.run_checkov(tmp_path, extra_args=["--framework", "no-such-framework"])
