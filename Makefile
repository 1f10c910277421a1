# The one entry point, for people and for CI.
#
#   make serve   the course website at http://127.0.0.1:8000/
#   make test    every test: tests/ and every notebook in notebooks/ (nbval)
#
# Both first set up .venv from nothing with the machine's python3: the pinned
# requirements, then this package (editable).  A stamp file records that the
# set-up is done, so later runs skip it until requirements.txt,
# constraints.txt or pyproject.toml change.  Windows has no make: README.md
# and docs/setup.md give the same steps as plain commands.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sockserv-installed

# JupyterLab gets its own environment: installed next to the test tools it
# makes every `import nbformat` ~1 s slower, and so every nbval run and build.
LAB_VENV := .venv-lab
LAB_STAMP := $(LAB_VENV)/.sockserv-installed

PIP_FLAGS := --disable-pip-version-check --quiet
PYTEST_NBVAL := --nbval --nbval-cell-timeout=60 --nbval-sanitize-with notebooks/sanitize.cfg
HOST := 127.0.0.1
PORT := 8000

# Material for MkDocs prints an end-of-life notice on every run; it is noise here.
export NO_MKDOCS_2_WARNING := 1

.DEFAULT_GOAL := help
.PHONY: help setup test serve build site-report lab bench clean distclean

help:  ## list the targets
	@echo "make serve        the course website at http://$(HOST):$(PORT)/ (Ctrl-C stops it)"
	@echo "make test         run every test and check every notebook"
	@echo "make lab          open the notebooks in JupyterLab (own environment, $(LAB_VENV))"
	@echo "make build        build the website into site/ (warnings are errors)"
	@echo "make site-report  build the website and list its pages by size"
	@echo "make bench        run the benchmark scripts in benchmarks/"
	@echo "make clean        remove what builds and tests leave behind (keeps the venvs)"
	@echo "make distclean    clean, and remove $(VENV) and $(LAB_VENV) too"

# Fail early and clearly on a Python the course does not support.
define check_python
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
	  { echo "error: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); the course needs 3.10 or newer (run: make PYTHON=python3.12 ...)" >&2; exit 1; }
endef

$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(check_python)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -r requirements.txt -c constraints.txt
	$(PY) -m pip install $(PIP_FLAGS) --no-deps -e .
	@touch $@

setup: $(STAMP)  ## create .venv and install everything (test and serve do it for you)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_NBVAL) $(PYTEST_ARGS)

serve: $(STAMP)
	SOCKSERV_SITE_URL=http://$(HOST):$(PORT)/ $(PY) -m mkdocs serve -a $(HOST):$(PORT)

build: $(STAMP)
	$(PY) -m mkdocs build --strict --site-dir site

site-report: $(STAMP)
	$(PY) tools/site_report.py

$(LAB_STAMP): requirements.txt requirements-lab.txt constraints.txt pyproject.toml
	$(check_python)
	test -x $(LAB_VENV)/bin/python || $(PYTHON) -m venv $(LAB_VENV)
	$(LAB_VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements.txt -r requirements-lab.txt -c constraints.txt
	$(LAB_VENV)/bin/python -m pip install $(PIP_FLAGS) --no-deps -e .
	@touch $@

lab: $(LAB_STAMP)
	$(LAB_VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks $(LAB_ARGS)

# Benchmarks print figures; nothing is asserted.  Each script runs on its own.
bench: $(STAMP)
	@set -e; found=0; \
	for script in benchmarks/*.py; do \
	  [ -f "$$script" ] || continue; found=1; \
	  echo "== $$script"; $(PY) "$$script"; \
	done; \
	[ $$found = 1 ] || echo "no benchmark scripts in benchmarks/ yet"

clean:
	rm -rf site .cache build dist .pytest_cache .hypothesis
	find . -path ./$(VENV) -prune -o -path ./$(LAB_VENV) -prune -o \
	  \( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -print -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(LAB_VENV)
