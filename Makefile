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

test: $(STAMP)
	$(PY) -m pytest

# The inner loop: everything but the tests marked slow (end-to-end runs, real servers, subprocess CLIs).
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

clean:
	rm -rf runs .pytest_cache
