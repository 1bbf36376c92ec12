# Two commands set everything up on a fresh clone: `make run` and `make test`.
VENV    := .venv
STAMP   := $(VENV)/.installed
# the Pythons requires-python allows (pyproject.toml), newest first; make picks the first one that
# runs, or PYTHON=/path/to/python3.x
PYTHONS := 3.13 3.12 3.11
# python3.x must run and have venv + ensurepip (Debian and Ubuntu split these into python3.x-venv);
# a pyenv shim of a version that pyenv has not selected exists but does not run
PY_OK   := import sys, venv, ensurepip; sys.exit("%d.%d" % sys.version_info[:2] not in "$(PYTHONS)".split())
ifeq ($(origin PYTHON),undefined)
PYTHON  := $(shell for v in $(PYTHONS); do python$$v -c '$(PY_OK)' 2>/dev/null && { command -v python$$v; break; }; done)
endif
# TORCH=cpu: on Linux, torch from PyTorch's CPU-only index and none of the CUDA libraries (about 5 GB
# less); the default installs PyPI's torch, which bundles CUDA on Linux and runs on any CPU too
# (kept for later installs of the same .venv)
TORCH   ?= $(if $(wildcard $(VENV)/requirements-cpu.txt),cpu,default)
CPU_INDEX := https://download.pytorch.org/whl/cpu
# lock lines of the CUDA libraries: the packages named so that only Linux installs
GPU_ONLY  := ^(nvidia-|cuda-|triton==)[^;]*; .*sys_platform == .linux.
# stages run `python stages/...`: make sure that is the venv's python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# recipes name the venv's tools by path: make 3.81 (macOS) runs a recipe without shell syntax
# directly, looking its command up on the PATH make started with, not the one exported above
# (VENV_BIN= on the command line: the tools already on PATH, as the tests run make)
VENV_BIN := $(VENV)/bin/

.PHONY: install demo-data run report test test-fast lint lock bench clean

install: $(STAMP)

# requirements.lock pins the whole resolved set for every platform (make lock refreshes it)
$(STAMP): pyproject.toml requirements.lock
	@test -x $(VENV)/bin/python || { \
	  if [ -z "$(PYTHON)" ]; then \
	    echo "None of $(addprefix python,$(PYTHONS)) runs here with the venv module. Install one:" \
	         "Ubuntu/Debian/WSL: sudo apt install python3-venv (Ubuntu 22.04: python3.12-venv from deadsnakes);" \
	         "macOS: brew install python@3.13; or see https://www.python.org/downloads/." \
	         "Then run make again, or make PYTHON=/path/to/python3.x" >&2; exit 1; fi; \
	  "$(PYTHON)" -c '$(PY_OK)' 2>/dev/null || { \
	    echo "PYTHON=$(PYTHON) is not one of Python $(PYTHONS) with the venv module (Debian/Ubuntu: python3.x-venv)" >&2; exit 1; }; \
	  echo "creating $(VENV) with $$("$(PYTHON)" -c 'import sys; print("Python", sys.version.split()[0], "at", sys.executable)')"; \
	  "$(PYTHON)" -m venv $(VENV); }
	@$(VENV)/bin/python -c 'import sys; print("installing into $(VENV): Python", sys.version.split()[0])'
ifeq ($(TORCH),cpu)
	grep -v -E '$(GPU_ONLY)' requirements.lock > $(VENV)/requirements-cpu.txt
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check \
	  --extra-index-url $(CPU_INDEX) -r $(VENV)/requirements-cpu.txt
else
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
endif
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# DVC rewrites .dvc/tmp/rwlock and dvc.lock in place: a dvc killed during either write leaves a file
# every later dvc command refuses; after a failure, say which one and how to recover
DVC_HINT = { status=$$?; python -m torchstages.dvc_state; exit $$status; }

# data/raw is versioned by DVC (data/raw.dvc, committed; the demo's is): queued experiments check
# it out into their own workspace, and `dvc push` / `dvc pull` carry it to another machine
# dvc add replaces a linked file by a copy of what it points to (wherever that is) and does not
# version a linked folder at all (another machine or a queued experiment would lack it): say so
demo-data: $(STAMP)
	@if [ -z "$$(ls -A data/raw 2>/dev/null)" ]; then torchstages demo-data data/raw; \
	else echo "data/raw has data: leaving it as it is"; fi
	@links=$$(find data/raw -type l | head -n 3 | tr '\n' ' '); if [ -n "$$links" ]; then \
	  echo "warning: symbolic links in data/raw ($${links}...): dvc add stores a copy of each" \
	       "linked file, wherever it points, and leaves linked folders unversioned;" \
	       "copy the data in instead" >&2; fi
	@dvc add -q data/raw || $(DVC_HINT)

run: demo-data
	@dvc repro || $(DVC_HINT)

# reports/pr.md: reports/report.md (what the test stage wrote) plus `dvc metrics diff --md` and
# `dvc params diff --md` against REV; a copy, so the tracked report stays as the pipeline wrote it
REV ?= HEAD
report: $(STAMP)
	$(VENV_BIN)python -m torchstages.cli report --out reports/pr.md --against $(REV)

# test files run in parallel, one worker per core up to 8 (pytest-xdist); each file's tests stay
# in one worker, as the end-to-end files share one project per file. TEST_JOBS=0: one process
TEST_JOBS ?= auto
PYTEST    := $(VENV_BIN)python -m pytest -n $(TEST_JOBS) --maxprocesses 8 --dist loadfile

test: $(STAMP)
	$(PYTEST)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

lint: $(STAMP)
	$(VENV_BIN)ruff check src stages tests bench

# speed benchmarks (about 25 min on 2 cores; needs ../shared/datasets for MNIST): prints a table,
# keeps JSON in bench/results/; BENCH_ARGS e.g. "--runs 1 --only train"
bench: $(STAMP)
	$(VENV_BIN)python bench/run_all.py $(BENCH_ARGS)

# one universal resolve against PyPI: every platform and Python 3.11-3.13 in one file, with
# environment markers; plain pip installs it. Keeps the current pins where they still fit;
# make lock LOCK_ARGS=--upgrade moves everything to the newest allowed versions
lock: $(STAMP)
	$(VENV_BIN)uv pip compile pyproject.toml --extra dev --universal --fork-strategy fewest \
	  --index-url https://pypi.org/simple --custom-compile-command "make lock" \
	  --quiet $(LOCK_ARGS) -o requirements.lock

clean:
	rm -rf .pytest_cache .ruff_cache
