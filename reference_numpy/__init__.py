"""Slow, literal, float64 NumPy mirror of the spec's pseudocode, line by line (spec/)."""
