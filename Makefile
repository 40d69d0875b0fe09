# One command each: `make run` serves the demo, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint bench chromium clean

$(VENV)/.runtime: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_setup
	@echo "Dashboard: http://$(HOST):$(PORT)/  (admin: http://$(HOST):$(PORT)/admin/)"
	$(BIN)/daphne -b $(HOST) -p $(PORT) config.asgi:application

# Debian's Chromium for the browser tests, installed when missing and we may
# (root, or password-less sudo); otherwise those tests skip and say why.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >/dev/null; \
	elif sudo -n true 2>/dev/null; then \
	  (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >/dev/null; \
	else echo "chromium is missing and cannot be installed here: browser tests will skip"; fi

lint: $(VENV)/.dev
	$(BIN)/ruff check .

test: $(VENV)/.dev chromium lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(VENV)/.bench: $(VENV)/.dev requirements-bench.txt
	$(BIN)/python -m pip install -q -r requirements-bench.txt
	touch $@

bench: $(VENV)/.bench
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) db.sqlite3 db-history.sqlite3 test-db.sqlite3 test-db-history.sqlite3 staticfiles
