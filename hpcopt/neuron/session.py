"""NEURON's start-up in a process: the only place that imports neuron.

``neuron(comm, group)`` initialises NEURON once per process; with a communicator it
joins MPI (``h.nrnmpi_init()``), must see the same world as mpi4py, and splits it into
subworlds of ``group`` ranks (``pc.subworlds``): one rank each for independent
single-cell simulations, several for a network spread over them.
"""

import contextlib
import ctypes
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


def neuron(comm=None, group=1):
    """NEURON's ``h``, initialised once per process.

    With a communicator, NEURON joins MPI (``h.nrnmpi_init()``), must see the same
    world as mpi4py, and the world is split into subworlds of ``group`` consecutive
    ranks (its size a multiple of ``group``): ``pc.id()`` and ``pc.nhost()`` are then
    within the rank's subworld.
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
        pc.subworlds(group)
    h.load_file("stdrun.hoc")
    h.load_file("import3d.hoc")
    h(_TEMPLATE)
    _h = h
    return h


def environment(mpi):
    """Set NEURON's environment up before anything imports it (a user's code may, as
    BluePyOpt does): the MPI library mpi4py loaded (``mpi``), no GUI.

    NEURON takes the MPI library that defines ``MPI_Initialized`` in the process's
    global symbol scope if there is one, and only otherwise dlopens ``libmpi.so`` (a
    system MPI's, when one is installed), then ``MPI_LIB_NRN_PATH``, then
    ``libmpich.so``. Python loads mpi4py's library into a local scope, so it is made
    global here: NEURON then uses it whatever else the machine has.
    """
    library = _mpi_library() if mpi else ""
    if library:
        ctypes.CDLL(library, mode=os.RTLD_NOW | os.RTLD_GLOBAL | os.RTLD_NOLOAD)
        os.environ.setdefault("MPI_LIB_NRN_PATH", library)
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
    """Path of the MPI library this process (mpi4py) loaded: the mapped file that
    defines ``MPI_Initialized`` (libmpi.so.40 of Open MPI, libmpi.so.12 of the mpich
    wheel or Intel MPI, libmpich.so.12 of Debian's MPICH, ...); "" if none is loaded."""
    try:
        with open("/proc/self/maps") as f:
            maps = [line.split() for line in f]
    except OSError:
        return ""
    ranges = [(int(m[0].split("-")[0], 16), int(m[0].split("-")[1], 16), m[5]) for m in maps if len(m) >= 6]
    for path in sorted({p for _, _, p in ranges if "mpi" in os.path.basename(p) and ".so" in p}):
        try:
            address = ctypes.cast(ctypes.CDLL(path, mode=os.RTLD_NOW | os.RTLD_NOLOAD).MPI_Initialized, ctypes.c_void_p)
        except (OSError, AttributeError):
            continue
        for start, end, owner in ranges:
            if start <= address.value < end:
                return owner
    return ""


def version():
    """NEURON's version, without importing it (importing it early would miss the
    environment neuron() sets up)."""
    from importlib import metadata

    return metadata.version("neuron")
