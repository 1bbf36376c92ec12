# Two commands set everything up on a fresh clone: `make run` and `make test`.
VENV    := .venv
PYTHON  := $(shell command -v python3.11 || command -v python3)
STAMP   := $(VENV)/.installed
# stages run `python stages/...`: make sure that is the venv's python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install demo-data run report test test-fast lint lock bench clean

install: $(STAMP)

# requirements.lock pins the whole resolved set (make lock refreshes it)
$(STAMP): pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# DVC rewrites .dvc/tmp/rwlock in place: a dvc killed during that write leaves JSON it cannot read,
# and every later dvc command stops until the file is removed (it only holds locks of dead runs)
RWLOCK_HINT = { status=$$?; if [ -e .dvc/tmp/rwlock ] && ! python -c \
	'import json, sys; json.load(open(sys.argv[1]))' .dvc/tmp/rwlock 2>/dev/null; then \
	echo "make: .dvc/tmp/rwlock was left half-written by a killed dvc; remove it" \
	"(rm .dvc/tmp/rwlock) and run again" >&2; fi; exit $$status; }

# data/raw is versioned by DVC (data/raw.dvc, committed; the demo's is): queued experiments check
# it out into their own workspace, and `dvc push` / `dvc pull` carry it to another machine
demo-data: $(STAMP)
	@if [ -z "$$(ls -A data/raw 2>/dev/null)" ]; then torchstages demo-data data/raw; \
	else echo "data/raw has data: leaving it as it is"; fi
	@dvc add -q data/raw || $(RWLOCK_HINT)

run: demo-data
	@dvc repro || $(RWLOCK_HINT)

# reports/pr.md: reports/report.md (what the test stage wrote) plus `dvc metrics diff --md` and
# `dvc params diff --md` against REV; a copy, so the tracked report stays as the pipeline wrote it
REV ?= HEAD
report: $(STAMP)
	python -m torchstages.cli report --out reports/pr.md --against $(REV)

test: $(STAMP)
	python -m pytest

test-fast: $(STAMP)
	python -m pytest -m "not slow"

lint: $(STAMP)
	ruff check src stages tests bench

# speed benchmarks (about 25 min on 2 cores; needs ../shared/datasets for MNIST): prints a table,
# keeps JSON in bench/results/; BENCH_ARGS e.g. "--runs 1 --only train"
bench: $(STAMP)
	python bench/run_all.py $(BENCH_ARGS)

lock: $(STAMP)
	pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf .pytest_cache .ruff_cache
