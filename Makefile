# Everyday commands. `make test` is what CI runs (through .ci/run).

# The interpreter that makes the virtual environment: python3.11 where present, else python3.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Re-run the installs only when the dependencies change.
STAMP := $(VENV)/.installed-from-pyproject
# torch is installed on its own, first: left to the resolver, `torch>=2.2` pulls a CUDA build of
# several GB. 2.13.0 is the CPU build pip finds on the project's machines; elsewhere add e.g.
# TORCH_PIP_ARGS='--index-url https://download.pytorch.org/whl/cpu' for a CPU build.
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
DEMO_ARGS ?=

.PHONY: venv test lint protos demo clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { test -n "$(PYTHON)" || { echo "need python3.11 or python3" >&2; exit 1; }; \
		echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH_PIP_ARGS) '$(TORCH_SPEC)'
	$(BIN)/python -m pip install -e '.[dev]'
	@touch $@

test: venv
	$(BIN)/ruff check . && $(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check .

protos: venv
	$(BIN)/python scripts/gen_protos.py

demo: venv
	$(BIN)/interest-server demo $(DEMO_ARGS)

clean-venv:
	rm -rf $(VENV)
