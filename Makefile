# hpcopt: every target installs what it needs first (into .venv) and is what CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
NP     ?= 2
STAMP  := $(VENV)/.installed

.PHONY: install browser run example-l5pc example-stp example-stdp example-network test test-unit test-N test-slurm test-mpi-matrix test-slurm-matrix bench bench-quick lint clean

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

# BluePyOpt's L5PC example, its files unchanged (fetched from PyPI into run/l5pc), fitted
# under mpiexec -n $(NP) with a short demonstration budget (IBEA 8 x 3: minutes, not the
# hours of BluePyOpt's own 100 x 100), then its best beside BluePyOpt's release parameters
example-l5pc: install
	$(BIN)/python examples/l5pc/l5pc.py config run/l5pc
	cd run/l5pc && $(abspath $(BIN))/nrnivmodl mechanisms > /dev/null 2>&1
	cd run/l5pc && $(abspath $(BIN))/mpiexec -n $(NP) $(abspath $(BIN))/hpcopt run config.json -o ../l5pc.h5 --overwrite -q
	$(BIN)/python examples/l5pc/l5pc.py compare run/l5pc.h5 run/l5pc

# The E/I network example (examples/network) under mpiexec -n 4, two ranks per evaluation
# (NEURON subworlds of 2): fits three synaptic weights to the firing the known weights
# in truth.json give; fails unless every objective ends within one std of its target
example-network: install
	@mkdir -p run
	$(BIN)/mpiexec -n 4 $(BIN)/hpcopt run examples/network/config.json -o run/network.h5 --overwrite
	$(BIN)/python examples/network/compare.py run/network.h5

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

# Everything: unit tests, then MPI tests at 1, 2 and 3 ranks. The report's page is opened in
# headless Chromium (tests/test_report.py): Debian's chromium and chromium-driver are installed
# with apt-get when missing (as root; elsewhere that one test skips, saying why)
BROWSER_PACKAGES := chromium chromium-driver

test: install browser
	$(BIN)/python -m pytest -q tests

browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 $(BROWSER_PACKAGES) || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 $(BROWSER_PACKAGES); }

test-unit: install browser
	$(BIN)/python -m pytest -q -m "not mpi" tests

# The MPI tests at one size: make test-N NP=5
test-N: install
	HPCOPT_TEST_RANKS=$(NP) $(BIN)/python -m pytest -q -m mpi tests

# The job scripts on a real one-node SLURM cluster on this machine (as root; installs
# SLURM and munge from Debian's packages if missing; tests/slurm/cluster.sh)
test-slurm: install
	tests/slurm/cluster.sh install
	tests/slurm/cluster.sh run $(BIN)/python -m pytest -q tests/test_slurm.py

# The MPI matrix: Debian's MPICH and Open MPI side by side (apt-get installs them if
# missing, as root), each with mpi4py built from source by its own mpicc into .venv-FAMILY
# (hpcopt and the test packages as in .venv, without the mpich wheel), then the MPI tests
# that tell one MPI from another under its own launcher: the library's version, NEURON's
# world beside mpi4py's (tests/mpi_check.py), rank invariance, golden runs at 3 ranks, a
# dead rank, signals and Ctrl-C, evaluation deadlines, a BluePyOpt evaluator at 3 ranks
MPI_FAMILIES     := mpich openmpi
mpich_PACKAGES   := libmpich-dev mpich
mpich_MPICC      := mpicc.mpich
mpich_MPIEXEC    := mpiexec.mpich
openmpi_PACKAGES := libopenmpi-dev openmpi-bin
openmpi_MPICC    := mpicc.openmpi
openmpi_MPIEXEC  := mpiexec.openmpi --allow-run-as-root --oversubscribe
INTERRUPTS       := tests/test_interrupts.py::test_signal_stops_with_a_complete_file_and_resume_repeats_nothing
RANK0_OWN        := tests/test_interrupts.py::test_a_signal_does_not_wait_for_rank_0s_own_evaluation
MPI_MATRIX_TESTS := tests/test_runs.py::test_same_result_at_every_size tests/test_runs.py::test_dead_rank_ends_the_job \
	tests/test_runs.py::test_waiting_ranks_do_not_spin tests/test_golden.py::test_run_equals_golden \
	$(INTERRUPTS) $(RANK0_OWN) \
	tests/test_interrupts.py::test_ctrl_c_is_a_clean_stop tests/test_deadline.py \
	tests/test_evaluator.py::test_runs_fail_gracefully_and_are_the_same_at_1_and_3_ranks_and_after_resume \
	tests/test_network.py::test_the_same_run_at_any_k_and_rank_count
