"""Benchmark scripts: `python -m hil.bench.NAME` prints JSON and a human table."""
