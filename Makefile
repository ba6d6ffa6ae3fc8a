# hpcopt: every target installs what it needs first (into .venv) and is what CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
NP     ?= 2
STAMP  := $(VENV)/.installed

.PHONY: install run test test-unit test-N bench bench-quick lint clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[mpi,test]'
	touch $(STAMP)

# The built-in example under mpiexec -n $(NP); writes run/example.h5
run: install
	mkdir -p run
	$(BIN)/mpiexec -n $(NP) $(BIN)/hpcopt run examples/zdt1.json -o run/example.h5 --overwrite
	$(BIN)/hpcopt best run/example.h5

# Everything: unit tests, then MPI tests at 1, 2 and 3 ranks
test: install
	$(BIN)/python -m pytest -q tests

test-unit: install
	$(BIN)/python -m pytest -q -m "not mpi" tests

# The MPI tests at one size: make test-N NP=5
test-N: install
	HPCOPT_TEST_RANKS=$(NP) $(BIN)/python -m pytest -q -m mpi tests

# Benchmarks: measured ratios, written to benchmarks/results/
bench: install
	$(BIN)/python benchmarks/zdt1_vs_bluepyopt.py

# A smoke run of the benchmarks (CI): asserts nothing about speed or quality, writes nothing
bench-quick: install
	$(BIN)/python benchmarks/zdt1_vs_bluepyopt.py --quick --no-write

lint: install
	$(BIN)/python -m pip install --quiet ruff
	$(BIN)/ruff check hpcopt tests benchmarks

clean:
	rm -rf $(VENV) run *.egg-info
