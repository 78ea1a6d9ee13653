# Two entry points: `make render` (the main job) and `make test` (every test:
# `make check`, everything but the end-to-end tests, then `make e2e`).
PYTHON ?= python3
VENV ?= .venv
EXAMPLE ?= examples/multicloud

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: install render test check e2e lint generate bench
install: $(VENV)/.installed

render: install
	$(VENV)/bin/python scripts/render.py --walk $(EXAMPLE)

lint: install
	$(VENV)/bin/ruff check function tests scripts bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

generate: install
	$(VENV)/bin/python scripts/generate.py

# The pinned helm the chart tests render with (built once into ~/.cache/helm-from-source).
HELM_INSTALLER ?= ../shared/tools/install-helm.sh

# The e2e tools (Go builds of kube-apiserver and Crossplane core, the long pole on a
# cold machine) build in the background while `make check`, which leaves a core
# idle most of the time, runs; `make e2e` then finds them built (or waits on their
# lock). A failed check stops the builds (their own process group).
test: install
	setsid ./scripts/e2e-build.sh all >/dev/null 2>&1 & build=$$!; \
	if $(MAKE) check; then wait $$build; $(MAKE) e2e; \
	else status=$$?; kill -- -$$build 2>/dev/null; wait $$build; exit $$status; fi

# The stack brought up from nothing in its own network namespace (README "End to end").
e2e: install
	./scripts/e2e.sh

check: install lint
	./scripts/install-crossplane.sh >/dev/null
	if [ -f $(HELM_INSTALLER) ]; then bash $(HELM_INSTALLER) >/dev/null; fi
	$(VENV)/bin/pytest -n 2 --dist loadfile -p no:cacheprovider --ignore=tests/e2e

bench: install
	$(VENV)/bin/python bench/bench.py
