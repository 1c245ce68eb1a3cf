"""Studies: the ablations and sweeps of the FER literature as files, run on Ray Tune, reported with intervals.

spec.py parses and validates a study file (torch- and Ray-free), runs.py keeps a run's status files, runner.py runs
the trials on Ray Tune (the only module that imports ray), report.py turns the trials' checkpoints into statistics.
"""
