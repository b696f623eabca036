# Each target bootstraps .venv itself: a fresh clone needs only `make up` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

# Re-install whenever pyproject.toml changes.
# Not --quiet: pip names each package as it goes, since the first install takes a few minutes.
$(VENV)/.installed: pyproject.toml
	@echo "== installing mlops and its dependencies into $(VENV) (a few minutes the first time)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install -e .
	@echo "== an empty MLflow store of this MLflow version, copied for each new SQLite store (once)"
	$(PY) -c "from mlops.tracking.mlflow.files import schema_template; schema_template()"
	@echo "== installed: $(VENV)/bin/mlops"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	@echo "== installing the test extras into $(VENV)"
	$(PIP) install -e '.[dev]'
	touch $@

# newman (runs the Postman collection in tests/e2e/test_postman.py), pinned by package-lock.json.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

.PHONY: install up down status test lint format tools demo bench api-doc clean
install: $(VENV)/.installed

## up: start the four services on 127.0.0.1 (SQLite under ./var by default) until Ctrl-C
##     extra flags: make up MLOPS_ARGS="--mlflow-ui --workers 2"
up: $(VENV)/.installed
	$(VENV)/bin/mlops up $(MLOPS_ARGS)

## down: stop what `mlops up --detach` (or a foreground `mlops up`) started from ./var
down: $(VENV)/.installed
	$(VENV)/bin/mlops down $(MLOPS_ARGS)

status: $(VENV)/.installed
	$(VENV)/bin/mlops status $(MLOPS_ARGS)

## test: install the test extras and run every test (SQLite and PostgreSQL)
test: tools $(VENV)/.installed-dev node_modules/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

## lint: ruff's checks and its formatting, as CI runs them (`make format` applies the formatting)
lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --fix --select I .
	$(VENV)/bin/ruff format .

## api-doc: write docs/API.md from the services' OpenAPI documents and examples (tools/apidoc.py)
api-doc: $(VENV)/.installed
	$(PY) -m tools.apidoc

## tools: the system tools some tests use; docker-compose (validates docker-compose.yml) and
##        chromium (renders the monitoring HTML pages) are installed with apt-get when missing
##        and we run as root, else their tests are skipped
tools:
	@command -v docker-compose >/dev/null 2>&1 \
	|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	     && echo "installing docker-compose (apt-get)" \
	     && apt-get update -qq >/dev/null && apt-get install -y -qq docker-compose >/dev/null; } \
	|| echo "note: docker-compose is not installed; tests/test_compose.py skips 'docker-compose config -q'"
	@command -v chromium >/dev/null 2>&1 \
	|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	     && echo "installing chromium (apt-get)" \
	     && apt-get update -qq >/dev/null \
	     && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	|| echo "note: chromium is not installed; tests/e2e/test_monitoring_process.py skips rendering the HTML pages"

## demo: run the walkthrough against the running services (start them with `make up` first)
demo: $(VENV)/.installed
	$(VENV)/bin/mlops demo $(MLOPS_ARGS)

## bench: every benchmark (docs/performance.md); P2's load generator is wrk (Debian's), installed
##        here when make runs as root, else P2 falls back to bench/load.py
bench: $(VENV)/.installed-dev
	@command -v wrk >/dev/null 2>&1 \
	|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	     && echo "installing wrk (apt-get)" \
	     && apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; } \
	|| echo "note: wrk is not installed; bench p2 uses bench/load.py"
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache node_modules bench/results
