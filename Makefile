# Two commands do all set-up on a fresh machine: `make serve` and `make test`.
#
# `make serve` installs maillist the way users do (`pip install .`, runtime dependencies only) into
# .venv; `make test` installs it editable with the test extras into .venv-dev; `make check` adds the
# dev tools (ruff, mypy) there. `make smoke` builds a wheel and runs it from a fresh venv outside the
# checkout, as CI does.
PYTHON  ?= python3
VENV    ?= .venv
DEVVENV ?= .venv-dev
PY      := $(DEVVENV)/bin/python
DB      ?= ./var/maillist.db
PIP     := -m pip install -q --disable-pip-version-check
SOURCES := pyproject.toml $(shell find src -type f -not -path '*/__pycache__/*' 2>/dev/null)

.PHONY: install serve test test-postgresql check bench smoke clean mailman3

$(VENV)/.installed: $(SOURCES)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python $(PIP) .
	touch $@

$(DEVVENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(DEVVENV)
	$(PY) $(PIP) -e '.[test]'
	touch $@

$(DEVVENV)/.dev: $(DEVVENV)/.installed
	$(PY) $(PIP) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

HOST   ?= 127.0.0.1
PORT   ?= 8025
HTTP_PORT ?= 8080

serve: install
	$(VENV)/bin/maillist --db $(DB) demo --web-url http://$(HOST):$(HTTP_PORT)
	exec $(VENV)/bin/maillist --db $(DB) serve --host $(HOST) --port $(PORT) --http-port $(HTTP_PORT) $(if $(RELAY),--relay $(RELAY))

# GNU Mailman 3 from PyPI in a venv of its own, for the `maillist import mailman3` tests (they start
# it on loopback ports in a temporary directory). SQLAlchemy 2.1 breaks Mailman 3.3.10's held-message
# queries, hence the pin. Where it cannot install, those tests are skipped with the reason.
MAILMAN3 ?= .cache/mailman3
$(MAILMAN3)/.installed:
	@mkdir -p $(dir $(MAILMAN3))
	@( test -x $(MAILMAN3)/bin/python || $(PYTHON) -m venv $(MAILMAN3) ) \
	  && $(MAILMAN3)/bin/python $(PIP) 'mailman>=3.3.10' 'sqlalchemy<2.1' \
	  && touch $@ || echo "note: could not install Mailman 3 into $(MAILMAN3); its import tests will be skipped"

mailman3: $(MAILMAN3)/.installed

test: $(DEVVENV)/.installed $(MAILMAN3)/.installed
	$(PY) -m pytest -q

# The same suite on PostgreSQL: a throwaway cluster from Debian's postgresql package (initdb and
# pg_ctl in a temporary directory, loopback only, as an unprivileged user; tests/pgserver.py).
test-postgresql: $(DEVVENV)/.installed $(MAILMAN3)/.installed
	MAILLIST_TEST_BACKEND=postgresql $(PY) -m pytest -q

check: $(DEVVENV)/.dev
	$(DEVVENV)/bin/ruff format --check src tests bench
	$(DEVVENV)/bin/ruff check src tests bench
	$(DEVVENV)/bin/mypy --strict src tests bench

smoke:
	tests/smoke/installed.sh

bench: $(DEVVENV)/.dev
	$(PY) bench/members.py --members 100000 --runs 5
	$(PY) bench/ingest.py --messages 4000 --runs 5
	$(PY) bench/fanout.py --members 10000 --posts 10 --runs 3 --personal --latency 20 --memory 100000
	$(PY) bench/latency.py --members 100000 --posts 300 --runs 3

clean:
	rm -rf $(VENV) $(DEVVENV) var dist build .pytest_cache .mypy_cache .ruff_cache
