# The two commands: `make run` serves on embedded defaults; `make test` runs the whole suite.
# Both install what is missing first. `make bench` compares Moorage with CNCF Distribution
# side by side (docs/benchmarks.md; BENCH_QUICK=1 for a short smoke run, BENCH_ARGS for
# options such as --workers 4); `make bench-smoke` checks that the harness itself runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test install install-system bench bench-smoke clean

$(BIN)/moorage: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(BIN)/moorage

install-system:
	@scripts/install-system-deps.sh

run: install
	$(BIN)/moorage serve $(ARGS)

test: install-system install
	$(BIN)/pytest $(PYTEST_ARGS)

# the profiler of the benchmark's profile step
$(BIN)/py-spy: | $(BIN)/moorage
	$(BIN)/pip install -q py-spy

# PYTHONPATH: the code of this checkout, whatever the venv's editable install points at
bench: install-system install $(BIN)/py-spy
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/run.py $(BENCH_ARGS)

bench-smoke: install-system install $(BIN)/py-spy
	PYTHONPATH=$(CURDIR)/src $(BIN)/python bench/smoke.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) moorage-data .pytest_cache
