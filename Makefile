# The commands the README names. Everything installs into .venv on first use.
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTHON3 ?= python3

.PHONY: install serve test lint format bench clean

install: $(STAMP)

$(STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON3) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[test]"
	# Kinto's own tests, from its source distribution: tests/test_kinto_suite.py runs them.
	$(PYTHON) -m pip download --quiet --no-deps --no-binary :all: --dest $(VENV)/kinto-sdist \
		"kinto==$$($(PYTHON) -c 'from importlib.metadata import version; print(version("kinto"))')"
	touch $(STAMP)

# Kinto with the plugin and an in-memory search engine, on 127.0.0.1:8888.
serve: install
	$(PYTHON) scripts/serve.py

# Lint, then the whole suite on both engines (real server processes and PostgreSQL).
test: install
	bash .ci/install-system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PYTHON) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	bash .ci/install-system-deps
	$(PYTHON) -m bench

clean:
	rm -rf $(VENV) *.egg-info build dist
