"""Property-based conformance suite: point it at any implementation through an adapter."""
