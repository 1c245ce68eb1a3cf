"""Benchmarks: `python -m bench.<name>` from the repository root; each prints its machine and figures."""
