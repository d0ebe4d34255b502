# `make demo` and `make test` are all a fresh clone needs: they create .venv and install into it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgedistill demo

# Two pytest-xdist workers (one per core, at most 2: tests/conftest.py), one torch thread each; the tests that share
# a module- or session-scoped fixture run on one worker (loadgroup), the slow ones are handed out first.
# A plain `pytest` (no -n) still runs everything in one process.
XDIST := -n auto --dist loadgroup --no-loadscope-reorder

test: $(STAMP)
	$(PY) -m pytest $(XDIST)

# The inner loop: everything but the tests marked slow (end-to-end runs, real servers, subprocess CLIs).
test-fast: $(STAMP)
	$(PY) -m pytest $(XDIST) -m "not slow"

clean:
	rm -rf runs .pytest_cache
