# Two commands do all set-up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DB     ?= ./var/maillist.db

.PHONY: install serve test check bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

HOST   ?= 127.0.0.1
PORT   ?= 8025

serve: install
	$(VENV)/bin/maillist --db $(DB) demo
	exec $(VENV)/bin/maillist --db $(DB) serve --host $(HOST) --port $(PORT) $(if $(RELAY),--relay $(RELAY))

test: install
	$(PY) -m pytest -q

check: install
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy --strict src tests bench

bench: install
	$(PY) bench/members.py --members 100000 --runs 5
	$(PY) bench/ingest.py --messages 4000 --runs 5
	$(PY) bench/fanout.py --members 10000 --posts 10 --runs 3 --personal --latency 20 --memory 100000

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
