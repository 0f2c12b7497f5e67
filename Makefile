# Zhizhi: the two commands are `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PG_URL  ?= postgresql://postgres@127.0.0.1:5432/test
HOST    ?= 127.0.0.1
PORT    ?= 8000

.PHONY: demo test env static lint types test-sqlite test-postgres test-browser serve worker lock clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.lock
	touch $@

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

zhizhi/static/vendor/.stamp: node_modules/.package-lock.json scripts/vendor_static.py
	$(BIN)/python scripts/vendor_static.py
	touch $@

env: $(VENV)/.installed
static: env zhizhi/static/vendor/.stamp

## make demo: install, migrate SQLite, load the demo street, serve on http://127.0.0.1:8000 with a worker
demo: static
	$(BIN)/python manage.py ensure_data_key
	$(BIN)/python manage.py migrate --no-input -v0
	$(BIN)/python manage.py demo_street --if-empty
	$(BIN)/python manage.py demo_cases --if-empty
	$(BIN)/python manage.py demo_extras
	$(BIN)/python manage.py load_open311_attributes
	$(BIN)/python manage.py demo_logins --url http://$(HOST):$(PORT)/
	@echo "Serving on http://$(HOST):$(PORT)/  (Ctrl-C stops the server, the worker and the MQTT bridge)"
	@echo "Live sensor readings: $(BIN)/python manage.py simulate_sensors typhoon   (see docs/simulator.md)"
	@trap 'trap - INT TERM EXIT; kill 0' INT TERM EXIT; \
	  $(BIN)/python manage.py run_huey --quiet & \
	  if $(BIN)/python scripts/check_services.py mqtt >/dev/null 2>&1; then \
	    $(BIN)/python manage.py mqtt_bridge & \
	  else echo "No MQTT broker on 127.0.0.1:1883: devices can still post over HTTP"; fi; \
	  $(BIN)/uvicorn zhizhi.asgi:application --host $(HOST) --port $(PORT) --log-level warning

## make test: lint, types, tests on SQLite and PostgreSQL, browser tests when Chromium is present
test: static lint types test-sqlite test-postgres test-browser

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: env
	$(BIN)/mypy zhizhi/*/services.py zhizhi/registry.py zhizhi/validators.py zhizhi/permissions.py zhizhi/crypto.py zhizhi/problems.py zhizhi/clock.py zhizhi/cockpit/emergency/services.py zhizhi/cockpit/emergency/area.py

test-sqlite: static
	$(BIN)/pytest -m "not browser" -n 2

test-postgres: static
	$(BIN)/python scripts/check_services.py postgres
	DATABASE_URL=$(PG_URL) $(BIN)/pytest -m "not browser" -n 2 --create-db

test-browser: static
	@if [ -x /usr/bin/chromium ]; then $(BIN)/pytest -m browser; \
	 else echo "Chromium not found at /usr/bin/chromium: browser tests not run (apt-get install -y chromium)"; fi

bench: static
	$(BIN)/python bench/run_all.py

lock:
	$(BIN)/pip install -r requirements.in && $(BIN)/pip freeze > requirements.lock

clean:
	rm -rf $(VENV) node_modules zhizhi/static/vendor var/staticfiles
