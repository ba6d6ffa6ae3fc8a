"""eFEL features of simulated traces, scored against their targets (scoring.py, the
only module that imports efel for computing)."""
