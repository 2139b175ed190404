# The two commands of the README:  `make demo`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
SAMPLE := sample/videos

.PHONY: install demo sample test test-fast lint bench clean

install: $(VENV)/.installed

# torch is pinned to the CPU build first, so that nothing pulls the CUDA wheels on a CPU machine
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[models,dev]"
	touch $@

$(SAMPLE)/ground_truth.json: | install
	$(PY) -m clipsift.sample $(SAMPLE)

sample: $(SAMPLE)/ground_truth.json

demo: install sample
	$(BIN)/snakemake --cores all
	$(BIN)/clipsift status

test: install
	$(BIN)/pytest -n 2 --durations=15

test-fast: install
	$(BIN)/pytest -n 2 -m "not slow"

lint: install sample
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint --config results=/tmp/clipsift-lint-results

bench: install
	$(BIN)/python bench/throughput.py

clean:
	rm -rf results sample .snakemake
