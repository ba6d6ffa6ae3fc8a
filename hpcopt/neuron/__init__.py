"""NEURON: everything that runs inside NEURON.

- session: start-up (the only ``import neuron``), MPI agreement, NEURON's prints;
- mechanisms: the model's .mod files, compiled once and loaded by every rank;
- cell: a CellModel built once per process (morphology, mechanisms, parameters);
- simulation: one protocol run on that cell (stimuli, recordings, integration).
"""
