# Every target sets itself up: on a fresh machine `make run` and `make test` are all you need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 19800
DATA_DIR ?= ./var
# `make run` and `make up` do not contact AI-Horde unless asked: make up HORDE_URL=https://aihorde.net/api/
HORDE_URL ?= off
# Optional, for `run` and `up`: SEED_DIR (legacy data imported into an empty DATA_DIR; default the
# bundled sample) and AUTH_FILE (keys, users and roles instead of AI-Horde; `run` writes and uses
# DATA_DIR/dev-auth.json when it is not given). For `up` with AI-Horde: REQUESTOR_IDS and
# APPROVER_IDS (AI-Horde user ids: 1001,1002 or ["1001", "1002"]).
SEED_DIR ?=
AUTH_FILE ?=
# `make up GITHUB_SYNC=watch` also runs the GitHub sync (settings: HMR_GITHUB_SYNC_* in the
# environment, docs/operators.md); GITHUB_SYNC=dry-run needs no credentials. Off by default.
GITHUB_SYNC ?=
REQUESTOR_IDS ?=
APPROVER_IDS ?=

.PHONY: setup run test lint bench up down clean

# the project's own modules are installed editable, so pip compiles none of them, and where
# PYTHONDONTWRITEBYTECODE is set no import writes their bytecode either: every `hmr` start would
# compile them again (300 ms of `hmr all`'s). compileall only rewrites what changed. (The image
# installs wheels, which pip compiles.)
setup: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 services shared libs > /dev/null

$(STAMP): pyproject.toml libs/records/pyproject.toml libs/replica/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e libs/records -e libs/replica -e '.[test]'
	touch $(STAMP)

# a taken port stops `run` before it prints keys or seeds anything
run: setup
	@$(BIN)/python deploy/local.py check --port $(PORT)
	$(if $(AUTH_FILE),,$(BIN)/hmr dev-auth $(DATA_DIR)/dev-auth.json)
	$(BIN)/hmr all --host 127.0.0.1 --port $(PORT) --data-dir $(DATA_DIR) --auth-file $(or $(AUTH_FILE),$(DATA_DIR)/dev-auth.json) $(if $(SEED_DIR),--seed-dir $(SEED_DIR)) --horde-url $(HORDE_URL) --log-format text

test: setup lint
	deploy/ensure-tools.sh nginx curl jq sqlite3  # end-to-end and doc tests run these for real
	$(BIN)/pytest -q

# the in-process tests (not e2e, not subprocess) on every core, with tmp_path on tmpfs where there
# is one (SQLite's and the snapshot store's fsyncs cost nothing there): the quick loop while
# editing, under a minute on 2 cores. `make test` (everything, on disk) stays the gate.
.PHONY: test-fast
test-fast: setup
	$(if $(wildcard /dev/shm/.),TMPDIR=/dev/shm) $(BIN)/pytest -q -n auto -m "not e2e and not subprocess"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs/records/horde_model_records libs/replica/horde_model_replica shared services

bench: setup
	deploy/ensure-tools.sh nginx wrk
	$(BIN)/python -m bench

# the production topology on this machine: nginx, two read replicas, write queue, stats
up: setup
	deploy/ensure-tools.sh nginx
	$(BIN)/python deploy/local.py up --port $(PORT) --data-dir $(DATA_DIR) --horde-url $(HORDE_URL) $(if $(SEED_DIR),--seed-dir $(SEED_DIR)) $(if $(AUTH_FILE),--auth-file $(AUTH_FILE)) $(if $(REQUESTOR_IDS),--requestor-ids '$(REQUESTOR_IDS)') $(if $(APPROVER_IDS),--approver-ids '$(APPROVER_IDS)') $(if $(GITHUB_SYNC),--github-sync $(GITHUB_SYNC))

down:
	$(BIN)/python deploy/local.py down --data-dir $(DATA_DIR)

clean:
	rm -rf $(VENV) var
