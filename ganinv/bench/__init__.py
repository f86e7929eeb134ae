"""Benchmarks: ``python -m ganinv.bench NAME --json OUT`` (speed targets live here)."""
