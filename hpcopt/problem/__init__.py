"""Problems: parameter space, outcomes, and the evaluator each rank builds.

- space: ``Problem`` (bounds, unit cube <-> physical values, scores, the evaluator);
- outcome: ``Outcome`` and the status codes (ok, failed, timeout);
- function: a Python callable as the model;
- cell: a NEURON cell (hpcopt/neuron) scored by eFEL features (hpcopt/features).
"""
