"""Speed without flags: the levers that make training and prediction cheaper on the same hardware.

- ``first_token``: the last encoder layer computes only the first token, all the classifier reads;
- ``cpu_dropout``: CPU dropout masks from a vectorised counter hash instead of torch's serial draws;
- ``cpu_threads``: one compute thread per usable CPU, and glibc keeping freed blocks for reuse.

docs/performance.md has what each one was measured to give.
"""
