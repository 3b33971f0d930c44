# The commands the README names. Everything installs into .venv on first use.
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTHON3 ?= python3

.PHONY: install serve test docs lint format bench clean

install: $(STAMP)

$(STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON3) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[test,docs]"
	# Kinto's own tests, from its source distribution: tests/test_kinto_suite.py runs them.
	$(PYTHON) -m pip download --quiet --no-deps --no-binary :all: --dest $(VENV)/kinto-sdist \
		"kinto==$$($(PYTHON) -c 'from importlib.metadata import version; print(version("kinto"))')"
	touch $(STAMP)

# Kinto with the plugin and an in-memory search engine, on 127.0.0.1:8888.
serve: install
	$(PYTHON) scripts/serve.py

# Lint, the documentation, then the whole suite on both engines (real server processes and
# PostgreSQL).
test: install
	bash .ci/install-system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MAKE) docs
	$(PYTHON) -m pytest --durations=25

# The documentation site, into docs/_build/html; any warning (a broken reference, a setting
# the reference cannot render) fails the build.
docs: install
	$(PYTHON) -m sphinx -n -W --keep-going -b html docs docs/_build/html

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
	rm -rf $(VENV) *.egg-info build dist docs/_build
