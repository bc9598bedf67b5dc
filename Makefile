# photod developer entry points. Quick start: `make watch FOLDER=~/Pictures/import` or `make test`.
VENV ?= .venv
FOLDER ?= $(HOME)/Pictures/import
PYTHON ?= python3

.PHONY: setup system-deps watch test lint bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,ray]'
	touch $@

setup: $(VENV)/.installed

system-deps:
	bash scripts/install-system-deps

watch: setup
	mkdir -p $(FOLDER)
	$(VENV)/bin/photod watch $(FOLDER)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: setup system-deps lint
	$(VENV)/bin/pytest -x

bench: setup
	$(VENV)/bin/python -m benchmarks
