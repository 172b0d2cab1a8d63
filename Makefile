# Two entry points for a fresh machine: `make demo` (the main job, offline) and `make test`.
VENV ?= .venv
PYTHON ?= python3

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

.PHONY: install demo test lint
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/embedsearch demo

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: $(VENV)/.installed lint
	$(VENV)/bin/python -m pytest --run-slow
