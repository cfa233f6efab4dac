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

# Lint, types and the whole test suite. Debian's chromium (tests/test_report_browser.py renders report.html in
# it) is installed first when absent; where apt-get cannot (not root, no mirror) that test skips and this says why.
APT ?= $(if $(filter 0,$(shell id -u)),,sudo -n )env DEBIAN_FRONTEND=noninteractive apt-get
test: install-dev lint
	@command -v chromium >/dev/null 2>&1 || $(APT) install -y -q chromium >/dev/null \
	  || { $(APT) update -q >/dev/null && $(APT) install -y -q chromium >/dev/null; } \
	  || echo "make test: could not install chromium with apt-get (see above); tests/test_report_browser.py will skip"
	python -m pytest

lint:
	ruff check .
	mypy
