"""NEURON's start-up in a process: the only place that imports neuron.

``neuron(comm)`` initialises NEURON once per process; with a communicator it joins
MPI (``h.nrnmpi_init()``), must see the same world as mpi4py, and gives every rank
its own one-host subworld for independent single-cell simulations.
"""

import contextlib
import os
import sys

from ..errors import HpcoptError

_TEMPLATE = """
begintemplate HpcoptCell
  public soma, dend, apic, axon, myelin, all, somatic, axonal, basal, apical, myelinated, CellRef
  objref this, CellRef, all, somatic, axonal, basal, apical, myelinated
  proc init() {
    all = new SectionList()
    somatic = new SectionList()
    axonal = new SectionList()
    basal = new SectionList()
    apical = new SectionList()
    myelinated = new SectionList()
    forall delete_section()
    CellRef = this
  }
  create soma[1], dend[1], apic[1], axon[1], myelin[1]
endtemplate HpcoptCell

func hpcopt_advance() { local n
  n = 0
  while (t < $1 && n < $2) {
    fadvance()
    n += 1
  }
  return n
}
"""


class SetupError(HpcoptError):
    """NEURON cannot be set up as configured (mechanisms, MPI)."""


_h = None


def neuron(comm=None):
    """NEURON's ``h``, initialised once per process.

    With a communicator, NEURON joins MPI (``h.nrnmpi_init()``), must see the same
    world as mpi4py, and every rank gets its own one-host subworld for
    independent single-cell simulations.
    """
    global _h
    if _h is not None:
        return _h
    environment(mpi=comm is not None)
    with stdout_redirected():  # NEURON prints "numprocs=N" into the job's output
        from neuron import h

        if comm is not None:
            h.nrnmpi_init()
    if comm is not None:
        pc = h.ParallelContext()
        if int(pc.nhost_world()) != comm.Get_size() or int(pc.id_world()) != comm.Get_rank():
            raise SetupError(
                f"NEURON's MPI world ({int(pc.nhost_world())} ranks) differs from mpi4py's "
                f"({comm.Get_size()}): NEURON loaded another MPI library than mpi4py "
                f"({_mpi_library() or 'unknown'}). Put a directory holding a symlink libmpi.so -> that "
                "library first on LD_LIBRARY_PATH, or set MPI_LIB_NRN_PATH to it (docs/mpi.md)"
            )
        pc.subworlds(1)
    h.load_file("stdrun.hoc")
    h.load_file("import3d.hoc")
    h(_TEMPLATE)
    _h = h
    return h


def environment(mpi):
    """Set NEURON's environment up before anything imports it (a user's code may, as
    BluePyOpt does): the MPI library mpi4py loaded (``mpi``), no GUI."""
    if mpi and "MPI_LIB_NRN_PATH" not in os.environ:
        library = _mpi_library()
        if library:
            os.environ["MPI_LIB_NRN_PATH"] = library
    os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")  # no "no DISPLAY" warning on every rank


def load_library():
    """Import NEURON's Python package (without joining MPI: ``neuron`` does that)."""
    with stdout_redirected():
        import neuron as package
    return package


def mark_loaded(directory):
    """Tell neuron.load_mechanisms that the mechanisms of ``directory`` (a folder where
    nrnivmodl ran) are loaded: NEURON loaded ./x86_64 at import without noting it, and
    a second load of the same library fails."""
    package = load_library()
    if directory not in package.nrn_dll_loaded:
        package.nrn_dll_loaded.append(directory)


@contextlib.contextmanager
def stdout_redirected(fd=None):
    """Send file descriptor 1 to ``fd`` (default /dev/null) for a while: NEURON's C code
    prints there, where the commands print their results."""
    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY) if fd is None else None
    os.dup2(null if fd is None else fd, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        if null is not None:
            os.close(null)


def _mpi_library():
    """Path of the libmpi that this process (mpi4py) loaded, from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "libmpi" in line and "/" in line}
    except OSError:
        return ""
    paths = sorted(p for p in paths if os.path.basename(p).startswith("libmpi.so"))
    return paths[0] if paths else ""


def version():
    """NEURON's version, without importing it (importing it early would miss the
    environment neuron() sets up)."""
    from importlib import metadata

    return metadata.version("neuron")
