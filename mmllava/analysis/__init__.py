"""Analysis helpers behind ``tools/analysis`` (benchmarks)."""
