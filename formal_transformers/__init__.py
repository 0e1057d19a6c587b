"""formal-transformers: the spec, its NumPy reference, a fast PyTorch implementation and a
property-based conformance suite for transformer algorithms (after Phuong & Hutter, 2022)."""

__version__ = "0.1.0"
