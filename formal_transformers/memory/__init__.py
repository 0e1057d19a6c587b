"""Memory accounting (spec/memory.md): exact parameter counts, the activations each path
keeps for its backward pass, predicted training and inference memory, and measurement of
the reference (tracemalloc) and of torch (live tensor storage on CPU, CUDA's allocator).

    from formal_transformers.memory import training_memory
    training_memory(get_preset("gpt2-small"), 8, 1024, "bfloat16", "adamw", "sdpa").peak

Modules: ``counts`` (M1-M11), ``activations`` (M15-M22), ``working`` (M23-M27),
``predict`` (M12-M14, M28-M32), ``modern`` (the modern decoder, M68-M70), ``baselines``
(the outside estimates beside every measurement, M71-M72), ``measure`` and ``runs``
(measurement), ``compare`` (tolerances), ``growth`` (the growth law), ``properties`` (the
memory laws).
"""

from formal_transformers.memory.counts import parameter_counts, tied_parameter_count
from formal_transformers.memory.predict import (
    Estimate,
    dtype_bytes,
    inference_memory,
    kv_cache_bytes,
    training_memory,
)

__all__ = ["Estimate", "dtype_bytes", "inference_memory", "kv_cache_bytes", "parameter_counts",
           "tied_parameter_count", "training_memory"]
