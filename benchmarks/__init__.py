"""Benchmarks of skmeta against its peers; run ``python -m benchmarks``."""
