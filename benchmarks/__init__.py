"""Runnable benchmarks: `python -m benchmarks.NAME` prints figures beside a reference."""
