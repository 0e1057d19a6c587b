"""patches.*: the laws of the vision path (spec/properties.md; spec: Algorithms 75-78), and
the general laws (reference agreement, gradients, distributions, parameter counts) registered
on the vision algorithms. Patch rows are the adapter layout of the spec's columns:
``patch_extraction(I)[b, n]`` is X_p[:, n] of image b."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from conformance import calls
from conformance.assertions import assert_close, fail, tolerance
from conformance.properties.gradient import finite_difference
from conformance.properties.memory import assert_count
from conformance.properties.reference import forward_agreement, gradient_agreement
from conformance.registry import check
from conformance.strategies import cases_for
from conformance.strategies_vision import vit_cases


def _grid(I: np.ndarray, P: int) -> tuple[int, int]:
    return I.shape[2] // P, I.shape[3] // P


@check("patches.bijection", ("patch_extraction",), cases_for, line=r"X_p\[k P\^2")
def bijection(ctx, case):
    """On an image whose pixels are all different, every pixel appears exactly once."""
    I, P = case["I"], case["patch_size"]
    B, C, h, w = I.shape
    rng = case.rng()
    # distinct small integers are exact in every float dtype (<= 2048 values per image)
    distinct = np.stack([rng.permutation(C * h * w).reshape(C, h, w) for _ in range(B)])
    X = ctx.adapter.patch_extraction(distinct.astype(ctx.dtype), P)
    for b in range(B):
        values = np.sort(X[b].astype(np.float64).ravel())
        if values.shape[0] != C * h * w or not np.array_equal(values, np.arange(C * h * w)):
            seen = X[b].astype(np.int64).ravel()
            repeated = int(np.sum(np.bincount(seen, minlength=C * h * w) > 1))
            missing = int(np.sum(np.bincount(seen, minlength=C * h * w) == 0))
            fail(f"image {b}: the patches are not a permutation of the {C * h * w} pixels "
                 f"(P = {P}, grid {_grid(I, P)}): {repeated} pixel(s) appear more than once, "
                 f"{missing} never", expected="every pixel exactly once",
                 observed=f"{repeated} repeated, {missing} missing")
    ctx.observe(0.0)


def strided_convolution(I: np.ndarray, K: np.ndarray, P: int) -> np.ndarray:
    """The convolution of I (B, C, h, w) with K (d, C, P, P) at stride P, flattened row-major
    over its output grid: (B, N, d), in float64, written from its definition."""
    B = I.shape[0]
    n_h, n_w = _grid(I, P)
    out = np.zeros((B, n_h * n_w, K.shape[0]))
    for r in range(n_h):
        for c in range(n_w):
            window = I[:, :, r * P:(r + 1) * P, c * P:(c + 1) * P].astype(np.float64)
            out[:, r * n_w + c] = np.einsum("bkij,okij->bo", window, K)
    return out


@check("patches.convolution_identity", ("patch_extraction",), cases_for, line=r"r\\,n_w")
def convolution_identity(ctx, case):
    """reshape(K, d x C P^2) X_p equals the stride-P convolution with K, for a random K."""
    I, P = case["I"], case["patch_size"]
    K = case.rng().standard_normal((3, I.shape[1], P, P))
    rows = ctx.adapter.patch_extraction(I, P).astype(np.float64)  # (B, N, C P^2)
    assert_close(ctx, f"patches times the kernel (P = {P}, grid {_grid(I, P)}) vs the strided "
                 "convolution", rows @ K.reshape(K.shape[0], -1).T,
                 strided_convolution(I, K, P), tolerance(ctx.dtype), ("b", "n", "o"))


@check("patches.class_token_first", ("patch_embedding",), cases_for, line=r"e_0")
def class_token_first(ctx, case):
    """Column 0 is e_cls + W_p[:, 0] whatever the image; changing patch m changes column m+1
    only."""
    I, params, P = case["I"], case["params"], case["patch_size"]
    rng = case.rng()
    X = ctx.adapter.patch_embedding(I, params, P)
    cls = params["e_cls"].astype(np.float64)
    if "W_p" in params:
        cls = cls + params["W_p"][:, 0]
    tol = tolerance(ctx.dtype)
    assert_close(ctx, "column 0 (the class token) vs e_cls + W_p[:, 0]", X[:, 0],
                 np.broadcast_to(cls, X[:, 0].shape), tol, ("b", "i"))
    n_h, n_w = _grid(I, P)
    m = int(rng.integers(n_h * n_w))
    r, c = divmod(m, n_w)
    I2 = I.copy()
    I2[:, :, r * P:(r + 1) * P, c * P:(c + 1) * P] = rng.standard_normal(
        I2[:, :, r * P:(r + 1) * P, c * P:(c + 1) * P].shape).astype(I.dtype)
    X2 = ctx.adapter.patch_embedding(I2, params, P)
    others = [t for t in range(X.shape[1]) if t != m + 1]
    assert_close(ctx, f"every column but {m + 1} after changing patch {m} (grid row {r}, "
                 f"column {c})", X2[:, others], X[:, others], tol, ("b", "t", "i"))


def permute_patches(I: np.ndarray, P: int, perm: np.ndarray) -> np.ndarray:
    """The image whose patch n is patch perm[n] of I (grid row-major)."""
    n_h, n_w = _grid(I, P)
    out = np.empty_like(I)
    for n, src in enumerate(perm):
        (r, c), (rs, cs) = divmod(n, n_w), divmod(int(src), n_w)
        out[:, :, r * P:(r + 1) * P, c * P:(c + 1) * P] = \
            I[:, :, rs * P:(rs + 1) * P, cs * P:(cs + 1) * P]
    return out


@check("patches.permutation_invariance", ("vit_classifier",),
       lambda a, c, d: vit_cases(c, d, positions="none"), line=r"MHAttention")
def permutation_invariance(ctx, case):
    """Without positions, shuffling the patches of an image leaves p unchanged."""
    I, params, config = case["I"], case["params"], case["config"]
    P = config.patch_size
    perm = case.rng().permutation(config.n_patches)
    p = ctx.adapter.vit_classifier(I, params, config)
    q = ctx.adapter.vit_classifier(permute_patches(I, P, perm), params, config)
    assert_close(ctx, f"p after permuting the {config.n_patches} patches by {perm.tolist()}",
                 q, p, tolerance(ctx.dtype), calls.AXES["vit_classifier"])


@check("structure.distribution", ("vit_classifier",), cases_for, line=r"softmax")
def classes_are_a_distribution(ctx, case):
    """p is a probability vector over the classes for every image."""
    p = calls.forward(ctx.adapter, "vit_classifier", case.data)
    tol = tolerance(ctx.dtype)
    assert_close(ctx, "negative part of p", np.minimum(p, 0), np.zeros_like(p), tol,
                 calls.AXES["vit_classifier"])
    assert_close(ctx, "sum of p over the classes", p.astype(np.float64).sum(axis=-1),
                 np.ones(p.shape[0]), tol, ("b",))


def vit_count(c) -> int:
    """Algorithm 77 in closed form: patch projection, class token, positions, L pre-LN layers
    (attention, MLP, two layer norms), final layer norm, head."""
    d = c.d_e
    layer = 4 * (d * d + d) + (2 * d * c.d_mlp + c.d_mlp + d) + 4 * d
    positions = d * (c.n_patches + 1) if c.positions == "learned" else 0
    return d * c.d_patch + d + d + positions + c.L * layer + 2 * d + c.n_classes * (d + 1)


@st.composite
def _vit_configs(draw, alg, constrain, dtype):
    return draw(vit_cases(constrain, dtype))["config"]


@check("memory.parameter_count", ("vit_classifier",), _vit_configs,
       requires=("count_parameters",))
def vit_parameter_count(ctx, config):
    """The adapter's parameter count equals the closed form (and the canonical count)."""
    assert_count(ctx, config, vit_count(config))


VISION_FORWARD = ("patch_extraction", "patch_embedding", "vit_classifier")
check("reference.forward_agreement", VISION_FORWARD, cases_for, dtypes="all",
      line=r"return")(forward_agreement)
check("reference.gradient_agreement", ("vit_classifier_backward",), cases_for,
      dtypes="all")(gradient_agreement)
check("gradient.finite_difference", ("vit_classifier_backward",), cases_for,
      requires=lambda a: (a.removesuffix("_backward"),))(finite_difference)
