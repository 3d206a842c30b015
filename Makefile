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

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@# Byte-compile once: with PYTHONDONTWRITEBYTECODE set (as on the CI machine) nothing is
	@# cached otherwise, and every Ansible module run would recompile boto3 (1 s of 2).
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null
	@touch $@

venv: $(STAMP) ## Create the virtualenv from requirements.lock

up: $(STAMP) ## Bring the platform up (inventory: INVENTORY, default local)
	$(BIN)/ansible-playbook -i $(INVENTORY) site.yml

down: $(STAMP) ## Stop what `make up` started (data is kept)
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/teardown.yml

STATE_DIR ?= .state

status: $(STAMP) ## Show the local programs and their states
	@$(BIN)/supervisorctl -c $(STATE_DIR)/supervisor/supervisord.conf status

doctor: $(STAMP) ## Check the local database: reachable, migrated, RLS forced, roles present
	@$(BIN)/valuecanvas doctor --env-file $(STATE_DIR)/secrets/migrate.env

EMULATOR_PORT ?= 5000

emulator: $(STAMP) ## Start the local AWS emulator (moto) on 127.0.0.1:5000 for the sandbox inventory
	@mkdir -p $(STATE_DIR)
	@if $(BIN)/python -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $(EMULATOR_PORT))))"; then \
		echo "emulator already listening on 127.0.0.1:$(EMULATOR_PORT)"; \
	else \
		MOTO_IAM_LOAD_MANAGED_POLICIES=true nohup $(BIN)/moto_server -H 127.0.0.1 -p $(EMULATOR_PORT) > $(STATE_DIR)/emulator.log 2>&1 & echo $$! > $(STATE_DIR)/emulator.pid; \
		sleep 2; echo "emulator on http://127.0.0.1:$(EMULATOR_PORT) (in memory: stopping it forgets everything)"; \
	fi

emulator-stop: ## Stop the local AWS emulator
	@test -f $(STATE_DIR)/emulator.pid && kill $$(cat $(STATE_DIR)/emulator.pid) && rm $(STATE_DIR)/emulator.pid || echo "no emulator started by make"

cost: $(STAMP) ## Print the monthly cost table of an environment (INVENTORY=inventories/production)
	$(BIN)/ansible-playbook -i $(if $(filter inventories/local,$(INVENTORY)),inventories/production,$(INVENTORY)) playbooks/cost.yml

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

types: $(STAMP) ## Regenerate the typed models from a migrated database
	$(BIN)/valuecanvas gen-types --scratch

lock: ## Re-pin every Python dependency into requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes --no-header -o requirements.lock

clean: ## Remove the virtualenv (not the platform's data: see `make down` and .state/)
	rm -rf $(VENV)

.PHONY: help venv up down status doctor emulator emulator-stop cost lint test bench types lock clean
