"""bicep/ against the code it deploys, offline: syntax, the settings and queues the code reads, the roles its
Azure calls need, secrets, the parameter files, the PgBouncer arithmetic, the guide, and checkov.

pycep gives each file's structure as JSON (tests/infra/bicep_tools.py); it writes an identifier and a string
literal alike, so a value is taken for a reference when it names a param or var of the same file.
"""

from __future__ import annotations

import json
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from shared import config
from tests.infra.bicep_tools import body, describe, load, run_checkov, syntax_errors
from tests.stack import PROJECT_ROOT
from tests.test_function_app import index_app

BICEP = PROJECT_ROOT / "bicep"
MAIN = BICEP / "main.bicep"
MODULES = BICEP / "modules"
PARAMETER_FILES = sorted((BICEP / "parameters").glob("*.json"))
README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")

# Settings that come in alternatives: the one left out of the Function App, and the one that stands for it there.
ALTERNATIVES = {
    "DATABASE_URL": "POSTGRES_HOST",
    "DATABASE_DIRECT_URL": "POSTGRES_DIRECT_PORT",
    "AzureWebJobsStorage": "AzureWebJobsStorage__queueServiceUri",
}
# Read by the platform (the Functions host, the Application Insights agent), not by the code.
PLATFORM_SETTINGS = {"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}
# Flex Consumption takes the runtime from functionAppConfig and refuses this setting.
NOT_ON_FLEX = {"FUNCTIONS_WORKER_RUNTIME"}

ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
}
# What the app's identity needs, and why: (role, the resource it is on) -> what in the code or the host uses it.
APP_ROLES = {
    ("Storage Blob Data Owner", "storage"): "the Functions host's leases, timers and deployment package",
    ("Storage Queue Data Contributor", "storage"): "azure.storage.queue (shared/queues.py) and the queue triggers",
    ("Key Vault Secrets User", "vault"): "azure.keyvault.secrets (shared/secrets.py) and the app settings' references",
    ("Monitoring Metrics Publisher", "insights"): "telemetry sent with APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
# Azure SDK packages the code may import, and the role each one's calls need (None: no data-plane role).
AZURE_SDKS = {
    "azure.functions": None,
    "azure.core": None,
    "azure.identity": None,
    "azure.storage.queue": "Storage Queue Data Contributor",
    "azure.keyvault.secrets": "Key Vault Secrets User",
}


@cache
def module(name: str) -> dict[str, Any]:
    return load(MODULES / f"{name}.bicep")


@cache
def indexed_triggers() -> dict[str, dict[str, Any]]:
    """Each function's trigger as the host indexes the app (tests/test_function_app.py), %SETTING%s resolved."""
    return {function["name"]: function["trigger"] for function in index_app()["functions"]}


def main() -> dict[str, Any]:
    return load(MAIN)


def resource(document: dict[str, Any], symbol: str) -> dict[str, Any]:
    return body(document["resources"][symbol])


def names_of(document: dict[str, Any]) -> set[str]:
    return set(document.get("parameters", {})) | set(document.get("variables", {}))


def app_settings() -> dict[str, Any]:
    return resource(module("functionapp"), "appSettings")["properties"]


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def walk(value: Any):
    """Every string inside a pycep value (interpolations, operands, function arguments)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


# --- the files parse, with nothing the offline checkers cannot read -------------------------------------------

BICEP_FILES = sorted(BICEP.rglob("*.bicep"))


def test_there_is_a_main_template_and_modules():
    assert MAIN in BICEP_FILES
    assert {path.stem for path in MODULES.glob("*.bicep")} >= {
        "network", "monitoring", "storage", "keyvault", "postgres", "functionapp", "roles", "bot", "alerts"}


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: str(path.relative_to(BICEP)))
def test_every_bicep_file_parses_without_errors(path: Path):
    assert syntax_errors(path) == []
    assert load(path)["resources"] or path == MAIN


def _code_only(line: str) -> str:
    """The line without its string literals and its // comment."""
    code, in_string, index = [], False, 0
    while index < len(line):
        char = line[index]
        if in_string:
            if char == "\\":
                index += 1
            elif char == "'":
                in_string = False
        elif char == "'":
            in_string = True
        elif line.startswith("//", index):
            break
        else:
            code.append(char)
        index += 1
    return "".join(code)


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: str(path.relative_to(BICEP)))
def test_no_syntax_the_checkers_cannot_read_and_no_registry_modules(path: Path):
    source = "\n".join(_code_only(line) for line in text_of(path).splitlines())
    assert "..." not in source, "spread"
    assert not re.search(r"^\s*extension\b", source, re.MULTILINE), "extension"
    assert not re.search(r"[\w)\]]!(?!=)", source), "non-null assertion"
    for name, declaration in load(path).get("modules", {}).items():
        assert declaration["type"] == "local", f"module {name} is not a local file"
        assert (path.parent / declaration["detail"]["path"]).is_file(), name


