"""Memory accounting (spec/memory.md): exact parameter counts, the activations each path
keeps for its backward pass, predicted training and inference memory, and measurement of
the reference (tracemalloc) and of torch (live tensor storage on CPU, CUDA's allocator)."""
