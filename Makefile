# canonml — set-up, demo, tests. Everything the project needs is installed from here.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# torch first, pinned: an unpinned torch (or one pulled in by a dependency) is a multi-GB CUDA build.
TORCH   := torch==2.13.0

# The page test drives Debian's headless Chromium (no browser download: the machine is offline).
CHROMIUM := /usr/bin/chromium

.PHONY: demo test test-fast lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/canon run --template digits-mlp

$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/pip install -q $(TORCH) -e '.[all,bench]'
	KERAS_BACKEND=torch $(BIN)/python bench/trainer_overhead.py
	$(BIN)/python bench/inference.py
	$(BIN)/python bench/compress.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/ddp.py
	$(BIN)/python bench/threads.py
	$(BIN)/python bench/tracking_overhead.py
	$(BIN)/python bench/run_phases.py
	$(BIN)/python bench/csv_scale.py
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/serve_load.py

clean:
	rm -rf $(VENV) runs .pytest_cache
