# snapshop: `make demo` (install, model, ingest, serve) and `make test` (install, lint, types, tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= data
HOST ?= 127.0.0.1
PORT ?= 8000
# The dev catalog sits beside the repo; any folder with products.csv + images/ works.
CATALOG ?= $(if $(wildcard ../shared/catalog/products.csv),../shared/catalog,)
# Until a trained default model exists, the demo exports a random-init ViT-B-32 (see README).
DEMO_ARCH ?= ViT-B-32
MODEL ?= $(DATA_DIR)/models/default
SNAPSHOP := SNAPSHOP_DATA_DIR=$(DATA_DIR) SNAPSHOP_MODEL=$(MODEL) $(BIN)/snapshop

.PHONY: install lint typecheck test demo model ingest serve clean

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

test: lint typecheck
	$(BIN)/pytest -q

model: install
	@if [ -f "$(MODEL)/manifest.json" ]; then echo "model bundle: $(MODEL)"; else \
	  $(BIN)/snapshop model export --arch $(DEMO_ARCH) --pretrained none --out $(MODEL) \
	    $(if $(CATALOG),--parity-images $(CATALOG)/images,); fi

ingest: model
	@if [ -z "$(CATALOG)" ]; then \
	  echo "make demo: no catalog found at ../shared/catalog;" \
	       "run: make demo CATALOG=/path/to/catalog  (a folder with products.csv and images/)"; \
	  exit 2; fi
	$(SNAPSHOP) ingest $(CATALOG)

serve: install
	$(SNAPSHOP) serve --host $(HOST) --port $(PORT)

demo: ingest serve

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