# --- settings ---------------------------------------------------------------------------------------------------


def test_every_setting_the_code_reads_is_set_on_the_function_app():
    settings = app_settings()
    missing = []
    for name in config.SETTINGS:
        if name in settings:
            continue
        stand_in = ALTERNATIVES.get(name)
        if stand_in is None or stand_in not in settings:
            missing.append(name)
    assert missing == []


def test_alternatives_are_set_in_one_form_only_as_the_code_insists():
    settings = app_settings()
    for left_out, stand_in in ALTERNATIVES.items():
        assert stand_in in settings, stand_in
        assert left_out not in settings, left_out
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert {"AzureWebJobsStorage__clientId", "AzureWebJobsStorage__blobServiceUri"} <= set(settings)


def test_every_app_setting_is_one_the_code_or_the_platform_reads():
    unknown = set(app_settings()) - set(config.SETTINGS) - PLATFORM_SETTINGS
    assert unknown == set()
    stand_ins = [name for name in app_settings()
                 if name.startswith(config.LOCAL_SECRET_PREFIX) and name not in config.SETTINGS]
    assert stand_ins == [], "SECRET_<NAME> is the local stand-in for Key Vault"


def test_host_settings_are_handled_the_flex_consumption_way():
    assert set(config.HOST_SETTINGS) == NOT_ON_FLEX
    assert NOT_ON_FLEX.isdisjoint(app_settings())
    runtime = resource(module("functionapp"), "site")["properties"]["functionAppConfig"]["runtime"]
    assert runtime == {"name": "python", "version": "3.11"}


def test_per_tenant_secrets_are_documented_as_key_vault_secrets_the_app_reads_by_name():
    assert app_settings()["KEY_VAULT_URL"] == "keyVaultUri"
    assert "tenant-<slug>-entra" in README
    assert "credential_ref" in README
    assert re.search(r"`SECRET_<NAME>` \| \| locally only", README)


def test_literal_values_parse_and_agree_with_the_codes_defaults():
    references = names_of(module("functionapp"))
    checked = 0
    for name, value in app_settings().items():
        if name not in config.SETTINGS or not isinstance(value, str) or value in references or "${" in value:
            continue
        setting = config.SETTINGS[name]
        if value:
            setting.parse(value)
        if setting.default is not None:
            assert value == setting.default, f"{name}: Bicep {value!r}, code {setting.default!r}"
        checked += 1
    assert checked >= 20


