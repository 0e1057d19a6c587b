"""Fast PyTorch implementation of the spec for CPU and CUDA, in (batch, length, features) layout."""
