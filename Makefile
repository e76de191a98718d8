# The two commands a new user needs: `make run` and `make test`.
# The interpreter: the distribution's python3.11 where there is one (Debian builds it with
# PGO and LTO; pyenv's default build has neither, and the bulk import ran 5 % slower on it,
# bench/README.md), else the first python3.11 on the PATH. `make PYTHON=...` overrides.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3.11) python3.11)
VENV   := .venv
BIN    := $(VENV)/bin
PG_URL ?= postgres://postgres@127.0.0.1:5432/mailvault

.PHONY: run test install install-test system-test-deps lint pytest-sqlite pytest-postgres clean

run: install
	$(BIN)/mailvault run

test: install-test system-test-deps lint pytest-sqlite pytest-postgres

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Mailvault needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3

# Re-install only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# Debian packages the tests drive for real (root only; others must install them by hand).
system-test-deps:
	@bash scripts/system-test-deps.sh

lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

pytest-sqlite:
	MAILVAULT_SKIP_PG_TESTS=1 $(BIN)/pytest -q -p no:cacheprovider

pytest-postgres:
	@bash scripts/ensure-postgres.sh
	DATABASE_URL=$(PG_URL) $(BIN)/pytest -q -p no:cacheprovider -m "not corpus and not single_db"

clean:
	rm -rf $(VENV) var