def test_every_secret_setting_is_a_key_vault_reference_to_a_secret_the_template_knows():
    functionapp = module("functionapp")
    prefix = functionapp["variables"]["keyVaultSecret"]["value"]
    assert prefix == "@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/"
    vault_secrets = {resource(module("keyvault"), symbol)["name"]
                     for symbol, declaration in module("keyvault")["resources"].items()
                     if declaration["type"] == "Microsoft.KeyVault/vaults/secrets"}
    referenced = {}
    for name, value in app_settings().items():
        if name not in config.SETTINGS or not config.SETTINGS[name].secret:
            continue
        candidates = [text for text in walk(value) if text.startswith("${keyVaultSecret}")]
        assert candidates, f"{name} is secret but not a Key Vault reference"
        (reference,) = candidates
        match = re.fullmatch(r"\$\{keyVaultSecret\}([a-z0-9-]+)/\)", reference)
        assert match, reference
        referenced[name] = match.group(1)
    assert referenced == {"SCIM_CURSOR_SECRET": "scim-cursor-secret", "WORKOS_API_KEY": "workos-api-key",
                          "WORKOS_WEBHOOK_SECRET": "workos-webhook-secret",
                          "MicrosoftAppPassword": "bot-app-password"}
    assert set(referenced.values()) == vault_secrets
    site = resource(functionapp, "site")["properties"]
    assert site["keyVaultReferenceIdentity"] == "identityId"


def test_every_secret_written_to_key_vault_has_a_content_type():
    for symbol, declaration in module("keyvault")["resources"].items():
        if declaration["type"] == "Microsoft.KeyVault/vaults/secrets":
            assert resource(module("keyvault"), symbol)["properties"]["contentType"] == "text/plain", symbol


# --- queues -----------------------------------------------------------------------------------------------------

def created_queues() -> set[str]:
    queue_names = main()["variables"]["queueNames"]["value"]
    storage_params = body(main()["modules"]["storage"])["params"]
    assert storage_params["queueNames"] == "queueNames"
    storage = module("storage")
    queues = set()
    for symbol in ("queues", "poisonQueues"):
        declaration = storage["resources"][symbol]
        loop = declaration["config"]["loop_type"]["detail"]
        assert (declaration["type"], loop["array_name"]) == ("Microsoft.Storage/storageAccounts/queueServices/queues",
                                                             "queueNames")
        template = body(declaration)["name"].replace("${" + loop["item_name"] + "}", "{}")
        template = "{}" if template == loop["item_name"] else template
        queues |= {template.format(name) for name in queue_names}
    return queues


def test_every_queue_the_code_triggers_on_or_writes_to_is_created_with_its_poison_queue():
    from shared import queues

    triggered = [trigger["queueName"] for trigger in indexed_triggers().values() if trigger["type"] == "queueTrigger"]
    assert "hrms-sync-poison" in triggered
    created = created_queues()
    assert set(triggered) <= created
    assert set(queues.app_queue_names()) <= created
    assert created == set(queues.app_queue_names())


def test_the_queue_settings_name_the_queues_the_template_creates():
    queue_names = main()["variables"]["queueNames"]["value"]
    settings = app_settings()
    for setting in (config.DSYNC_APPLY_QUEUE, config.TEAMS_TURNS_QUEUE, config.TEAMS_ALERTS_QUEUE,
                    config.HRMS_SYNC_QUEUE, config.HRMS_WRITEBACK_QUEUE):
        accessor = settings[setting.name]["operator"]
        assert accessor["type"] == "index_accessor"
        assert accessor["operands"]["operand_1"] == "queueNames"
        assert queue_names[int(accessor["operands"]["operand_2"])] == setting.default, setting.name


# --- roles ------------------------------------------------------------------------------------------------------


