"""Benchmarks: `python -m benchmarks.bench_<topic>`; each prints medians and ratios measured in the same run."""
