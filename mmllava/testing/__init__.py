"""Support for mmllava's tests: what they share beyond fixtures."""
