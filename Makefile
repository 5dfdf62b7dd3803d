# Two commands do everything on a fresh clone:
#   make demo   creates .venv, installs WitsKit and runs the main job on embedded defaults:
#               a simulated rig ingested into SQLite (in .witskit/ of this clone), served with
#               its dashboard at http://127.0.0.1:8080 (the generated admin password is printed
#               once; a restart prints the command that sets a new one)
#   make test   creates .venv, installs WitsKit with its test tools and runs lint, types and tests
# Versions come from requirements.lock (regenerate with `make lock`).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo tour test lint typecheck pytest bench lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $@

# The demo keeps its database, spool and keys in this clone (.witskit/, git-ignored), not in the
# per-user data directory every clone shares; WITS_DATA_DIR (environment) overrides it.
DEMO_DATA ?= $(CURDIR)/.witskit
DEMO_ARGS ?=

demo: $(STAMP)
	WITS_DATA_DIR=$${WITS_DATA_DIR:-$(DEMO_DATA)} WITS_LOG_FORMAT=$${WITS_LOG_FORMAT:-console} \
		$(BIN)/witskit run $(DEMO_ARGS)

tour: $(STAMP)
	$(BIN)/witskit demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/bench_decode.py
	$(BIN)/python bench/bench_listener.py
	$(BIN)/python bench/bench_storage.py
	$(BIN)/python bench/bench_live_pg.py
	$(BIN)/python bench/bench_service.py
	$(BIN)/python bench/bench_cli.py
	$(BIN)/python bench/bench_faults.py
	$(BIN)/python bench/bench_body_limit.py

lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --all-extras --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bench/out
