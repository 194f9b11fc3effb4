# cwl-archiver: every set-up step the README promises lives here.
#   make demo   build, start the local stack, archive a realistic log group, print what happened
#   make test   lint and the whole test suite, end-to-end scenarios included
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
STACK_DIR := .stack
CARGO ?= cargo

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV_STAMP): tests/emulator/requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3 is needed for the local emulator: install python3 (3.10+)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/emulator/requirements.txt
	@touch $@

.PHONY: venv
venv: $(VENV_STAMP) ## create the emulator's Python virtualenv (moto, pinned)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js 18+) is needed for asl-validator: install nodejs and npm"; exit 1; }
	npm ci --no-audit --no-fund --silent
	@touch $@

.PHONY: node-tools
node-tools: $(NODE_STAMP) ## install the npm tools (asl-validator)

.PHONY: build
build: ## build every crate
	$(CARGO) build --workspace --all-targets

.PHONY: lint
lint: $(NODE_STAMP) doc ## rustfmt, clippy, asl-validator and the library docs without warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	node_modules/.bin/asl-validator $(addprefix --json-path ,$(wildcard statemachine/*.asl.json))

.PHONY: test
test: $(VENV_STAMP) lint ## lint, then every test including the end-to-end scenarios
	$(CARGO) test --workspace

.PHONY: test-faults
test-faults: $(VENV_STAMP) ## the fault matrix alone (docs/reliability.md); also part of make test
	$(CARGO) test -p cwl-archiver-e2e --test faults_e2e

.PHONY: bench
bench: $(VENV_STAMP) ## benchmarks: batch packing (criterion) and scripted runs on the emulator; see BENCHMARKS.md
	$(CARGO) bench -p archiver --bench packing
	$(CARGO) build --release -p cwl-archiver-e2e --bin bench
	target/release/bench rebuild --events 100000 1000000
	target/release/bench group --streams 2000 20000

.PHONY: doc
doc: ## API documentation of the library
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps -p archiver

.PHONY: demo
demo: $(VENV_STAMP) ## archive a realistic log group on the local stack and print what happened
	$(CARGO) run --quiet -p cwl-archiver-e2e --bin demo

.PHONY: stack-up
stack-up: $(VENV_STAMP) ## run the local stack in the background and print how to reach it
	@if [ -f $(STACK_DIR)/pid ] && kill -0 "$$(cat $(STACK_DIR)/pid)" 2>/dev/null; then \
		echo "the local stack is already running (pid $$(cat $(STACK_DIR)/pid)); its environment:"; cat $(STACK_DIR)/env; exit 0; fi
	$(CARGO) build --quiet -p cwl-archiver-e2e --bin local-stack
	@mkdir -p $(STACK_DIR)
	@nohup target/debug/local-stack > $(STACK_DIR)/env 2> $(STACK_DIR)/log < /dev/null & echo $$! > $(STACK_DIR)/pid
	@for i in $$(seq 1 60); do grep -q CWL_ARCHIVER_STATE_MACHINE_ARN $(STACK_DIR)/env 2>/dev/null && break; \
		kill -0 "$$(cat $(STACK_DIR)/pid)" 2>/dev/null || { echo "the local stack failed to start:"; tail -20 $(STACK_DIR)/log; rm -f $(STACK_DIR)/pid; exit 1; }; sleep 0.5; done
	@echo "the local stack runs (pid $$(cat $(STACK_DIR)/pid)); to reach it:"; cat $(STACK_DIR)/env; echo "stop it with: make stack-down"

.PHONY: stack-down
stack-down: ## stop the local stack started by stack-up
	@if [ -f $(STACK_DIR)/pid ]; then kill -INT "$$(cat $(STACK_DIR)/pid)" 2>/dev/null || true; rm -f $(STACK_DIR)/pid $(STACK_DIR)/env; echo "local stack stopped"; \
	else echo "no local stack is running"; fi

.PHONY: clean
clean: ## remove build output, the virtualenv and npm tools
	$(CARGO) clean
	rm -rf $(VENV) node_modules $(STACK_DIR)
