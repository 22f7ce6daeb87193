# Two commands on a fresh machine: `make demo` and `make test`. Everything else installs itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: demo test lint bench mutate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch first: left to resolve `torch` itself, pip pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(VENV): $(STAMP)

demo: $(STAMP)
	$(BIN)/bitfab demo -o $(DEMO_OUT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	# Two workers (Verilator builds and cocotb runs are single-threaded; sim/_runner.py locks each build);
	# worksteal: an idle worker takes queued cases from a busy one, so neither ends the run alone.
	$(BIN)/python -m pytest -W error -n 2 --dist worksteal

# Single-site bugs planted in hw/ must each make a co-simulation fail (scripts/mutate.py).
mutate: $(STAMP)
	$(BIN)/python scripts/mutate.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_numerics.py
	$(BIN)/python benchmarks/bench_cosim.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache .hypothesis .sim_build .bitfab_cache
