"""Which MPI this venv runs on, and whether NEURON joined the same one (make test-mpi-matrix).

Run under a launcher: ``mpiexec -n 2 python tests/mpi_check.py``. Rank 0 prints the MPI
library's version (its first line), the file mpi4py loaded, the thread level, and NEURON's
world beside mpi4py's on every rank; exits 1 if they differ on any rank (hpcopt's own
start-up check in hpcopt/neuron/session.py, which raises SetupError then).
"""

import sys

from mpi4py import MPI

from hpcopt.errors import HpcoptError
from hpcopt.execute.mpi import library_version
from hpcopt.neuron import session

LEVELS = {MPI.THREAD_SINGLE: "single", MPI.THREAD_FUNNELED: "funneled",
          MPI.THREAD_SERIALIZED: "serialized", MPI.THREAD_MULTIPLE: "multiple"}


def main():
    comm = MPI.COMM_WORLD
    try:
        h = session.neuron(comm)
        pc = h.ParallelContext()
        mine = (int(pc.id_world()), int(pc.nhost_world()), "")
    except HpcoptError as err:
        mine = (-1, -1, str(err))
    seen = comm.gather(mine, root=0)
    if comm.Get_rank() == 0:
        print(f"MPI library:   {library_version()}")
        print(f"mpi4py loaded: {session._mpi_library()} (thread level {LEVELS.get(MPI.Query_thread())})")
        for rank, (nrn_rank, nrn_size, error) in enumerate(seen):
            verdict = "ok" if (nrn_rank, nrn_size) == (rank, comm.Get_size()) else f"DIFFERENT {error}"
            print(f"NEURON nhost:  rank {rank}: NEURON {nrn_rank} of {nrn_size}, mpi4py {rank} of "
                  f"{comm.Get_size()}: {verdict}")
    failed = comm.allreduce(bool(mine[2]) or mine[:2] != (comm.Get_rank(), comm.Get_size()), op=MPI.LOR)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
