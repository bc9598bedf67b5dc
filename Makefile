# photod developer entry points. Quick start: `make watch FOLDER=~/Pictures/import` or `make test`.
VENV ?= .venv
FOLDER ?= $(HOME)/Pictures/import
PYTHON ?= python3

.PHONY: setup system-deps watch test lint bench

# setuptools prints an "Editable installation" notice for every editable install of a package
# whose folders are mapped (photod.models -> models/, ...); it is information, not a problem, and
# the only warning left (tests/test_packaging.py checks that the build prints no other).
EDITABLE_NOTICE ?= ignore:Editable installation

$(VENV)/.installed: pyproject.toml
	@echo "photod: setting up $(VENV): photod and its Python packages (torch, timm, OpenCV, ...;" \
	      "a few GB and several minutes the first time, one line per package below)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	PYTHONWARNINGS="$(EDITABLE_NOTICE)" $(VENV)/bin/pip install -e '.[test,ray]'
	@echo "photod: $(VENV) is ready"
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
