"""torch_impl's whole models on a chosen device and SDPA kernel, behind the adapter protocol.

The bundled adapter (conformance/adapters/torch_adapter.py) runs on the CPU. This one runs
the four architectures -- D, ED, E transformers (spec: Algorithms 8-10) and the modern decoder
(Algorithm 65) -- on ``device`` in the dtype under test (bfloat16 by default), optionally with
``scaled_dot_product_attention`` restricted to one kernel (``torch.nn.attention.sdpa_kernel``):
"flash", "efficient" (memory-efficient) or "math". A kernel that cannot run a call raises
(PyTorch finds no available kernel) instead of falling back silently, so a passing run says
the named kernel computed every attention. For the command line (``--impl``):

    formal-transformers verify --impl conformance.adapters.torch_device:CUDA_BF16 \\
        --only reference.forward_agreement
    (also CUDA_FLASH, CUDA_EFFICIENT; CPU_BF16 runs the same on the CPU)
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from conformance.adapters.torch_adapter import TorchAdapter, _np, _t
from formal_transformers.errors import ConfigError
from torch_impl.models import model_class, probabilities

KERNELS = ("flash", "efficient", "math")


def sdpa_kernel(kernel: str | None):
    """A context restricting SDPA to ``kernel`` (None: PyTorch's choice)."""
    if kernel is None:
        return nullcontext()
    from torch.nn.attention import SDPBackend
    from torch.nn.attention import sdpa_kernel as restrict

    backend = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
               "math": SDPBackend.MATH}[kernel]
    return restrict([backend])


ARCHITECTURES = ("d_transformer", "e_transformer", "ed_transformer", "modern_d_transformer")


class DeviceTorchAdapter(TorchAdapter):
    """torch_impl's architectures on ``device`` (and SDPA ``kernel``), dtypes ``dtypes``.

    ``head_multiple``: ``constrain`` rounds each drawn head size up to a multiple of it (8 by
    default on CUDA: the fused kernels serve head sizes such as 64 and 128, and may refuse
    others, which would test PyTorch's kernel selection instead of the model).
    ``grouped_heads`` False: the modern decoder is drawn with G = H key/value heads (CUDA's
    memory-efficient kernel takes no grouped-query attention).
    """

    def __init__(self, device: str = "cuda", kernel: str | None = None,
                 dtypes: tuple[str, ...] = ("bfloat16",),
                 algorithms: tuple[str, ...] = ARCHITECTURES, head_multiple: int | None = None,
                 grouped_heads: bool = True):
        if kernel is not None and kernel not in KERNELS:
            raise ConfigError(f"kernel must be one of {KERNELS} or None, got {kernel!r}")
        unknown = sorted(set(algorithms) - set(ARCHITECTURES))
        if unknown:
            raise ConfigError(f"algorithms must be among {ARCHITECTURES}, got {unknown}")
        super().__init__()
        self.device, self.kernel = torch.device(device), kernel
        self.dtypes, self.algorithms = tuple(dtypes), tuple(algorithms)
        self.head_multiple = head_multiple or (8 if self.device.type == "cuda" else 1)
        self.grouped_heads = grouped_heads
        self.name = f"torch_impl[{device}{'' if kernel is None else ', ' + kernel}]"

    def constrain(self, algorithm: str, sizes: dict) -> dict:
        """Head sizes (d_e / H, or the modern decoder's d_head) rounded up to head_multiple;
        the modern decoder's G = H without grouped_heads."""
        sizes = super().constrain(algorithm, sizes)
        m = self.head_multiple
        if algorithm == "modern_d_transformer":
            groups = {} if self.grouped_heads else {"G": sizes["H"]}
            return sizes | {"d_head": -(-sizes["d_head"] // m) * m} | groups
        if algorithm in ARCHITECTURES:
            return sizes | {"d_e": sizes["H"] * (-(-sizes["d_e"] // (sizes["H"] * m)) * m)}
        return sizes

    def _probabilities(self, config, params, *tokens):
        """softmax of the model's logits on the device; P back on the CPU as NumPy."""
        model = model_class(config).from_canonical(
            config, {k: _t(v) for k, v in params.items()}, device=self.device)
        with torch.no_grad(), sdpa_kernel(self.kernel):
            logits = model(*(_t(t).to(self.device) for t in tokens))
        return _np(probabilities(logits))

    def d_transformer(self, x, params, config):
        return self._probabilities(config, params, x)

    def e_transformer(self, x, params, config):
        return self._probabilities(config, params, x)

    def ed_transformer(self, z, x, params, config):
        return self._probabilities(config, params, z, x)

    def modern_d_transformer(self, x, params, config):
        return self._probabilities(config, params, x)


CUDA_BF16 = DeviceTorchAdapter("cuda")
# CUDA's flash kernel takes no attention mask, and the modern decoder always passes one
# (windows, ALiBi's bias): its attention cannot run on flash, so it is not declared there.
CUDA_FLASH = DeviceTorchAdapter("cuda", "flash", algorithms=ARCHITECTURES[:3])
# CUDA's memory-efficient kernel takes masks but no grouped-query attention (G < H).
CUDA_EFFICIENT = DeviceTorchAdapter("cuda", "efficient", grouped_heads=False)
CPU_BF16 = DeviceTorchAdapter("cpu", dtypes=("bfloat16", "float32"))
