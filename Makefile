# Two entry points: `make render` (the main job) and `make test` (every test).
PYTHON ?= python3
VENV ?= .venv
EXAMPLE ?= examples/multicloud

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: install render test lint generate bench
install: $(VENV)/.installed

render: install
	$(VENV)/bin/python scripts/render.py --walk $(EXAMPLE)

lint: install
	$(VENV)/bin/ruff check function tests scripts bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

generate: install
	$(VENV)/bin/python scripts/generate.py

test: install lint
	./scripts/install-crossplane.sh >/dev/null
	$(VENV)/bin/pytest -n 2 --dist loadfile -p no:cacheprovider

bench: install
	$(VENV)/bin/python bench/bench.py
