# hpcopt: every target installs what it needs first (into .venv) and is what CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
NP     ?= 2
STAMP  := $(VENV)/.installed

.PHONY: install run example-stp example-stdp test test-unit test-N test-slurm bench bench-quick lint clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[mpi,test]'
	touch $(STAMP)

# The built-in example (examples/cell: a 5-compartment HH cell with known parameters)
# under mpiexec -n $(NP); writes run/example.h5 and prints the best parameters
run: install
	mkdir -p run
	$(BIN)/mpiexec -n $(NP) $(BIN)/hpcopt run examples/cell/config.json -o run/example.h5 --overwrite
	$(BIN)/python examples/compare_truth.py run/example.h5 examples/cell/truth.json

# The Tsodyks-Markram short-term plasticity example (examples/stp: BluePyOpt's in-vitro trace)
# under mpiexec -n $(NP); writes run/stp.h5, prints the fit beside the values BluePyOpt's
# notebook reports and fails if it fits the trace worse than they do
example-stp: install
	mkdir -p run
	$(BIN)/mpiexec -n $(NP) $(BIN)/hpcopt run examples/stp/config.json -o run/stp.h5 --overwrite
	$(BIN)/python examples/stp/compare.py run/stp.h5

# The Graupner-Brunel STDP example (examples/stdp) under mpiexec -n $(NP): IBEA at the
# budget of BluePyOpt's notebook (100 x 200), compared with the notebook's fit, then
# resumed to 800 generations and compared again; writes run/stdp.h5. It does not fail
# when the notebook's fit is better (it is, by 12 % after 800 generations: examples/stdp/README.md)
example-stdp: install
	mkdir -p run
	$(BIN)/mpiexec -n $(NP) $(BIN)/hpcopt run examples/stdp/config.json -o run/stdp.h5 --overwrite -q
	$(BIN)/python examples/stdp/compare.py run/stdp.h5
	$(BIN)/mpiexec -n $(NP) $(BIN)/hpcopt resume run/stdp.h5 --generations 800 -q
	$(BIN)/python examples/stdp/compare.py run/stdp.h5

# Everything: unit tests, then MPI tests at 1, 2 and 3 ranks
test: install
	$(BIN)/python -m pytest -q tests

test-unit: install
	$(BIN)/python -m pytest -q -m "not mpi" tests

# The MPI tests at one size: make test-N NP=5
test-N: install
	HPCOPT_TEST_RANKS=$(NP) $(BIN)/python -m pytest -q -m mpi tests

# The job scripts on a real one-node SLURM cluster on this machine (as root; installs
# SLURM and munge from Debian's packages if missing; tests/slurm/cluster.sh)
test-slurm: install
	tests/slurm/cluster.sh install
	tests/slurm/cluster.sh run $(BIN)/python -m pytest -q tests/test_slurm.py

BENCHMARKS := zdt1_vs_bluepyopt cmaes_vs_bluepyopt cell_vs_bluepyopt evaluation_overhead l5pc_speed bluepyopt_run scheduler rank0_cost memory

# Benchmarks: measured ratios, each written to benchmarks/results/, then benchmarks/RESULTS.md
bench: install
	for b in $(BENCHMARKS); do $(BIN)/python benchmarks/$$b.py || exit 1; done
	$(BIN)/python benchmarks/summary.py

# A smoke run of the benchmarks (CI): asserts nothing about speed or quality, writes nothing
bench-quick: install
	for b in $(BENCHMARKS); do $(BIN)/python benchmarks/$$b.py --quick --no-write || exit 1; done

lint: install
	$(BIN)/python -m pip install --quiet ruff
	$(BIN)/ruff check hpcopt tests benchmarks examples

clean:
	rm -rf $(VENV) run *.egg-info
