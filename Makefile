# One command per habit, the same for people and CI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# Which torch build the venv gets, installed before the project (whose own requirement,
# `torch>=2.3,<3`, is then already met and pulls nothing):
#   TORCH=cpu  (the default) torch==$(TORCH_VERSION)+cpu, the CPU-only build,
#              from PyTorch's CPU index, TORCH_CPU_INDEX, given as an extra index; where a
#              local wheel directory or mirror holds that wheel (as on the development and CI
#              machines, which cannot reach the PyTorch index: pip warns and goes on) it
#              comes from there. The `+cpu` pin means a machine that finds neither fails
#              instead of pulling the CUDA build.
#   TORCH=cuda (`make install-gpu`) torch==$(TORCH_VERSION) from PyPI, whose Linux x86_64
#              wheels bundle CUDA (several GB); a specific CUDA build instead with, e.g.,
#              TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu128.
# torch alone (--no-deps) comes from that index: its dependencies (sympy, networkx, ...) come
# from PyPI with the project's, so an index that does not answer costs one lookup, not ten.
# The choice is remembered in $(VENV)/.torch, so a later `make test` keeps it; change it
# with `make install TORCH=...` (or `make clean`).
# The torch version is the one requirements.lock pins (and `make audit` checks).
TORCH_VERSION ?= $(shell sed -n 's/^torch==//p' requirements.lock)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_CUDA_INDEX ?=
TORCH ?= $(or $(shell cat $(VENV)/.torch 2>/dev/null),cpu)
TORCH_REQUIREMENT_cpu := torch==$(TORCH_VERSION)+cpu --extra-index-url $(TORCH_CPU_INDEX)
TORCH_REQUIREMENT_cuda := torch==$(TORCH_VERSION) $(if $(TORCH_CUDA_INDEX),--extra-index-url $(TORCH_CUDA_INDEX))
TORCH_REQUIREMENT := $(or $(TORCH_REQUIREMENT_$(TORCH)),$(error TORCH=$(TORCH): use TORCH=cpu or TORCH=cuda))

.PHONY: install install-gpu system-deps test test-all lint audit lock demo train bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per torch choice: switching choice reinstalls torch, then the project.
$(VENV)/.torch-$(TORCH): | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-deps $(TORCH_REQUIREMENT)
	rm -f $(VENV)/.torch-*
	echo $(TORCH) > $(VENV)/.torch
	touch $@

$(VENV)/.installed: $(VENV)/.torch-$(TORCH) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-gpu:
	$(MAKE) install TORCH=cuda

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
# advisory databases know the public version). --all keeps setuptools, which torch requires
# at run time, and pip, which plain `pip freeze` leaves out.
lock: install
	( sed -n '1,3p' requirements.lock; $(BIN)/python -m pip freeze --all --exclude-editable \
	  | sed -E 's/\+[A-Za-z0-9.]+$$//' ) > requirements.lock.new
	mv requirements.lock.new requirements.lock

demo: install
	$(BIN)/monitor demo

train: install
	$(BIN)/monitor train --out models/default

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
