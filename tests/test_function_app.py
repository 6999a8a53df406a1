"""function_app.py: what it registers, and what importing it costs."""

from __future__ import annotations

import json
import subprocess

from tests.stack import PROJECT_ROOT, PYTHON, base_environment

HEAVY = ("workos", "botbuilder", "botframework", "msal", "azure.identity", "azure.storage", "azure.keyvault",
         "scim2_server", "scim2_models", "psycopg", "httpx", "aiohttp", "pydantic", "jwt")

INDEX_LIKE_THE_WORKER = f"""
import json, sys
import function_app
functions = []
for function in function_app.app.get_functions():
    bindings = [json.loads(raw) for raw in function.get_raw_bindings()]
    functions.append({{"name": function.get_function_name(), "bindings": bindings}})
heavy = {HEAVY!r}
loaded = sorted({{m for m in sys.modules for h in heavy if m == h or m.startswith(h + ".")}})
print(json.dumps({{"functions": functions, "loaded": loaded}}))
"""


def _index() -> dict:
    result = subprocess.run([PYTHON, "-c", INDEX_LIKE_THE_WORKER], env=base_environment(), cwd=PROJECT_ROOT,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_indexing_the_app_imports_no_heavy_module():
    index = _index()
    assert index["functions"], "the app registers functions"
    assert index["loaded"] == []


def test_every_http_function_is_anonymous_and_authenticates_in_code():
    triggers = [binding for function in _index()["functions"] for binding in function["bindings"]
                if binding["type"] == "httpTrigger"]
    assert triggers
    assert {trigger["authLevel"] for trigger in triggers} == {"ANONYMOUS"}


def test_health_is_served_at_its_documented_route():
    routes = {binding.get("route") for function in _index()["functions"] for binding in function["bindings"]}
    assert "health" in routes
