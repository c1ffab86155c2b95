"""Benchmarks: `make bench` runs bench/fanout.py (see docs/BENCHMARKS.md)."""