def role_assignments() -> list[tuple[str, str, str]]:
    """(role name, scope symbol, principal param) of every role assignment in roles.bicep."""
    roles = module("roles")
    role_ids = roles["variables"]["roleIds"]["value"]
    found = []
    for symbol, declaration in roles["resources"].items():
        if declaration["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        config_ = body(declaration)
        definition = config_["properties"]["roleDefinitionId"]["function"]
        assert definition["type"] == "subscription_resource_id", symbol
        role_key = definition["parameters"]["resource_name_1"]["operator"]["operands"]["operand_2"]
        role_id = role_ids[role_key]
        assert role_id not in BROAD_ROLES, f"{symbol}: {BROAD_ROLES.get(role_id)}"
        assert "scope" in config_, f"{symbol} would apply to the whole resource group"
        found.append((ROLES[role_id], config_["scope"], config_["properties"]["principalId"]))
    return found


def test_the_app_identity_has_each_role_its_azure_calls_need_and_no_other():
    app = {(role, scope) for role, scope, principal in role_assignments() if principal == "appPrincipalId"}
    assert app == set(APP_ROLES)
    scopes = {symbol: declaration["type"] for symbol, declaration in module("roles")["resources"].items()
              if declaration.get("existing")}
    assert scopes == {"storage": "Microsoft.Storage/storageAccounts", "vault": "Microsoft.KeyVault/vaults",
                      "insights": "Microsoft.Insights/components"}
    principal = body(main()["modules"]["roles"])["params"]["appPrincipalId"]
    assert principal["operator"]["operands"]["operand_1"] == "identity"


def test_every_azure_sdk_the_code_imports_has_its_role():
    imported = set()
    for path in [*(PROJECT_ROOT / "shared").rglob("*.py"), *(PROJECT_ROOT / "functions").rglob("*.py"),
                 PROJECT_ROOT / "function_app.py"]:
        imported |= set(re.findall(r"^\s*(?:from|import) (azure(?:\.\w+)+)", text_of(path), re.MULTILINE))
    unknown = {name for name in imported if not any(name == sdk or name.startswith(sdk + ".") for sdk in AZURE_SDKS)}
    assert unknown == set(), "an Azure SDK without a known role: add its role to roles.bicep and AZURE_SDKS"
    app_roles = {role for role, _ in APP_ROLES}
    assert {role for role in AZURE_SDKS.values() if role} <= app_roles


def test_ops_get_only_what_the_guide_has_them_do():
    ops = {(role, scope) for role, scope, principal in role_assignments() if principal == "opsGroupObjectId"}
    assert ops == {("Key Vault Secrets Officer", "vault"), ("Storage Queue Data Contributor", "storage")}


# --- secrets in parameters ------------------------------------------------------------------------------------

SECRET_NAME = re.compile(r"password|secret|apikey|api_key|token|connectionstring|key$", re.IGNORECASE)


def _is_secure(declaration: dict[str, Any]) -> bool:
    return any(decorator["type"] == "secure" for decorator in declaration.get("decorators", []))


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: str(path.relative_to(BICEP)))
def test_no_plain_text_secret_parameter(path: Path):
    document = load(path)
    for name, declaration in document.get("parameters", {}).items():
        if SECRET_NAME.search(name) and not name.endswith(("Id", "Name")):
            assert _is_secure(declaration), f"{name} looks secret but is not @secure()"
        if _is_secure(declaration):
            assert declaration["default"] in (None, ""), f"{name} has a default value"
    secure = {name for name, declaration in document.get("parameters", {}).items() if _is_secure(declaration)}
    for name, output in document.get("outputs", {}).items():
        assert secure.isdisjoint(walk(output["value"])), f"output {name} exposes a secure parameter"


def test_the_secure_parameters_reach_key_vault_only():
    secure = {name for name, declaration in main()["parameters"].items() if _is_secure(declaration)}
    assert secure == {"workosApiKey", "workosWebhookSecret", "scimCursorSecret", "botAppPassword"}
    for name, declaration in main()["modules"].items():
        passed = {key for key, value in body(declaration)["params"].items() if secure & set(walk(value))}
        assert not passed or name == "keyVault", f"module {name} is given {passed}"


# --- parameter files --------------------------------------------------------------------------------------------

BICEP_TYPES = {"string": str, "int": int, "bool": bool, "array": list, "object": dict}


