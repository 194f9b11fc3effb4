# cwl-archiver: every set-up step the README promises lives here.
#   make demo   build, start the local stack, archive a realistic log group, print what happened
#   make test   lint and the whole test suite, end-to-end scenarios included
#   make build  the four Lambdas, zipped for provided.al2023, and the cwl-archiver CLI; make deploy  SAM deploy
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# The lint tools for the SAM template, apart from the emulator's .venv (their
# pins clash with moto's) and from each other (checkov pins an older boto3).
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
# parliament, the offline IAM policy linter (infra/policy_lint.py).
PARLIAMENT_VENV := .venv-parliament
PARLIAMENT_STAMP := $(PARLIAMENT_VENV)/.installed
# cargo-lambda and the zig it links with, for make build.
TOOLS_VENV := .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed
TEMPLATE := infra/template.yaml
# Lambda architecture: arm64 (Graviton) unless ARCH=x86_64; the template's
# Architecture parameter must match: make deploy always passes ARCH, on the
# guided first deploy and on every later one.
ARCH ?= arm64
LAMBDAS := start-export check-export scan-stream rebuild-stream
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

# One rule per lint virtualenv: NAME, requirements file.
define lint_venv
$$($(1)_STAMP): $(2)
	@command -v $$(PYTHON) >/dev/null || { echo "Python 3 is needed for the template lint tools: install python3 (3.10+)"; exit 1; }
	$$(PYTHON) -m venv $$($(1)_VENV)
	$$($(1)_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(2)
	@touch $$@
endef
$(eval $(call lint_venv,SAM,infra/requirements-sam.txt))
$(eval $(call lint_venv,CHECKOV,infra/requirements-checkov.txt))
$(eval $(call lint_venv,PARLIAMENT,infra/requirements-parliament.txt))
$(eval $(call lint_venv,TOOLS,infra/requirements-build.txt))

.PHONY: lint-tools
lint-tools: ## install cfn-lint, the SAM CLI, checkov and parliament (pinned, in their own virtualenvs)
	@# All at once: most of a cold install is waiting on downloads.
	@$(MAKE) --no-print-directory -j3 $(SAM_STAMP) $(CHECKOV_STAMP) $(PARLIAMENT_STAMP)

CLI_OUT := target/release/cli

.PHONY: build-cli
build-cli: ## the cwl-archiver CLI (release) with its man page and shell completions, under target/release/
	$(CARGO) build --release -p cwl-archiver-cli
	@mkdir -p $(CLI_OUT)/completions
	target/release/cwl-archiver man > $(CLI_OUT)/cwl-archiver.1
	@for shell in bash zsh fish elvish powershell; do target/release/cwl-archiver completions $$shell > $(CLI_OUT)/completions/cwl-archiver.$$shell; done
	@echo "built target/release/cwl-archiver, $(CLI_OUT)/cwl-archiver.1 and $(CLI_OUT)/completions/"

.PHONY: build
build: $(TOOLS_STAMP) build-cli ## the four Lambdas for provided.al2023 (ARCH=arm64 or x86_64), zipped under target/lambda/, and the CLI
	@case "$(ARCH)" in arm64) target=aarch64-unknown-linux-gnu; flag=--arm64;; x86_64) target=x86_64-unknown-linux-gnu; flag=--x86-64;; \
		*) echo "ARCH must be arm64 or x86_64, not $(ARCH)"; exit 1;; esac; \
	if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$$target"; then \
		rustup target add "$$target" || { echo "the Rust standard library for $$target could not be installed;" \
			"build for this machine's architecture with: make build ARCH=x86_64 (and deploy with ARCH=x86_64)"; exit 1; }; fi; \
	PATH="$(CURDIR)/$(TOOLS_VENV)/bin:$$PATH" $(TOOLS_VENV)/bin/cargo-lambda lambda build --release $$flag --output-format zip $(addprefix -p ,$(LAMBDAS))
	@ls -l $(foreach f,$(LAMBDAS),target/lambda/$(f)/bootstrap.zip)

