# RagPlatform — `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch lies on these machines' disk; an unpinned torch downloads a CUDA build.
TORCH := torch==2.13.0
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
# pip on these machines warns once per package about an absent local index: not worth reading.
PIP_NOISE := is ignored: it is neither a file nor a directory
PROTOS := $(wildcard protos/ragplatform/v1/*.proto)

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q $(FIND_LINKS) $(TORCH) 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	$(BIN)/pip install -q $(FIND_LINKS) -e '.[dev,local-embeddings]' 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	touch $@

install: $(VENV)/.installed ## Create .venv and install the project with dev tools and local embeddings

system-packages: ## Install PostgreSQL, PgBouncer and Redis (Debian packages) when missing
	bash .ci/install-system-packages.sh

protos: | $(BIN)/activate ## Regenerate services/ragplatform/v1 from protos/
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m grpc_tools.protoc -I protos \
	  --python_out=services --grpc_python_out=services \
	  --mypy_out=services --mypy_grpc_out=services $(PROTOS)

crds: install ## Regenerate the CRD (crds/ and the chart's copy) and docs/operator/reference.md from the spec models
	$(BIN)/python -m ragplatform_operator.crd_schema

lint: install ## ruff (lint + format check), mypy --strict, import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy services operator tests bench scripts
	$(BIN)/lint-imports

format: install ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install system-packages ## Run the whole test suite (installs what it needs first)
	$(BIN)/pytest -q

dev: install ## Run the whole platform on this machine (embedded backends; Ctrl-C stops it)
	$(BIN)/ragplatform dev

bench: install system-packages ## Run the benchmarks (prints figures; takes minutes)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

check: lint test ## Everything CI runs

.PHONY: help install system-packages protos crds lint format test dev bench check
