# dlq-operator: everyday commands. `make test` and `make demo` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PLATFORM := $(PY) hack/local_platform.py
PYTEST_ARGS ?=

.PHONY: help venv tools test unit integration e2e demo bench lint crds image platform-up platform-down platform-status clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## create the virtualenv with the project and its test/dev extras

tools: venv ## build the platform tools (cached outside the repo; the first run takes minutes)
	$(PLATFORM) build

test: tools ## run the whole suite: unit, then integration and e2e against a fresh local platform
	$(PY) -m pytest $(PYTEST_ARGS)

unit: venv ## pure-logic tests only (no platform)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: tools ## tests against the real Kafka broker and kube-apiserver
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

e2e: tools ## the operator as users run it
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

demo: tools ## bring the platform up and show the operator doing its job end to end
	$(PY) hack/demo.py

bench: tools ## benchmarks; each prints a ratio against a baseline measured in the same run
	@for b in $(filter-out bench/support.py,$(wildcard bench/*.py)); do echo "== $$b"; $(PY) $$b || exit 1; done

lint: venv ## ruff, mypy and the import layers
	$(VENV)/bin/ruff check operator tests bench hack
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

crds: venv ## regenerate crds/ and the chart's copy from the pydantic models
	$(PY) -m dlq_operator.api.crdgen
	$(PY) -m dlq_operator.api.crdgen --output charts/dlq-operator/crds

image: ## build the image from the Dockerfile with buildah (no Docker engine), as an OCI archive
	$(PYTHON) hack/image.py build

platform-up: tools ## start the local platform (prints the environment to use)
	$(PLATFORM) up

platform-down: venv ## stop the local platform and delete its data
	$(PLATFORM) down

platform-status: venv ## what runs and how much memory it holds
	$(PLATFORM) status

clean: ## remove the virtualenv and caches in the repo (the platform tools cache stays)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