.PHONY: deploy
deploy: build $(SAM_STAMP) ## build, then sam deploy to your AWS account (guided the first time; see docs/deploy.md)
	@# sam deploy packages the zips of make build itself; the answers of the
	@# guided run are kept in infra/samconfig.toml for the next deploys.
	@# Architecture is always the ARCH the zips were built for: a command-line
	@# --parameter-overrides replaces the saved list whole, so the saved
	@# overrides are passed again with Architecture set to ARCH.
	cd infra && if [ -f samconfig.toml ]; then \
		overrides="$$(../$(SAM_VENV)/bin/python ../infra/deploy_overrides.py samconfig.toml $(ARCH))"; \
		eval "set -- $$overrides"; \
		SAM_CLI_TELEMETRY=0 ../$(SAM_VENV)/bin/sam deploy --template-file template.yaml --parameter-overrides "$$@"; \
	else \
		SAM_CLI_TELEMETRY=0 ../$(SAM_VENV)/bin/sam deploy --guided --template-file template.yaml \
			--capabilities CAPABILITY_IAM --parameter-overrides Architecture=$(ARCH); \
	fi

.PHONY: lint
lint: $(NODE_STAMP) lint-tools doc ## rustfmt, clippy, the mutations' texts, asl-validator, library docs without warnings, cfn-lint, sam validate, checkov and the IAM policy lint
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(PYTHON) tests/mutations/mutate.py --check
	node_modules/.bin/asl-validator $(addprefix --json-path ,$(wildcard statemachine/*.asl.json))
	$(SAM_VENV)/bin/cfn-lint $(TEMPLATE)
	@# Offline: SAM only needs a region and some credentials to exist.
	AWS_ACCESS_KEY_ID=lint AWS_SECRET_ACCESS_KEY=lint AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 \
		SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint --template $(TEMPLATE)
	@# Offline: no policy download, no platform look-up.
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --skip-download --quiet --compact --framework cloudformation --file $(TEMPLATE)
	@# Offline: parliament's IAM database ships with the package.
	$(PARLIAMENT_VENV)/bin/python infra/policy_lint.py $(TEMPLATE) docs/operator-policy.json

.PHONY: lint-iam
lint-iam: $(PARLIAMENT_STAMP) ## the IAM policy lint alone: parliament over every policy of the template and the operator policy
	$(PARLIAMENT_VENV)/bin/python infra/policy_lint.py $(TEMPLATE) docs/operator-policy.json

.PHONY: test-build
test-build: ## compile every test target without running it
	$(CARGO) test --workspace --no-run

.PHONY: test
test: ## lint, then every test including the end-to-end scenarios
	@# The tools' installs wait on the network and the test build on the CPU,
	@# so on a fresh clone they run side by side. Unlimited -j: a jobserver
	@# would hand cargo one slot while the installs hold theirs.
	@$(MAKE) --no-print-directory -j $(VENV_STAMP) $(NODE_STAMP) $(SAM_STAMP) $(CHECKOV_STAMP) $(PARLIAMENT_STAMP) test-build
	@$(MAKE) --no-print-directory lint
	@# Every test binary runs even after one fails: a CI log then shows them all.
	$(CARGO) test --workspace --no-fail-fast

.PHONY: test-faults
test-faults: $(VENV_STAMP) ## the fault matrix and the protocol suite alone (docs/reliability.md); also part of make test
	$(CARGO) test -p archiver --test workflow_safety --test workflow_retention
	$(CARGO) test -p cwl-archiver-e2e --test e2e faults_e2e::

.PHONY: mutants
mutants: ## remove each safety guard in a scratch copy and show its test failing (docs/reliability.md)
	$(PYTHON) tests/mutations/mutate.py

.PHONY: bench
bench: $(VENV_STAMP) ## benchmarks: batch packing (criterion), the proof's cost, scripted runs on the emulator, the limits ones for hours; see BENCHMARKS.md
	$(CARGO) bench -p archiver --bench packing
	$(CARGO) bench -p archiver --bench proof
	$(CARGO) build --release -p cwl-archiver-e2e --bin bench
	target/release/bench rebuild --events 100000 1000000
	target/release/bench group --streams 2000 20000
	target/release/bench limits-group --streams 100000 --quota-scale 8
	target/release/bench limits-group --streams 10000 --quota-scale 8 --cutoff-days 30 --mode expired-only
	target/release/bench limits-parent --groups 5000 --quota-scale 1

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
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(PARLIAMENT_VENV) $(TOOLS_VENV) node_modules $(STACK_DIR)
