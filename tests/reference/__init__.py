"""Tests of reference_numpy, the literal float64 mirror of the spec (ARCHITECTURE.md)."""