@pytest.mark.parametrize("path", PARAMETER_FILES, ids=lambda path: path.name)
def test_parameter_files_fit_the_template_and_hold_no_secret(path: Path):
    values = {name: entry["value"] for name, entry in json.loads(text_of(path))["parameters"].items()}
    declared = main()["parameters"]
    assert set(values) <= set(declared), "unknown parameters"
    required = {name for name, declaration in declared.items() if declaration["default"] is None}
    assert required <= set(values), "required parameters missing"
    for name, value in values.items():
        declaration = declared[name]
        assert not _is_secure(declaration), f"{name} is a secret: never in a parameters file"
        assert type(value) is BICEP_TYPES[declaration["type"]], name
        placeholder = isinstance(value, str) and value.startswith("<") and value.endswith(">")
        for decorator in declaration["decorators"]:
            if decorator["type"] == "allowed":
                assert value in decorator["argument"], name
            if decorator["type"] == "min_value":
                assert value >= decorator["argument"], name
            if decorator["type"] == "max_value":
                assert value <= decorator["argument"], name
            if decorator["type"] in ("min_length", "max_length") and not placeholder:
                bound = decorator["argument"]
                assert (len(value) >= bound) if decorator["type"] == "min_length" else (len(value) <= bound), name


def test_both_environments_exist_and_prod_is_the_resilient_one():
    files = {path.stem: json.loads(text_of(path))["parameters"] for path in PARAMETER_FILES}
    assert set(files) == {"dev", "prod"}
    prod = {name: entry["value"] for name, entry in files["prod"].items()}
    assert prod["postgresHighAvailability"] == "ZoneRedundant"
    assert prod["postgresGeoRedundantBackup"] is True
    assert prod["networkMode"] == "private"
    assert prod["alwaysReadyHttpInstances"] >= 1


# --- Postgres and the PgBouncer arithmetic ---------------------------------------------------------------------


def test_postgres_is_entra_only_with_the_ops_group_as_administrator_and_pgbouncer_on():
    postgres = module("postgres")
    server = resource(postgres, "server")
    assert server["properties"]["version"] == "16"
    assert server["properties"]["authConfig"]["passwordAuth"] == "Disabled"
    assert server["properties"]["authConfig"]["activeDirectoryAuth"] == "Enabled"
    assert "administratorLogin" not in server["properties"]
    administrator = resource(postgres, "administrator")
    assert (administrator["name"], administrator["properties"]["principalType"]) == ("opsGroupObjectId", "Group")
    parameters = {entry["name"]: entry["value"] for entry in postgres["variables"]["serverParameters"]["value"]}
    assert parameters["pgbouncer.enabled"] == "true"
    assert parameters["pgbouncer.pool_mode"] == "TRANSACTION"
    settings = app_settings()
    assert (settings["POSTGRES_PORT"], settings["POSTGRES_DIRECT_PORT"]) == ("6432", "5432")
    assert settings["POSTGRES_USER"] == "identityName", "the app logs in as its own identity, not as ops"
    assert body(main()["modules"]["postgres"])["params"]["opsGroupObjectId"] == "opsGroupObjectId"