# Deselected where the launcher, not hpcopt, loses the exit status 3 of a run stopped by a
# signal it forwarded (hpcopt stops cleanly and writes its file in these runs; docs/mpi.md):
# MPICH 4.0's mpiexec returns 0 (hydra's forced_cleanup, gone in MPICH 4.1), Open MPI's
# mpirun 1 after SIGTERM or SIGINT (SIGUSR1 keeps the 3)
mpich_DESELECT   := $(INTERRUPTS)[10] $(INTERRUPTS)[15] tests/test_interrupts.py::test_ctrl_c_is_a_clean_stop[2] \
	$(RANK0_OWN)[child] $(RANK0_OWN)[deadline]
openmpi_DESELECT := $(INTERRUPTS)[15] tests/test_interrupts.py::test_ctrl_c_is_a_clean_stop[2]

test-mpi-matrix:
	$(MAKE) -j2 $(MPI_FAMILIES:%=.venv-%/.installed)
	$(MAKE) $(MPI_FAMILIES:%=test-mpi-%)

# One family: make test-mpi-openmpi
test-mpi-%: .venv-%/.installed
	@echo "== MPI family $*: $($*_MPIEXEC)"
	$($*_MPIEXEC) -n 2 .venv-$*/bin/python tests/mpi_check.py
	HPCOPT_MPIEXEC="$($*_MPIEXEC)" HPCOPT_TEST_RANKS=2,3 .venv-$*/bin/python -m pytest -q -p no:cacheprovider \
	  $(MPI_MATRIX_TESTS) $(addprefix --deselect ,$($*_DESELECT))

# The MPI matrix under SLURM (tests/test_slurm_mpi.py): each family's venv in 3-task jobs of the
# repository's job scripts on a fresh one-node cluster (as test-slurm): MPICH's ranks started by
# hpcopt.sbatch's srun --mpi=pmi2, Open MPI's by its mpirun inside the allocation; NEURON's
# world beside mpi4py's, a run, and a run stopped by SIGUSR1 that requeues itself, against a run
# under the family's mpiexec; srun without PMI refused
test-slurm-matrix:
	$(MAKE) -j2 $(MPI_FAMILIES:%=.venv-%/.installed)
	$(MAKE) $(MPI_FAMILIES:%=test-slurm-mpi-%)

# One family: make test-slurm-mpi-mpich
test-slurm-mpi-%: .venv-%/.installed
	tests/slurm/cluster.sh install
	HPCOPT_MPI_FAMILY=$* HPCOPT_MPIEXEC="$($*_MPIEXEC)" tests/slurm/cluster.sh run \
	  .venv-$*/bin/python -m pytest -q -p no:cacheprovider tests/test_slurm_mpi.py

.PRECIOUS: .venv-%/.installed
# Both venvs build at once (mpi4py's compile takes minutes): apt-get waits for the other's
# dpkg lock; --no-cache-dir: pip would reuse the mpi4py it built against the other family
.venv-%/.installed: setup.cfg pyproject.toml
	command -v $($*_MPICC) >/dev/null && command -v $(firstword $($*_MPIEXEC)) >/dev/null || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends $($*_PACKAGES) || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends $($*_PACKAGES); }
	test -x .venv-$*/bin/python || $(PYTHON) -m venv .venv-$*
	.venv-$*/bin/python -m pip install --quiet --upgrade pip
	MPICC=$($*_MPICC) .venv-$*/bin/python -m pip install --quiet --no-cache-dir --no-binary mpi4py mpi4py
	flock setup.cfg .venv-$*/bin/python -m pip install --quiet -e '.[test]'  # one at a time: it writes hpcopt.egg-info here
	touch $@

BENCHMARKS := zdt1_vs_bluepyopt cmaes_vs_bluepyopt cell_vs_bluepyopt evaluation_overhead l5pc_speed bluepyopt_run scheduler rank0_cost memory scaling success_rate network

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
	rm -rf $(VENV) $(MPI_FAMILIES:%=.venv-%) run *.egg-info
