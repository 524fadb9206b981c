"""Benchmarks: each ``bench_<topic>.py`` exposes ``run() -> dict``; ``python -m benchmarks`` runs them all."""
