# guichet — the two commands: `make run` (the product on SQLite) and `make test` (the whole CI).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test test-deps lint typecheck unit bench screenshots clean help

help:
	@echo "make run    install and run guichet on the embedded default (SQLite, ./var)"
	@echo "make test   install the test dependencies (Debian + PyPI) and run every check"
	@echo "make bench  gateway full chain vs a bare endpoint, same TLS setup"

$(BIN)/guichet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.dev: $(BIN)/guichet pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# The portal's State Design System, from npm (never a CDN), built into static assets.
ASSETS := src/guichet/portal/static/dsfr/dsfr.min.css

node_modules/.package-lock.json: package.json package-lock.json .dsfr.yml
	npm ci --no-audit --no-fund
	@touch $@

$(ASSETS): node_modules/.package-lock.json scripts/build-assets.sh
	scripts/build-assets.sh

run: $(BIN)/guichet $(ASSETS)
	$(BIN)/guichet run

test-deps:
	scripts/install-test-deps.sh

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/lint-imports

typecheck: $(VENV)/.dev
	$(BIN)/mypy src

unit: $(VENV)/.dev $(ASSETS)
	$(BIN)/pytest -n 2 --dist loadfile -q

test: test-deps $(VENV)/.dev lint typecheck unit

bench: $(BIN)/guichet
	$(BIN)/python -m bench.gateway

screenshots: $(VENV)/.dev $(ASSETS)
	GUICHET_SCREENSHOTS_DIR=docs/screenshots GUICHET_TEST_BACKENDS=sqlite \
	  $(BIN)/pytest -q tests/functional/test_portal_browser.py \
	  tests/functional/test_habilitation_journey.py tests/functional/test_franceconnect_journey.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .import_linter_cache node_modules \
	  src/guichet/portal/static/dsfr \
	  src/guichet/portal/static/htmx
