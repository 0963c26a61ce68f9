# rio: two commands for a newcomer.
#   make demo   set everything up and run a full announced inspection against loopback
#   make test   lint, type-check and run the whole test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck bench bench-quick nmap clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

nmap:
	@command -v nmap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq nmap; \
	  else \
	    echo "rio needs nmap for port probes: install it (e.g. sudo apt-get install nmap) and retry" >&2; exit 1; \
	  fi; }

demo: $(BIN)/.installed nmap
	$(BIN)/rio demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

test: $(BIN)/.installed nmap lint typecheck
	$(BIN)/python -m pytest

bench: $(BIN)/.installed nmap
	$(BIN)/python -m bench

bench-quick: $(BIN)/.installed nmap
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .rio .mypy_cache .ruff_cache .pytest_cache
