# The two commands: `make run` serves on embedded defaults; `make test` runs the whole suite.
# Both install what is missing first. `make bench` compares Moorage with CNCF Distribution
# side by side (docs/benchmarks.md; BENCH_QUICK=1 for a short smoke run, BENCH_ARGS for
# options such as --workers 4), then blob push and pull on S3 (SeaweedFS) beside Distribution
# v3's S3 driver and SeaweedFS's own rate (bench/s3.py), then times the console's repository pages with 5,000
# repositories and 10,000 tags, then the scanner's advisory import and image scan (cold and
# warm; as library calls, then as scan jobs of a running server), then the manifest GET rate
# with threat blocking's pull policies on beside none (bench/blocking.py), then what audit,
# metrics and blocking each cost in CPU per request (bench/toggles.py), then the start-up of
# `moorage --help`, `moorage repo list` and `moorage serve` (bench/startup.py), then a 256 MiB image
# copied between two Moorage instances by a push replication rule beside skopeo copy
# (bench/replication.py), then index.yaml of a chart repository with 1,000 versions, cold
# and cached (bench/helm.py), then 1,000 pulls/s for 60 s on two PostgreSQL + Redis + S3
# replicas beside the embedded defaults (bench/scaleout.py), then the app's own CPU per
# manifest GET and HEAD, in process (bench/handler.py), then the scaling series: manifest
# GET and tags pages at 1k, 100k
# and 1M tags, catalog and namespace listing at 100k repositories, GC over 10k and 100k
# blobs, each with its growth and the server's memory (bench/scaling.py); `make bench-smoke` checks
# that the harness itself runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test install install-test install-system install-npm bench bench-smoke bench-tls clean

# Two stamps, one per set of Python packages: serving needs only the base dependencies (`.`);
# the suite and the benchmark need the test extras too (`.[test]`: pytest, hypothesis, oras,
# the SeaweedFS binary...). The test stamp also marks the serve stamp done, so `make run` after
# `make test` installs nothing, while `make test` after `make run` still adds the extras.
# Each stamp is redone when pyproject.toml changes. --no-compile: bytecode is written when a
# module is first imported, only for the modules serving imports (measured: 20% less CPU).
SERVE_STAMP := $(VENV)/.installed-serve
TEST_STAMP := $(VENV)/.installed-test

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)

$(SERVE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --no-compile -e .
	@touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	@touch $(SERVE_STAMP) $@

install: $(SERVE_STAMP)

install-test: $(TEST_STAMP)

install-system:
	@scripts/install-system-deps.sh

# npm packages the tests use (axe-core, the accessibility checker of the console's browser
# tests; oidc-provider, the OpenID provider of the single sign-on tests; @sigstore/verify, the
# independent verifier of the Sigstore bundles we write), in a project-local
# folder; never a browser download (Debian's chromium is used)
NPM_DIR := .npm-packages
AXE := $(NPM_DIR)/node_modules/axe-core/axe.min.js
OIDC_PROVIDER := $(NPM_DIR)/node_modules/oidc-provider/package.json
SIGSTORE_VERIFY := $(NPM_DIR)/node_modules/@sigstore/verify/package.json

$(AXE):
	npm install --silent --no-audit --no-fund --prefix $(NPM_DIR) axe-core@4

$(OIDC_PROVIDER):
	npm install --silent --no-audit --no-fund --prefix $(NPM_DIR) oidc-provider@9

$(SIGSTORE_VERIFY):
	npm install --silent --no-audit --no-fund --prefix $(NPM_DIR) @sigstore/verify@4 @sigstore/bundle@5 @sigstore/core@4

install-npm: $(AXE) $(OIDC_PROVIDER) $(SIGSTORE_VERIFY)

run: install
	$(BIN)/moorage serve $(ARGS)

# Bytecode: every server, worker and CLI process a test starts imports Moorage afresh, so
# its modules are compiled once here; where the environment sets PYTHONDONTWRITEBYTECODE
# (this machine does), each process would otherwise compile all of src again (measured:
# 0.5-0.8 s of CPU per process start) and pytest would rewrite every test module per worker.
test: install-system install-test install-npm
	$(BIN)/python -m compileall -q -j 0 src tests
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest $(PYTEST_ARGS)

# the profiler of the benchmark's profile step
$(BIN)/py-spy: | $(TEST_STAMP)
	$(BIN)/pip install -q py-spy

# PYTHONPATH: the code of this checkout, whatever the venv's editable install points at
# DISTRIBUTION_V3=path (a `registry` binary or registry.xz) adds Distribution v3.1.1 as a peer;
# the workspace's ../shared/peers/distribution-v3.1.1/ is used when present (bench/run.py)
bench: install-system install-test $(BIN)/py-spy
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/run.py $(BENCH_ARGS)
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/s3.py
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/console.py
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/scan.py
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/blocking.py
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/toggles.py
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/startup.py
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/replication.py
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/helm.py
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/scaleout.py
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/handler.py
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/scaling.py

# HTTPS: plain HTTP vs granian's own TLS vs the HAProxy front of custom domains (README, HTTPS)
bench-tls: install-system install-test
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/tls.py $(BENCH_ARGS)

bench-smoke: install-system install-test $(BIN)/py-spy
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/smoke.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) moorage-data .pytest_cache $(NPM_DIR)
