# Entry points (see README): `make demo` runs the main job, `make test` runs every test, `make unit` the fast ones.
# `make install` does only what a developer could type: a venv, then `pip install -e '.[dev]'` with the one lock
# (constraints.txt) as constraints. Everything the code reads at run time comes with the package itself.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
QUESTION ?= How do I read a gzip-compressed file?
LOCK := constraints.txt
# The fast tests (`make unit`, under 2 minutes): no embedded stack, no layer builds, no CDK synth.
UNIT_TESTS ?= tests/unit
# `make lock LOCK_FLAGS=--upgrade` moves every pin to the newest release the bounds in pyproject.toml allow.
LOCK_FLAGS ?=

.PHONY: install browser demo test unit lock down clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py $(LOCK)
	$(BIN)/python -m pip install -q -c $(LOCK) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/soorma local up
	$(BIN)/soorma local deploy examples/research-advisor
	$(BIN)/soorma goal submit research.goal --data '{"question": "$(QUESTION)"}' --wait

# The console's browser tests (tests/e2e/test_console.py) drive Debian's chromium through Playwright, never a
# browser Playwright downloads itself (the machine reaches only PyPI, Debian and npm).
browser:
	@[ -x /usr/bin/chromium ] || { sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

test: install browser
	$(BIN)/python -m pytest -q

unit: install
	$(BIN)/python -m pytest -q $(UNIT_TESTS)

# Resolve the lock again from pyproject.toml (one version per package for every Python and platform the project
# supports, so the Lambda layers can run what the tests run), then take the layers' pins from it (layers/pins.py).
lock: install
	$(BIN)/uv pip compile --quiet --universal --fork-strategy fewest --python-version 3.11 --extra dev \
		--custom-compile-command 'make lock' $(LOCK_FLAGS) pyproject.toml -o $(LOCK)
	$(BIN)/python layers/pins.py

down:
	-$(BIN)/soorma local down

clean: down
	rm -rf .soorma
