"""Benchmarks for Rapport (see bench/README.md)."""
