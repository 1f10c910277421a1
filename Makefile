# The one entry point, for people and for CI.
#
#   make serve   the course website at http://127.0.0.1:8000/
#   make test    every test: tests/ and every notebook in notebooks/ (nbval)
#
# Both first set up .venv from nothing with the machine's python3 (3.11 or
# newer: the site tools need it): the pinned requirements, then this package
# (editable).  A stamp file records that the set-up is done, so later runs
# skip it until a requirements file, constraints.txt or pyproject.toml
# changes.  Windows has no make: README.md and docs/setup.md give the same
# steps as plain commands.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sockserv-installed

# JupyterLab gets its own environment: installed next to the test tools it
# makes every `import nbformat` ~1 s slower, and so every nbval run and build.
LAB_VENV := .venv-lab
LAB_STAMP := $(LAB_VENV)/.sockserv-installed

# The learner's own copies of the notebooks: `make lab` fills it once and opens
# it; git ignores it and pytest never collects it, so edits there are private.
WORKSPACE := workspace

PIP_FLAGS := --disable-pip-version-check --quiet
HOST := 127.0.0.1
PORT := 8000
# JupyterLab refuses to run as root (containers) unless told it may.
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)

# `make test-versions`: every CPython 3.10-3.13 that pyenv has here, each in
# its own .venv-3.X with the lessons' set only (no site tools).  Override with
# PYTHONS="/usr/bin/python3.10 /usr/bin/python3.12".
PYENV_VERSIONS := $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions
PYTHONS ?= $(sort $(wildcard $(PYENV_VERSIONS)/3.1[0-3].*/bin/python))
# What test-versions runs: the core, the lesson helpers and checks (and the measuring
# that lesson 10 shares with bench_engines), and every notebook.
VERSION_TESTS = $(wildcard tests/test_core_*.py tests/test_layers.py tests/test_teach.py \
  tests/test_harness.py tests/test_lesson[0-9]*.py tests/test_bench_engines.py \
  tests/test_notebooks_leave_nothing.py) notebooks

# Material for MkDocs prints an end-of-life notice on every run; it is noise here.
export NO_MKDOCS_2_WARNING := 1

.DEFAULT_GOAL := help
.PHONY: help setup test test-versions serve build offline site-report lab workspace bench clean distclean

help:  ## list the targets
	@echo "make serve         the course website at http://$(HOST):$(PORT)/ (Ctrl-C stops it)"
	@echo "make test          run every test and check every notebook"
	@echo "make test-versions the core tests and the notebooks on every Python 3.10-3.13 found"
	@echo "make lab           your own copies of the notebooks ($(WORKSPACE)/) in JupyterLab ($(LAB_VENV))"
	@echo "make build         build the website into site/ (warnings are errors)"
	@echo "make offline       a copy of the website that opens from the file system (site-offline/)"
	@echo "make site-report   build the website and list its pages by size"
	@echo "make bench         run the benchmark scripts in benchmarks/"
	@echo "make clean         remove what builds and tests leave behind (keeps the venvs)"
	@echo "make distclean     clean, and remove $(VENV), $(LAB_VENV) and .venv-3.* too"

# Fail early and clearly on a Python the course does not support:
# $(call check_python,MINOR,WHAT) for Python 3.MINOR or newer.
define check_python
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, $(1)))' || \
	  { echo "error: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); $(2) needs 3.$(1) or newer (run: make PYTHON=python3.12 ...)" >&2; exit 1; }
endef

