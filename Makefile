# The two commands that work on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
REDIS_PORT ?= 6390
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint check bench install system-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Debian's redis-server, and for the tests PostgreSQL, Chromium (the console
# is tested in headless Chromium driven by Playwright; no browser download) and
# dovecot (the bounce mailbox is read over IMAP from a private dovecot), if missing.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v dovecot >/dev/null || missing="$$missing dovecot-imapd"; \
	if [ -n "$$missing" ]; then \
	  echo "installing from Debian:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

# The main job: the cold-and-flu campaign to 1,000 synthetic patients through a
# private redis-server and a real Celery worker, into the outbox.
demo: install system-deps
	@scripts/redis.sh start $(REDIS_PORT) var/redis; \
	trap 'scripts/redis.sh stop $(REDIS_PORT) var/redis' EXIT; \
	MERIDIAN_REDIS_URL=redis://127.0.0.1:$(REDIS_PORT)/0 $(VENV)/bin/meridian demo

# Unit and integration tests; the tests start their own redis-server, PostgreSQL,
# Celery workers, SMTP server and Twilio-compatible server.
test: install system-deps
	$(VENV)/bin/pytest -q -p no:cacheprovider

# The performance benchmark (bench/throughput.py): BENCH_PATIENTS synthetic patients
# imported, then a two-channel campaign end to end through a private redis-server,
# real Celery workers and the ledger, on SQLite and on PostgreSQL, against the naive
# design and a render ceiling. Prints a table and, last, one JSON line. Options go
# in BENCH_ARGS, e.g. BENCH_ARGS="--databases sqlite --profile".
BENCH_PATIENTS ?= 100000
BENCH_ARGS ?=
bench: install system-deps
	@case ' $(BENCH_ARGS) ' in *' --profile'*) \
	  $(PY) -c 'import pyinstrument' 2>/dev/null && [ -x $(VENV)/bin/py-spy ] || \
	  $(PY) -m pip install -q py-spy pyinstrument;; esac
	$(PY) bench/throughput.py --patients $(BENCH_PATIENTS) $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check campaigns tasks tests bench scripts
	$(VENV)/bin/ruff format --check campaigns tasks tests bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

check: lint test

clean:
	rm -rf var .venv
