# The two commands: `make dev` and `make test`. Everything they need is installed from this
# repository's own files (requirements-dev.txt with hashes, package-lock.json).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
NODE_INSTALLED := node_modules/.installed
TOOLS := .venv-tools
# checkov has its own venv: its pins conflict with the app's. tests/infra runs it offline on bicep/.
CHECKOV_VENV := .venv-checkov
CHECKOV_INSTALLED := $(CHECKOV_VENV)/.installed
PIP_COMPILE := $(TOOLS)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links

.PHONY: dev services test bench lint teams-package requirements clean

$(INSTALLED): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed: make PYTHON=python3.11 ...")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt
	@touch $@

$(CHECKOV_INSTALLED): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-checkov.txt
	@touch $@

$(NODE_INSTALLED): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed (Node.js 20 or newer) for Azurite" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## make dev: embedded Postgres, Azurite, migrations, demo tenant, the app on http://127.0.0.1:7071
dev: $(INSTALLED) $(NODE_INSTALLED)
	$(BIN)/python -m local.dev

## make services: the same services without the host, for `func start` where Core Tools exist
services: $(INSTALLED) $(NODE_INSTALLED)
	$(BIN)/python -m local.dev --services-only

## make test: every test, against real Postgres and Azurite (started for the run unless
## DATABASE_URL / AzureWebJobsStorage point elsewhere). PYTEST_ARGS passes options through.
test: $(INSTALLED) $(NODE_INSTALLED) $(CHECKOV_INSTALLED)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests, which is a failure" >&2; fi; \
	exit $$status

## make bench: throughput and latency figures, printed as JSON
bench: $(INSTALLED) $(NODE_INSTALLED)
	@$(BIN)/python -m benchmarks

lint: $(INSTALLED)
	$(BIN)/ruff check .

## make teams-package: dist/teams-app.zip, the Teams app that customers' Teams admins upload (bot id, public
## URL, app id and version from MicrosoftAppId, PUBLIC_BASE_URL, TEAMS_APP_ID, TEAMS_APP_VERSION)
teams-package: $(INSTALLED)
	$(BIN)/python -m shared.teams.package --out dist/teams-app.zip

## make requirements: recompile requirements*.txt (with hashes) from requirements*.in
requirements:
	@test -x $(TOOLS)/bin/pip-compile || { $(PYTHON) -m venv $(TOOLS) && $(TOOLS)/bin/pip install --quiet pip-tools; }
	$(PIP_COMPILE) $(UPGRADE) -o requirements.txt requirements.in
	$(PIP_COMPILE) $(UPGRADE) -o requirements-dev.txt requirements-dev.in
	$(PIP_COMPILE) $(UPGRADE) -o requirements-checkov.txt requirements-checkov.in

clean:
	rm -rf $(VENV) $(TOOLS) $(CHECKOV_VENV) node_modules .pytest_cache .ruff_cache
