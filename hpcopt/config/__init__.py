"""Configuration: JSON files validated once into frozen, typed objects.

A leaf of the package: it imports nothing of the runtime (no NEURON, eFEL, MPI,
HDF5), so a config is checked the same way wherever it is read.

- schema: the run's config (problem, optimizer, checkpoint), ``load`` and ``parse``;
- cell: the ``problem.cell`` schema of a NEURON cell fitted to eFEL features;
- bluepyopt: BluePyOpt's L5PC-style files read into that schema;
- expressions: distance expressions of range parameters;
- fields: the validation helpers behind every one-line error.
"""

from .fields import read_json
from .parameter import Parameter
from .schema import ALGORITHMS, Checkpoint, Config, FunctionProblem, Optimizer, load, parse

__all__ = ["ALGORITHMS", "Checkpoint", "Config", "FunctionProblem", "Optimizer", "Parameter", "load", "parse",
           "read_json"]
