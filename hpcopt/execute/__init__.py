"""Running an optimisation: the one loop and the executors it evaluates through.

- loop: ask, evaluate, tell, checkpoint, log (generational and asynchronous schedules);
- executor: the executor interface and its serial backend (one process, no MPI);
- mpi: the MPI backend (the only module that imports mpi4py).
"""
