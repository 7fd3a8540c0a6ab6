# The two commands of README.md: `make demo` and `make test`. Both set up what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
SAMPLE := samples/bbb_640x360.mp4

.PHONY: setup demo test test-all benchmark lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	VENV=$(VENV) scripts/setup.sh
	touch $@

demo: setup  # the demo replaces its own outputs in out/ (--force)
	mkdir -p out
	$(PY) -m streamcodec.cli encode $(SAMPLE) -o out/bbb.mkv --force
	$(PY) -m streamcodec.cli decode out/bbb.mkv -o out/bbb.decoded.mp4 --reference $(SAMPLE) --force

test: setup
	$(PY) -m pytest

test-all: setup
	$(PY) -m pytest -m "not gpu"

benchmark: setup
	$(PY) scripts/benchmarks/benchmark.py

lint: setup
	$(PY) -m ruff check streamcodec tests scripts
	$(PY) -m mypy
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf out .pytest_cache .mypy_cache