$(STAMP): requirements.txt requirements-lessons.txt constraints.txt pyproject.toml
	$(call check_python,11,the website's tools (and so make test))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -r requirements.txt -c constraints.txt
	$(PY) -m pip install $(PIP_FLAGS) --no-deps -e .
	@touch $@

setup: $(STAMP)  ## create .venv and install everything (test and serve do it for you)

# Every option (parallel workers, nbval) is in pyproject.toml: `pytest` alone does the same.
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# One line per Python, then the failing tests' names; the full log is in build/test-versions/.
test-versions:
	@[ -n "$(strip $(PYTHONS))" ] || { echo "test-versions: no Python found (set PYTHONS)" >&2; exit 1; }
	@mkdir -p build/test-versions; failed=0; \
	for py in $(PYTHONS); do \
	  v=$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])') || { echo "$$py: cannot run"; failed=1; continue; }; \
	  venv=.venv-$$v; stamp=$$venv/.sockserv-installed; log=build/test-versions/$$v.log; \
	  if [ ! -f $$stamp ] || [ -n "$$(find requirements-lessons.txt constraints.txt pyproject.toml -newer $$stamp)" ]; then \
	    { test -x $$venv/bin/python || $$py -m venv $$venv; } && \
	    $$venv/bin/python -m pip install $(PIP_FLAGS) -r requirements-lessons.txt -c constraints.txt && \
	    $$venv/bin/python -m pip install $(PIP_FLAGS) --no-deps -e . && touch $$stamp \
	    || { echo "Python $$v ($$py): FAILED to install the lessons' set"; failed=1; continue; }; \
	  fi; \
	  start=$$(date +%s); \
	  if $$venv/bin/python -m pytest -p no:cacheprovider -q $(VERSION_TESTS) > $$log 2>&1; then result=ok; else result=FAILED; failed=1; fi; \
	  echo "Python $$($$venv/bin/python -c 'import platform; print(platform.python_version())'): $$result, $$(tail -n 1 $$log | tr -d '=' | sed 's/^ *//') [$$(( $$(date +%s) - start )) s; log: $$log]"; \
	  [ $$result = ok ] || grep -E '^(FAILED|ERROR) ' $$log | cut -c1-300 | sed 's/^/    /'; \
	done; exit $$failed

# Ctrl-C stops the site cleanly: `set -m` (job control, on a terminal) runs mkdocs
# in its own process group, the terminal's foreground one, so only mkdocs gets the
# SIGINT (make does not, so it prints no "Interrupt"); mkdocs ending on SIGINT is
# success.  Stop it with SIGINT, not SIGTERM: SIGTERM leaves its temp folder behind.
serve: $(STAMP)
	@if [ -t 0 ]; then set -m; fi; SOCKSERV_SITE_URL=http://$(HOST):$(PORT)/ $(PY) -m mkdocs serve -a $(HOST):$(PORT); \
	status=$$?; [ $$status -eq 0 ] || [ $$status -eq 130 ] || exit $$status

build: $(STAMP)
	$(PY) -m mkdocs build --strict --site-dir site

site-report: $(STAMP)
	$(PY) tools/site_report.py

$(LAB_STAMP): requirements-lessons.txt requirements-lab.txt constraints.txt pyproject.toml
	$(call check_python,10,JupyterLab and the lessons)
	test -x $(LAB_VENV)/bin/python || $(PYTHON) -m venv $(LAB_VENV)
	$(LAB_VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements-lessons.txt -r requirements-lab.txt -c constraints.txt
	$(LAB_VENV)/bin/python -m pip install $(PIP_FLAGS) --no-deps -e .
	@touch $@

# The learner's copies: each lesson copied into workspace/ once, never over the
# learner's own copy; a lesson added to the course is copied the next time.
workspace:
	@mkdir -p $(WORKSPACE)
	@for nb in notebooks/[0-9][0-9]-*.ipynb; do \
	  [ -e "$(WORKSPACE)/$${nb##*/}" ] || { cp "$$nb" $(WORKSPACE)/ && echo "copied $$nb to $(WORKSPACE)/"; }; \
	done

lab: $(LAB_STAMP) workspace
	$(LAB_VENV)/bin/jupyter lab --ServerApp.root_dir=$(WORKSPACE) $(LAB_ROOT_FLAG) $(LAB_ARGS)

# Benchmarks print figures; nothing is asserted.  Each script runs on its own.
bench: $(STAMP)
	@set -e; found=0; \
	for script in benchmarks/*.py; do \
	  [ -f "$$script" ] || continue; found=1; \
	  echo "== $$script"; $(PY) "$$script"; \
	done; \
	[ $$found = 1 ] || echo "no benchmark scripts in benchmarks/ yet"

# Material's offline plugin; the build hook turns instant navigation off and
# points search at the vendored iframe-worker shim (tools/mkdocs_hooks.py).
# The value must be "true": mkdocs.yml reads it with !ENV, and "1" is an int.
offline: $(STAMP)
	SOCKSERV_OFFLINE=true $(PY) -m mkdocs build --strict --site-dir site-offline
	@echo "open site-offline/index.html in a browser (no server needed)"

clean:
	rm -rf site site-offline .cache build dist .pytest_cache .hypothesis
	find . -path './.venv*' -prune -o \
	  \( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -print -exec rm -rf {} +

# Keeps workspace/: it holds the learner's own work.
distclean: clean
	rm -rf $(VENV) $(LAB_VENV) .venv-3.*
