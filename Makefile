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

.PHONY: venv test lint protos config-docs demo clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { test -n "$(PYTHON)" || { echo "need python3.11 or python3" >&2; exit 1; }; \
		echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH_PIP_ARGS) '$(TORCH_SPEC)'
	$(BIN)/python -m pip install -e '.[dev,offline]'
	@touch $@

test: venv
	$(BIN)/ruff check . && $(BIN)/lint-imports && $(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check . && $(BIN)/lint-imports

protos: venv
	$(BIN)/python scripts/gen_protos.py

# docs/configuration.md from the Settings docstrings in server/interest_server/config.py.
config-docs: venv
	$(BIN)/python scripts/gen_config_docs.py

demo: venv
	$(BIN)/interest-server demo $(DEMO_ARGS)

clean-venv:
	rm -rf $(VENV)

# Dockerfile, compose and Kubernetes manifests, offline: hadolint, yamllint, and the Kubernetes
# schemas bundled in kubernetes-validate (strict: unknown fields fail). No Docker engine needed.
K8S_MANIFESTS := $(filter-out deploy/k8s/kustomization.yaml,$(wildcard deploy/k8s/*.yaml))

.PHONY: lint-deploy
lint-deploy: venv
	$(BIN)/hadolint Dockerfile
	$(BIN)/yamllint -c deploy/.yamllint.yaml deploy
	$(BIN)/kubernetes-validate --strict --quiet $(K8S_MANIFESTS)

# Other languages from protos/ with buf (docs/clients.md). buf comes from PyPI
# (buf-bin) into .venv; BUF=/path/to/buf uses another one. Generation plugins are all local:
# `make stubs-tools` installs the Debian ones (root), the TypeScript one comes with npm ci.
BUF_VERSION ?= 1.75.0
BUF ?= $(BIN)/buf
BUF_AGAINST ?=
TS_DIR := client/typescript

.PHONY: buf-lint buf-breaking stubs-other stubs-tools ts-client

$(BIN)/buf: | $(STAMP)
	$(BIN)/python -m pip install 'buf-bin==$(BUF_VERSION)'

buf-lint: $(BUF)
	$(BUF) lint
	$(BUF) format --diff --exit-code

# Breaking changes against the last release: BUF_AGAINST=<tag>, else the newest v* tag reachable
# from HEAD; no such tag yet: says so and passes. subdir=protos also reads tags without buf.yaml.
buf-breaking: $(BUF)
	@against="$(BUF_AGAINST)"; \
	if [ -z "$$against" ]; then against=$$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null || true); fi; \
	if [ -z "$$against" ]; then echo "buf-breaking: no release tag (v*) yet, nothing to compare against"; exit 0; fi; \
	echo "$(BUF) breaking --against .git#tag=$$against,subdir=protos"; \
	$(BUF) breaking --against ".git#tag=$$against,subdir=protos"

$(TS_DIR)/node_modules/.package-lock.json: $(TS_DIR)/package-lock.json
	cd $(TS_DIR) && npm ci --ignore-scripts --no-audit --no-fund

# Go, Java and TypeScript stubs into build/stubs/ (buf.gen.yaml), offline.
stubs-other: $(BUF) $(TS_DIR)/node_modules/.package-lock.json
	@missing=""; for tool in protoc protoc-gen-go protoc-gen-go-grpc grpc_java_plugin; do \
		command -v $$tool > /dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then echo "missing:$$missing (make stubs-tools, or see buf.gen.yaml)" >&2; exit 1; fi
	$(BUF) generate
	@echo "stubs written to build/stubs/go, build/stubs/java, build/stubs/ts"

stubs-tools:
	apt-get install -y --no-install-recommends protobuf-compiler protoc-gen-go protoc-gen-go-grpc \
		protobuf-compiler-grpc-java-plugin

# The Node client: install (lockfile), build and run its unit tests.
ts-client: $(TS_DIR)/node_modules/.package-lock.json
	cd $(TS_DIR) && npm test