def pgbouncer_figures(values: dict[str, Any]) -> dict[str, int]:
    """modules/postgres.bicep's arithmetic, for one parameter file (main.bicep's defaults where it says nothing)."""
    defaults = {name: declaration["default"] for name, declaration in main()["parameters"].items()}
    size = module("postgres")["variables"]["sizes"]["value"][values.get("postgresSkuName",
                                                                        defaults["postgresSkuName"])]
    instances = values.get("maximumInstanceCount", defaults["maximumInstanceCount"])
    pool = values.get("dbPoolMaxSize", defaults["dbPoolMaxSize"])
    clients = instances * 2 * pool
    return {"instances": instances, "pool": pool, "clients": clients, "max_client_conn": 2 * clients,
            "max_connections": size["maxConnections"], "vcores": size["vCores"],
            "default_pool_size": min(clients, (size["maxConnections"] - 30) // 2, 25 * size["vCores"])}


def test_the_pgbouncer_arithmetic_in_the_module_is_the_one_the_guide_explains():
    source = re.sub(r"\s+", " ", text_of(MODULES / "postgres.bicep"))
    assert "var clientConnections = maximumInstanceCount * 2 * dbPoolMaxSize" in source
    assert "var maxClientConn = 2 * clientConnections" in source
    assert "var serverBudget = size.maxConnections - 30" in source
    assert "var defaultPoolSize = min(clientConnections, serverBudget / 2, 25 * size.vCores)" in source
    assert int(config.DB_POOL_MAX_SIZE.default) == main()["parameters"]["dbPoolMaxSize"]["default"]
    assert "two pools (sync and async)" in README


@pytest.mark.parametrize("path", PARAMETER_FILES, ids=lambda path: path.name)
def test_pgbouncer_pools_fit_the_server_for_each_environment_and_the_readme_says_so(path: Path):
    values = {name: entry["value"] for name, entry in json.loads(text_of(path))["parameters"].items()}
    figures = pgbouncer_figures(values)
    # The app's pool and the ops group's, Azure's 15 and 15 direct connections fit the server.
    assert 2 * figures["default_pool_size"] + 30 <= figures["max_connections"]
    assert figures["clients"] <= figures["max_client_conn"] <= 50_000
    row = (f"| {path.stem} | {figures['instances']} | {figures['instances']} × 2 × {figures['pool']} = "
           f"{figures['clients']} | {figures['max_client_conn']} | {values['postgresSkuName']} "
           f"({figures['max_connections']}) | min({figures['clients']}, {(figures['max_connections'] - 30) // 2}, "
           f"{25 * figures['vcores']}) = {figures['default_pool_size']} |")
    assert row in README


# --- the Function App, storage, monitoring, bot, alerts, outputs ---------------------------------------------


def test_the_function_app_runs_on_flex_consumption_with_the_user_assigned_identity():
    functionapp = module("functionapp")
    plan = resource(functionapp, "plan")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    site = resource(functionapp, "site")
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    assert site["properties"]["httpsOnly"] is True
    flex = site["properties"]["functionAppConfig"]
    assert flex["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert flex["scaleAndConcurrency"]["maximumInstanceCount"] == "maximumInstanceCount"
    assert flex["scaleAndConcurrency"]["instanceMemoryMB"] == "instanceMemoryMB"
    assert "alwaysReadyHttpInstances" in set(walk(flex["scaleAndConcurrency"]["alwaysReady"]))
    assert app_settings()["AZURE_CLIENT_ID"] == "identityClientId"
    # Its roles exist before it starts: Key Vault references and the deployment container are read with them.
    assert "roles" in body(main()["modules"]["functionApp"])["dependsOn"]


def test_storage_takes_no_shared_keys_and_keeps_the_deployment_container():
    storage = module("storage")
    account = resource(storage, "account")["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert resource(storage, "deploymentContainer")["properties"]["publicAccess"] == "None"


def test_telemetry_is_entra_authenticated():
    assert resource(module("monitoring"), "insights")["properties"]["DisableLocalAuth"] is True
    assert app_settings()["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identityClientId};Authorization=AAD")


def test_key_vault_uses_rbac():
    vault = resource(module("keyvault"), "vault")["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enablePurgeProtection"] is True


def test_the_bot_and_the_outputs_point_at_routes_the_app_serves():
    routes = {name: trigger.get("route") for name, trigger in indexed_triggers().items()}
    outputs = {name: output["value"] for name, output in main()["outputs"].items()}
    base = "${functionApp.outputs.publicBaseUrl}/api/"
    assert outputs["ssoCallbackUrl"] == base + routes["auth_callback"]
    assert outputs["workosWebhookUrl"] == base + routes["workos_webhook"]
    assert outputs["botEndpoint"] == base + routes["teams_messages"]
    assert routes["scim"].startswith("scim/v2/{tenant}/")
    assert outputs["scimBaseUrl"] == base + "scim/v2"
    assert body(main()["modules"]["bot"])["params"]["endpoint"] == outputs["botEndpoint"]
    assert {"functionAppName", "ssoCallbackUrl", "scimBaseUrl", "botEndpoint"} <= set(outputs)


def test_the_bot_has_the_teams_channel_and_either_identity_type():
    bot = module("bot")
    assert resource(bot, "bot")["kind"] == "azurebot"
    assert resource(bot, "teams")["properties"]["channelName"] == "MsTeamsChannel"
    allowed = next(decorator["argument"] for decorator in main()["parameters"]["botAppType"]["decorators"]
                   if decorator["type"] == "allowed")
    assert set(allowed) == set(config.BOT_APP_TYPES)


def test_the_public_base_url_is_the_custom_domain_when_there_is_one():
    functionapp = module("functionapp")
    public = functionapp["variables"]["publicBaseUrl"]["value"]["operator"]
    assert public["type"] == "conditional"
    assert public["operands"]["false_value"] == "https://${customDomain}"
    assert app_settings()["PUBLIC_BASE_URL"] == "publicBaseUrl"


def test_alerts_cover_poison_queues_failed_hrms_runs_and_5xx():
    rules = {rule["name"]: rule["query"] for rule in module("alerts")["variables"]["rules"]["value"]}
    assert set(rules) == {"poison-queue-messages", "hrms-run-failed", "http-5xx-rate"}
    assert "Moving message to queue" in rules["poison-queue-messages"]
    assert "-poison" in rules["poison-queue-messages"]
    # The marker the HRMS alert looks for is the alert id the code logs when a run fails.
    assert '"hrms-failed-"' in rules["hrms-run-failed"]
    assert 'f"hrms-failed-{run.id}"' in text_of(PROJECT_ROOT / "shared" / "hrms" / "engine.py")
    assert "resultCode" in rules["http-5xx-rate"]
    assert json.loads(text_of(PROJECT_ROOT / "host.json"))["extensions"]["queues"]["maxDequeueCount"] == 5


# --- the deployment guide ---------------------------------------------------------------------------------------

GUIDE = README[README.index("## Deploying"):]


def test_the_guide_names_only_outputs_and_parameters_the_template_has():
    outputs, parameters = set(main()["outputs"]), set(main()["parameters"])
    said = set(re.findall(r"`([a-z][A-Za-z0-9]+)`", GUIDE))
    template_like = {word for word in said if re.search(r"[A-Z]", word)}
    unknown = template_like - outputs - parameters - {name for name in config.SETTINGS}
    assert unknown == set()
    assert outputs - {"pgbouncer"} <= said | {"appIdentityPrincipalId", "appIdentityName"}


def test_every_cli_command_in_the_guide_parses():
    from shared.cli import build_parser

    commands = re.findall(r"python -m shared\.cli (.+?)(?:`|$)", GUIDE, re.MULTILINE)
    assert len(commands) >= 5
    for command in commands:
        arguments = shlex.split(re.sub(r"<[^>]+>", "placeholder", command))
        build_parser().parse_args(arguments)


def test_the_guide_covers_every_step_of_a_first_deployment():
    for step in ("az deployment group create", "pgaadauth_create_principal", "db app-role", "migrate",
                 "func azure functionapp publish <functionAppName> --python", "hash-checking mode",
                 "az keyvault secret set", "ssoCallbackUrl", "workosWebhookUrl", "make teams-package",
                 "scim-token create", "### 9. Rolling back", "### PgBouncer arithmetic", "private mode"):
        assert step in GUIDE, step


# --- checkov ----------------------------------------------------------------------------------------------------


def test_checkov_passes_and_every_skipped_check_is_justified():
    result = run_checkov(BICEP)
    assert result.parsing_errors == []
    assert result.failed == [], describe(result.failed)
    assert result.resource_count >= 30
    for check in result.skipped:
        reason = (check.get("suppress_comment") or "").strip()
        assert len(reason) >= 30, f"{check['check_id']} on {check['resource']} is skipped without a reason"
