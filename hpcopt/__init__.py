"""hpcopt: MPI-parallel parameter fitting with HDF5 checkpoints and exact resume."""

__version__ = "0.1.0"
