"""What a run keeps on disk.

- runfile: the HDF5 run file (the only module that imports h5py), written atomically;
- journal: the JSON-lines journal of evaluations since the last checkpoint;
- snapshot: a consistent copy of a run file read for status, report and export.
"""
