# Each target bootstraps .venv itself: a fresh clone needs only `make up` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

# Re-install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -e '.[dev]'
	touch $@

.PHONY: install up down test demo bench lint clean
install: $(VENV)/.installed

## up: start the four services on 127.0.0.1 (SQLite under ./var by default) until Ctrl-C
up: $(VENV)/.installed
	$(VENV)/bin/mlops up

down: $(VENV)/.installed
	$(VENV)/bin/mlops down

## test: install the test extras and run every test (SQLite and PostgreSQL)
test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(VENV)/.installed
	$(VENV)/bin/mlops demo

bench: $(VENV)/.installed-dev
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache
