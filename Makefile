# TRADEOS — make up (run the system), make test (run the suite), make install (only the venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
# Worker processes for the non-fault pass (pytest-xdist, one test file per worker at a time; 0 = all in this
# process, the default until the pass is shown to be faster and stable on two workers). The fault pass stays in one
# process: it kills servers and times halts under full load.
TEST_WORKERS ?= 0

.PHONY: install install-test up test test-faults lint bench bench-peers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

up: install
	$(BIN)/tradeos up $(ARGS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy live analytics api flows

test: install-test
	bash tests/ensure_services.sh
	@# The /docs browser tests drive Debian's chromium (Playwright downloads no browser of its own).
	@command -v chromium >/dev/null || { if [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else echo "chromium is missing and this is not root: 'sudo apt-get install -y chromium' (the browser tests skip)"; fi; }
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest -q -m "not faults" -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)
	$(BIN)/python -m pytest -q -m faults $(PYTEST_ARGS)

test-faults: install-test
	bash tests/ensure_services.sh
	$(BIN)/python -m pytest -q -m faults $(PYTEST_ARGS)

bench: install-test
	bash tests/ensure_services.sh
	$(BIN)/python bench/run.py

# Only the peers (bench/peers.py; `make bench` runs them too): their figures replace those in bench/results.json.
bench-peers: install-test
	bash tests/ensure_services.sh
	$(BIN)/python bench/run.py --only peers.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
