# snapshop: `make demo` (install, model, ingest, serve) and `make test` (install, lint, types, tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= data
HOST ?= 127.0.0.1
PORT ?= 8000
# The console's admin key for the demo server (SNAPSHOP_ADMIN_KEY); set your own secret in production.
ADMIN_KEY ?= snapshop-demo-admin-key
# The dev catalog sits beside the repo; any folder with products.csv + images/ works.
CATALOG ?= $(if $(wildcard ../shared/catalog/products.csv),../shared/catalog,)
# Unset: `snapshop model ensure` trains (once, then cached) the default model on the catalog,
# with the catalog's shopper photos as extra pairs when it has them.
MODEL ?=
EXTRA_PAIRS ?= $(if $(CATALOG),$(wildcard $(CATALOG)/dev_queries/image_queries.csv),)
# Query files with known answers, stored as the query set `dev` for the PM console's evaluations.
DEV_QUERIES ?= $(if $(CATALOG),$(patsubst %/,%,$(dir $(wildcard $(CATALOG)/dev_queries/*_queries.csv))),)
SNAPSHOP := SNAPSHOP_DATA_DIR=$(DATA_DIR) $(if $(MODEL),SNAPSHOP_MODEL=$(MODEL) )$(BIN)/snapshop

# Browser tests drive Debian's chromium; it is installed with apt when missing (never downloaded
# by Playwright).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: install lint typecheck test demo catalog model ingest serve clean chromium screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[train,dev]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy app ingestion reranker

chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  echo "installing Debian's chromium for the browser tests (apt-get)"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; fi

test: lint typecheck chromium
	$(BIN)/pytest -q

# Regenerates the README's screenshots from the browser tests (real server, real Chromium).
screenshots: install chromium
	$(BIN)/pytest -q tests/frontend -k "first_row or slider_reorders"
	mkdir -p docs/screenshots
	cp test-artifacts/screenshots/readme-shopper-390.png docs/screenshots/shopper.png
	cp test-artifacts/screenshots/readme-console-1280.png docs/screenshots/console.png

catalog:
	@if [ -z "$(CATALOG)" ]; then \
	  echo "make demo: no catalog found at ../shared/catalog;" \
	       "run: make demo CATALOG=/path/to/catalog  (a folder with products.csv and images/)"; \
	  exit 2; fi

model: install catalog
	@if [ -n "$(MODEL)" ]; then echo "model bundle: $(MODEL)"; else \
	  $(SNAPSHOP) model ensure --catalog $(CATALOG) \
	    $(if $(EXTRA_PAIRS),--extra-pairs $(EXTRA_PAIRS),); fi

ingest: model
	$(SNAPSHOP) ingest --replace-model $(CATALOG)
	$(if $(DEV_QUERIES),$(SNAPSHOP) queryset add dev $(firstword $(DEV_QUERIES)),)

serve: install
	@echo "shopper page: http://$(HOST):$(PORT)/   console: http://$(HOST):$(PORT)/console (admin key: $(ADMIN_KEY))"
	SNAPSHOP_ADMIN_KEY=$(ADMIN_KEY) $(SNAPSHOP) serve --host $(HOST) --port $(PORT)

demo: ingest serve

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
