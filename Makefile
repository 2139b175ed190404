# The two commands of the README:  `make demo`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
SAMPLE := sample/videos

# LOCK=cpu (default) or LOCK=cuda: which hashed lock `make install` installs (requirements/).
LOCK ?= cpu
LOCKFILE := requirements/$(LOCK).lock.txt
# where `make lock` finds the torch CPU wheel (a folder or an index page of wheels)
TORCH_CPU_WHEELS ?= /opt/wheels

.PHONY: install demo sample test test-fast lint docs docs-serve lock bench clean

install: $(VENV)/.installed

# Every package comes from the hashed lock, nothing is resolved at install time (--no-deps), so a
# new upstream release cannot change a fresh install. The CPU lock names torch's CPU build
# (2.13.0+cpu); pip finds it through its find-links, e.g. PIP_FIND_LINKS=<folder or index of
# PyTorch's CPU wheels> where the machine has no copy (README, "The two commands").
$(VENV)/.installed: $(LOCKFILE) pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes --no-deps -r $(LOCKFILE)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	echo $(LOCK) > $@

# Refresh both locks from pyproject.toml and requirements/*.in (needs an installed venv for uv),
# and envs/clipsift.yaml from the CUDA lock. Then `make test`, and commit all three.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --extra models --extra dev --extra slurm \
	-c requirements/pins.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--generate-hashes --no-emit-package opencv-python --custom-compile-command "make lock" -q
lock: install
	$(UV_COMPILE) -c requirements/torch-cpu.in --find-links $(TORCH_CPU_WHEELS) -o requirements/cpu.lock.txt
	$(UV_COMPILE) -c requirements/torch-cuda.in -o requirements/cuda.lock.txt
	$(PY) requirements/conda_env.py

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
	$(MAKE) docs

# The reference site (docs/, mkdocs.yml): --strict fails on any warning, a broken link or anchor.
docs: install
	$(BIN)/mkdocs build --strict --quiet

docs-serve: install
	$(BIN)/mkdocs serve

bench: install
	$(BIN)/python bench/throughput.py

clean:
	rm -rf results sample .snakemake site
