"""Benchmarks: thin loops over tasks x methods that write results.jsonl, results.md and pictures."""
