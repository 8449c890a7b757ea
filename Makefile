# One command per habit, the same for people and CI.
# torch==2.13.0 is installed first: it is a CPU build on disk here; a bare `torch`
# requirement on a fresh venv would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install system-deps test test-all lint audit lock demo train bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Mosquitto and Prometheus binaries: the tests start their own on free loopback ports.
system-deps:
	@command -v mosquitto >/dev/null && command -v prometheus >/dev/null && command -v promtool >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto prometheus >/dev/null)

test: install system-deps
	$(BIN)/python -m pytest

# Tests that assert a time or a rate (marker `perf`): meaningful on an otherwise idle machine
# only, so not in `make test`; -s shows the figures they print.
.PHONY: test-perf
test-perf: install system-deps
	$(BIN)/python -m pytest -m perf -s

test-all: install system-deps
	$(BIN)/python -m pytest -m ''

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Known vulnerabilities in the locked dependencies: pip-audit --strict (a finding, or a
# dependency that could not be audited, fails). It needs PyPI's per-version JSON API; where
# that does not answer, tools/audit.py says "AUDIT NOT RUN" and exits 0 (docs/reliability.md).
audit: install
	$(BIN)/python tools/audit.py

# Regenerate requirements.lock from the venv (local labels such as +cpu stripped: the
# advisory databases know the public version).
lock: install
	( sed -n '1,3p' requirements.lock; $(BIN)/python -m pip freeze --exclude-editable \
	  | sed -E 's/\+[A-Za-z0-9.]+$$//' ) > requirements.lock.new
	mv requirements.lock.new requirements.lock

demo: install
	$(BIN)/monitor demo

train: install
	$(BIN)/monitor train --out models/default

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
