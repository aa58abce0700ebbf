"""Benchmarks of candle-pipeline: `python -m bench` (full) or `python -m bench --quick`."""
