"""Strategies, tolerances and explained comparisons shared by the torch_impl tests.

(No __init__.py in this folder on purpose: a package named ``torch_impl`` under tests/ would
shadow the real one.) Hypothesis draws small sizes and a seed; arrays come from
``numpy.random.default_rng(seed)`` at unit scale, so every non-linearity is exercised and a
failing example is reproduced by its seed.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from formal_transformers.canonical import random_parameters  # noqa: F401 (re-exported)
from formal_transformers.hyperparameters import (
    ACTIVATIONS,
    Config,
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
)

SETTINGS = settings(max_examples=8, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

# reference.forward_agreement (spec/properties.md): float64 1e-10; float32 1e-5 relative;
# bfloat16 2^-6 relative. "Relative" is to the entry and to the array's largest magnitude,
# so that entries near zero (where a relative error is meaningless) are held to rtol * scale.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 2.0 ** -6}


def assert_close(actual: object, expected: object, what: str, spec: str, rtol: float,
                 scaled: bool = True) -> None:
    """|actual - expected| <= rtol (|expected| + scale), scale = max(1, max |expected|) when
    ``scaled`` else 1; a failure names the largest error, where, the values and the spec."""
    a = _numpy(actual)
    e = _numpy(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape}, expected {e.shape} ({spec})"
    if e.size == 0:
        return
    scale = max(1.0, float(np.abs(e).max())) if scaled else 1.0
    err = np.abs(a - e)
    bound = rtol * (np.abs(e) + scale)
    if np.all(err <= bound):
        return
    i = np.unravel_index(int(np.argmax(err - bound)), err.shape)
    rel = err[i] / max(abs(e[i]), 1e-300)
    raise AssertionError(
        f"{what} differs ({spec}): largest excess at index {tuple(int(k) for k in i)}: got "
        f"{a[i]!r}, expected {e[i]!r} (abs error {err[i]:.3e}, rel {rel:.3e}); largest abs "
        f"error {err.max():.3e}; tolerance rtol={rtol:g} x (|expected| + {scale:.3g}); "
        f"{int(np.sum(err > bound))} of {err.size} entries out of tolerance")


def _numpy(x: object) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def tensor(a: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A NumPy array as a torch tensor of ``dtype`` (floats) or int64 (integers)."""
    t = torch.as_tensor(np.asarray(a))
    return t.to(dtype) if t.is_floating_point() else t.long()


def columns(a: np.ndarray) -> list[np.ndarray]:
    """The reference's column matrices of a (B, l, d) batch: [a[b].T for b]."""
    return [np.ascontiguousarray(a[b].T) for b in range(a.shape[0])]


sizes = st.integers(min_value=1, max_value=4)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


@st.composite
def configs(draw, arch: str) -> Config:
    """A small config of ``arch`` ("decoder", "encoder", "encoder-decoder")."""
    H = draw(st.sampled_from([1, 2]))
    common = dict(N_V=draw(st.integers(3, 9)), l_max=draw(st.integers(2, 6)),
                  d_e=H * draw(st.integers(2, 3)), d_mlp=draw(st.integers(1, 5)), H=H,
                  activation=draw(st.sampled_from(ACTIVATIONS)),
                  layer_norm_eps=draw(st.sampled_from([0.0, 1e-5, 0.1])))
    if arch == "decoder":
        return DTransformerConfig(L=draw(st.integers(1, 2)), **common)
    if arch == "encoder":
        return ETransformerConfig(L=draw(st.integers(1, 2)),
                                  embedding_layer_norm=draw(st.booleans()), **common)
    return EDTransformerConfig(L_enc=draw(st.integers(1, 2)), L_dec=draw(st.integers(1, 2)),
                               **common)
