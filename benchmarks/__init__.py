"""Benchmarks of anysend against baselines measured in the same run (not tests).

Run them all with ``python -m benchmarks.run`` (or ``nox -s bench``); see
``docs/performance.md`` for what each one measures and the figures of the last run.
"""
