# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-stress bench system venv clean

demo: system $(STAMP)
	$(BIN)/incident-copilot demo

test: system $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e and not integration"

# The whole suite RUNS times beside BURNERS CPU-bound processes, stopping at the first failure:
# a busy machine on demand, for tests that depend on speed (PYTEST_ARGS narrows it). Not part of CI.
RUNS ?= 10
BURNERS ?= 2
test-stress: system $(STAMP)
	RUNS=$(RUNS) BURNERS=$(BURNERS) PYTHON=$(BIN)/python scripts/test-stress.sh $(PYTEST_ARGS)

bench: system $(STAMP)
	$(BIN)/python bench/run_all.py

system:
	@scripts/system-packages.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) var build dist *.egg-info
