# The README's two commands. Each installs what it needs first (editable, so conf/ is found).
PIP ?= python -m pip

.PHONY: install install-dev run test lint

install:
	$(PIP) install -q -e '.[runtime]'

install-dev:
	$(PIP) install -q -e '.[runtime,dev]'

# The main job on the built-in default config: the planning report for phase 256K on the seed workstation.
run: install
	exo-plan

# Lint, types and the whole test suite.
test: install-dev lint
	python -m pytest

lint:
	ruff check .
	mypy
