# The platform's front door. `make up` brings the local platform up, `make test` runs the
# linters and the tests. Everything runs from the virtualenv built from requirements.lock.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
INVENTORY ?= inventories/local
PYTEST_ARGS ?=

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Outside the checkout, shared by every clone, keyed by content: uv itself (by its pinned
# version) and uv's package cache (content-addressed wheels). A fresh clone's venv is then
# linked from the cache in seconds instead of unpacked by pip in two minutes.
CACHE_DIR  ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/valuecanvas
UV_VERSION := $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' requirements.lock)
UV_HOME    := $(CACHE_DIR)/uv-$(UV_VERSION)
UV         := $(UV_HOME)/bin/uv
export UV_CACHE_DIR ?= $(CACHE_DIR)/uv-cache

$(UV):
	@# uv, installed by pip from the lock's own pinned hashes (the uv binary is self-contained).
	rm -rf $(UV_HOME) && $(PYTHON) -m venv $(UV_HOME)
	awk '/^uv==/ {on=1; print; next} on && /^ +--hash/ {print; next} {on=0}' requirements.lock > $(UV_HOME)/requirements.txt
	$(UV_HOME)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(UV_HOME)/requirements.txt

$(STAMP): requirements.lock pyproject.toml | $(UV)
	@test -x $(BIN)/python || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --python $(BIN)/python --require-hashes --no-deps -r requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	@# Byte-compile once: with PYTHONDONTWRITEBYTECODE set (as on the CI machine) nothing is
	@# cached otherwise, and every Ansible module run would recompile boto3 (1 s of 2). Of
	@# the ansible package's collections, only those the playbooks use (14 s saved).
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null \
		-x 'ansible_collections/(?!amazon/|community/aws/|community/general/|community/postgresql/|kubernetes/core/|ansible/utils/)'
	@touch $@

venv: $(STAMP) ## Create the virtualenv from requirements.lock

up: $(STAMP) ## Bring the platform up (inventory: INVENTORY, default local)
	$(BIN)/ansible-playbook -i $(INVENTORY) site.yml

down: $(STAMP) ## Stop what `make up` started (data is kept)
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/teardown.yml

STATE_DIR ?= .state

SUPERVISOR_CONF := $(STATE_DIR)/supervisor/supervisord.conf

status: $(STAMP) ## Show the local programs and their states
	@if $(BIN)/supervisorctl -c $(SUPERVISOR_CONF) pid 2>/dev/null | grep -qE '^[0-9]+$$'; then \
		$(BIN)/supervisorctl -c $(SUPERVISOR_CONF) status; \
	else \
		echo "The local platform is down (no supervisord answers in $(STATE_DIR)/): make up starts it."; \
	fi

doctor: $(STAMP) ## Check the local database: reachable, migrated, RLS forced, privileges on purpose, roles present
	@test -f $(STATE_DIR)/secrets/migrate.env || { \
		echo "The local platform was never brought up here ($(STATE_DIR)/ has no settings): make up"; exit 1; }
	@$(BIN)/valuecanvas doctor --env-file $(STATE_DIR)/secrets/migrate.env

EMULATOR_PORT ?= 5000
KUBE_PORT ?= 6443

emulator: $(STAMP) ## Start the local AWS emulator (moto, 127.0.0.1:5000) and Kubernetes API stand-in (:6443) for the sandbox
	@$(BIN)/python -m valuecanvas.localdev.emulator --port $(EMULATOR_PORT) --kube-port $(KUBE_PORT) --state-dir $(STATE_DIR)

emulator-stop: ## Stop the local AWS emulator and the Kubernetes API stand-in
	@for name in emulator kube-standin; do \
		if test -f $(STATE_DIR)/$$name.pid; then kill $$(cat $(STATE_DIR)/$$name.pid) 2>/dev/null; rm $(STATE_DIR)/$$name.pid; \
		else echo "no $$name started by make"; fi; \
	done

COST_INVENTORY = $(if $(filter inventories/local,$(INVENTORY)),inventories/production,$(INVENTORY))

cost: $(STAMP) ## Print the monthly cost table of an environment (INVENTORY=inventories/production)
	@out=$$(mktemp -d); \
	if $(BIN)/ansible-playbook -i $(COST_INVENTORY) playbooks/cost.yml -e cost_table_file=$$out/table.txt > $$out/log 2>&1; then \
		cat $$out/table.txt; rm -rf $$out; \
	else \
		cat $$out/log; rm -rf $$out; exit 1; \
	fi

lint: $(STAMP) ## ruff, mypy, yamllint, ansible-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/yamllint --strict .
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/ansible-lint --profile production

test: lint ## Lint, then run the tests (real Postgres and Redis, started by the tests)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP) ## Measure the LLM proxy's overhead (a few minutes; see docs/benchmarks.md)
	$(BIN)/python -m tests.benchmarks.llm_proxy_overhead

bench-gateway: $(STAMP) ## Measure the latency and CPU the gateway adds at 200 req/s (a few minutes; see docs/benchmarks.md)
	$(BIN)/python -m tests.benchmarks.gateway

bench-orchestrator: $(STAMP) ## Measure the orchestrator's overhead per step and runs per second (a few minutes; see docs/benchmarks.md)
	$(BIN)/python -m tests.benchmarks.orchestrator

bench-rls: $(STAMP) ## Measure row-level security on 100k and 1M rows per table (a few minutes; see docs/benchmarks.md)
	$(BIN)/python -m tests.benchmarks.rls

IMAGE ?= localhost/valuecanvas:dev

image: $(STAMP) ## Build the services' image with buildah (IMAGE=..., BASE_IMAGE=name@sha256:...; default a debootstrap base, made once)
	@IMAGE=$(IMAGE) CACHE_DIR=$(CACHE_DIR) UV=$(UV) UV_PIP=$(UV_HOME)/bin/pip tools/build_image.sh

ENV ?= production
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CRD_MODULES   := tools/crd-validate/node_modules/.installed

$(CHECKOV_STAMP): tools/checkov/requirements.lock | $(UV)
	@# checkov in its own virtualenv: its pins (packaging, networkx, ...) clash with the tools'.
	@test -x $(CHECKOV_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(CHECKOV_VENV)
	$(UV) pip install --quiet --python $(CHECKOV_VENV)/bin/python --require-hashes --no-deps -r tools/checkov/requirements.lock
	@touch $@

$(CRD_MODULES): tools/crd-validate/package-lock.json
	cd tools/crd-validate && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

crd-validators: $(CRD_MODULES)
validators: $(CHECKOV_STAMP) $(CRD_MODULES)

render: $(STAMP) ## Lint every chart and render it for ENV (production, staging) into build/rendered/ENV/
	$(BIN)/python tools/render.py $(ENV) --lint

validate: render validators ## Render ENV, then check every object (Kubernetes 1.28 schemas, CRDs, checkov)
	$(BIN)/python tools/validate_rendered.py $(ENV)

role-docs: $(STAMP) ## Regenerate each role's README.md from its argument spec and defaults
	$(BIN)/python tools/role_docs.py

types: $(STAMP) ## Regenerate the typed models from a migrated database
	$(BIN)/valuecanvas gen-types --scratch

lock: $(STAMP) ## Re-pin every Python dependency into requirements.lock (and the image's requirements.runtime.lock)
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes --no-header -o requirements.lock
	@# The services' own dependencies only (what the container image installs), at the very
	@# versions of the full lock.
	$(UV) pip compile pyproject.toml --python-version 3.11 --generate-hashes --no-header \
		-c requirements.lock -o requirements.runtime.lock

clean: ## Remove the virtualenvs (not the platform's data: see `make down` and .state/)
	rm -rf $(VENV) $(CHECKOV_VENV) tools/crd-validate/node_modules

.PHONY: help venv up down status doctor emulator emulator-stop cost lint test bench bench-gateway bench-orchestrator bench-rls image render validate validators crd-validators role-docs types lock clean
