# The two commands: `make run` serves on embedded defaults; `make test` runs the whole suite.
# Both install what is missing first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test install install-system bench clean

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

clean:
	rm -rf $(VENV) moorage-data .pytest_cache
