"""torch_impl computes the reference's function: primitives, their gradients, the three
architectures, their training-loss gradients, training and sampling (property
reference.forward_agreement / reference.gradient_agreement / training.step_agreement,
spec/properties.md). float64 to 1e-10, float32 to 1e-5 relative, bfloat16 to 2^-6 relative."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch_cases import SETTINGS, TOLERANCE, assert_close, columns, seeds, sizes, tensor

import reference_numpy as ref
import torch_impl as ti
from formal_transformers.hyperparameters import ACTIVATIONS
from reference_numpy.unembedding import unembedding_loss  # the forward of Algorithm 23

DTYPES = [torch.float64, torch.float32]
MASKS = ("none", "causal", "random", "random+causal")


def _mask(rng: np.random.Generator, kind: str, B: int, l_z: int, l_x: int):
    """(mask for torch or None, causal flag, the reference's Mask of each sequence)."""
    causal = "causal" in kind
    mask = None
    if "random" in kind:
        mask = rng.random((B, l_z, l_x)) < 0.6
        mask[:, 0, :] = True  # no query attends to nothing, even under the causal mask
    full = np.ones((B, l_z, l_x), bool) if mask is None else mask
    if causal:
        full = full & (np.arange(l_z)[:, None] <= np.arange(l_x)[None, :])
    return mask, causal, list(full)


@st.composite
def attention_cases(draw, heads: bool):
    rng = np.random.default_rng(draw(seeds))
    B, l_x, l_z, d_x, d_z, d_attn, d_out = (draw(sizes) for _ in range(7))
    X, Z = rng.normal(size=(B, l_x, d_x)), rng.normal(size=(B, l_z, d_z))
    if heads:
        H, d_mid = draw(st.integers(1, 3)), draw(sizes)
        p = {"W_q": (H, d_attn, d_x), "b_q": (H, d_attn), "W_k": (H, d_attn, d_z),
             "b_k": (H, d_attn), "W_v": (H, d_mid, d_z), "b_v": (H, d_mid),
             "W_o": (d_out, H * d_mid), "b_o": (d_out,)}
    else:
        p = {"W_q": (d_attn, d_x), "b_q": (d_attn,), "W_k": (d_attn, d_z), "b_k": (d_attn,),
             "W_v": (d_out, d_z), "b_v": (d_out,)}
    params = {k: rng.normal(size=s) for k, s in p.items()}
    mask, causal, Masks = _mask(rng, draw(st.sampled_from(MASKS)), B, l_z, l_x)
    dV = rng.normal(size=(B, l_x, d_out))
    return X, Z, params, mask, causal, Masks, dV


def _sum_grads(per_sequence: list[dict], batched: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Stack the per-sequence input gradients (transposed to (l, d)), sum parameter ones."""
    out = {}
    for k in per_sequence[0]:
        vals = [g[k] for g in per_sequence]
        out[k] = np.stack([v.T for v in vals]) if k in batched else np.sum(vals, axis=0)
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("heads", [False, True], ids=["attention", "mhattention"])
@SETTINGS
@given(data=st.data())
def test_attention_and_its_gradient_agree_with_the_reference(dtype, heads, data):
    """Spec: Algorithms 4-5 and 19-20; masks in the spec's Mask[t_z, t_x] sense."""
    X, Z, params, mask, causal, Masks, dV = data.draw(attention_cases(heads))
    fwd, bwd = (ti.mh_attention, ti.mhattention_backward) if heads else (
        ti.attention, ti.attention_backward)
    r_fwd, r_bwd = (ref.mh_attention, ref.REGISTRY["mhattention_backward"]) if heads else (
        ref.attention, ref.REGISTRY["attention_backward"])
    T = {k: tensor(v, dtype) for k, v in params.items()}
    m = None if mask is None else torch.as_tensor(mask)
    out = fwd(tensor(X, dtype), tensor(Z, dtype), **T, mask=m, causal=causal)
    grads = bwd(tensor(dV, dtype), tensor(X, dtype), tensor(Z, dtype), **T, mask=m,
                causal=causal)
    expected, caches = [], []
    for X_b, Z_b, M_b in zip(columns(X), columns(Z), Masks, strict=True):
        caches.append({})
        expected.append(r_fwd(X_b, Z_b, **params, Mask=M_b, cache=caches[-1]).T)
    spec = "Algorithm 5" if heads else "Algorithm 4"
    assert_close(out, np.stack(expected), "V_tilde", spec, TOLERANCE[dtype])
    r_grads = _sum_grads([r_bwd(dV_b, c) for dV_b, c in zip(columns(dV), caches, strict=True)],
                         ("X", "Z"))
    for k, g in r_grads.items():
        assert_close(grads[k], g, f"gradient of {k}", f"backward of {spec}", TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@SETTINGS
@given(seed=seeds, B=sizes, l_z=sizes, d_x=sizes, d_attn=sizes)
def test_basic_attention_agrees_with_the_reference(dtype, seed, B, l_z, d_x, d_attn):
    """Spec: Algorithm 3 (one query token, no mask)."""
    rng = np.random.default_rng(seed)
    e, E = rng.normal(size=(B, d_x)), rng.normal(size=(B, l_z, d_x + 1))
    p = {"W_q": rng.normal(size=(d_attn, d_x)), "b_q": rng.normal(size=d_attn),
         "W_k": rng.normal(size=(d_attn, d_x + 1)), "b_k": rng.normal(size=d_attn),
         "W_v": rng.normal(size=(2, d_x + 1)), "b_v": rng.normal(size=2)}
    out = ti.basic_attention(tensor(e, dtype), tensor(E, dtype),
                             **{k: tensor(v, dtype) for k, v in p.items()})
    expected = np.stack([ref.basic_attention(e[b], E[b].T, **p) for b in range(B)])
    assert_close(out, expected, "v_tilde", "Algorithm 3", TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@SETTINGS
@given(seed=seeds, B=sizes, l=sizes, d_e=st.integers(2, 5),
       eps=st.sampled_from([0.0, 1e-5, 0.1]))
def test_layer_norm_and_its_gradient_agree_with_the_reference(dtype, seed, B, l, d_e, eps):
    """Spec: Algorithms 6 and 21, column by column. d_e >= 2: with one feature, e - m is
    rounding noise that 1/sqrt(v + eps) amplifies (ill-conditioned, not a disagreement)."""
    rng = np.random.default_rng(seed)
    X, dY = rng.normal(size=(B, l, d_e)) * 3 + 1, rng.normal(size=(B, l, d_e))
    gamma, beta = rng.normal(size=d_e), rng.normal(size=d_e)
    out = ti.layer_norm(tensor(X, dtype), tensor(gamma, dtype), tensor(beta, dtype), eps)
    grads = ti.layer_norm_backward(tensor(dY, dtype), tensor(X, dtype), tensor(gamma, dtype),
                                   tensor(beta, dtype), eps)
    exp = np.zeros_like(X)
    r = {"X": np.zeros_like(X), "gamma": np.zeros(d_e), "beta": np.zeros(d_e)}
    for b, t in np.ndindex(B, l):
        c: dict = {}
        exp[b, t] = ref.layer_norm(X[b, t], gamma, beta, eps, cache=c)
        g = ref.REGISTRY["layer_norm_backward"](dY[b, t], c)
        r["X"][b, t] = g["e"]
        r["gamma"] += g["gamma"]
        r["beta"] += g["beta"]
    assert_close(out, exp, "layer_norm", "Algorithm 6", TOLERANCE[dtype])
    for k in r:
        assert_close(grads[k], r[k], f"gradient of {k}", "Algorithm 21", TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@SETTINGS
@given(seed=seeds, B=sizes, l=sizes, d_e=sizes, d_mlp=sizes,
       activation=st.sampled_from(ACTIVATIONS))
def test_mlp_and_its_gradient_agree_with_the_reference(dtype, seed, B, l, d_e, d_mlp,
                                                       activation):
    """Spec: Algorithms 16 and 22."""
    rng = np.random.default_rng(seed)
    X, dY = rng.normal(size=(B, l, d_e)), rng.normal(size=(B, l, d_e))
    p = {"W_mlp1": rng.normal(size=(d_mlp, d_e)), "b_mlp1": rng.normal(size=d_mlp),
         "W_mlp2": rng.normal(size=(d_e, d_mlp)), "b_mlp2": rng.normal(size=d_e)}
    T = {k: tensor(v, dtype) for k, v in p.items()}
    out = ti.mlp(tensor(X, dtype), **T, activation=activation)
    grads = ti.mlp_backward(tensor(dY, dtype), tensor(X, dtype), **T, activation=activation)
    caches = [{} for _ in range(B)]
    exp = [ref.mlp(X_b, **p, activation=activation, cache=c).T
           for X_b, c in zip(columns(X), caches, strict=True)]
    assert_close(out, np.stack(exp), "mlp", "Algorithm 16", TOLERANCE[dtype])
    r = _sum_grads([ref.REGISTRY["mlp_backward"](d, c)
                    for d, c in zip(columns(dY), caches, strict=True)], ("X",))
    for k, g in r.items():
        assert_close(grads[k], g, f"gradient of {k}", "Algorithm 22", TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@SETTINGS
@given(seed=seeds, B=sizes, l=sizes, d_e=sizes, N_V=st.integers(2, 7))
def test_embeddings_unembedding_and_their_gradients_agree_with_the_reference(
        dtype, seed, B, l, d_e, N_V):
    """Spec: Algorithms 1, 2, 7 and 17, 18, 23."""
    rng = np.random.default_rng(seed)
    W_e, W_p, W_u = (rng.normal(size=s) for s in ((d_e, N_V), (d_e, l + 2), (N_V, d_e)))
    x, y = rng.integers(0, N_V, size=(B, l)), rng.integers(0, N_V, size=(B, l))
    X, de, dloss = rng.normal(size=(B, l, d_e)), rng.normal(size=(B, l, d_e)), rng.random((B, l))
    tol, f = TOLERANCE[dtype], (lambda a: tensor(a, dtype))
    assert_close(ti.token_embedding(tensor(x), f(W_e)),
                 [[ref.token_embedding(v, W_e) for v in row] for row in x], "e", "Alg 1", tol)
    assert_close(ti.positional_embedding(l, f(W_p), offset=2),
                 [ref.positional_embedding(t + 2, W_p) for t in range(l)], "e_p", "Alg 2", tol)
    assert_close(ti.unembedding(f(X), f(W_u)),
                 [[ref.unembedding(e, W_u) for e in row] for row in X], "p", "Alg 7", tol)
    dW_e = dW_p = dW_u = 0.0
    dX = np.zeros_like(X)
    for b, t in np.ndindex(B, l):
        c1, c2, c3 = {}, {}, {}
        ref.token_embedding(int(x[b, t]), W_e, cache=c1)
        ref.positional_embedding(t, W_p, cache=c2)
        dW_e = dW_e + ref.token_embedding_backward(de[b, t], c1)["W_e"]
        dW_p = dW_p + (ref.positional_embedding_backward(de[b, t], c2)["W_p"] if b == 0 else 0)
        unembedding_loss(X[b, t], W_u, int(y[b, t]), cache=c3)
        g = ref.unembedding_backward(float(dloss[b, t]), c3)
        dX[b, t], dW_u = g["e"], dW_u + g["W_u"]
    assert_close(ti.token_embedding_backward(f(de), tensor(x), f(W_e))["W_e"], dW_e, "dW_e",
                 "Algorithm 17", tol)
    assert_close(ti.positional_embedding_backward(f(de[0]), l, f(W_p))["W_p"], dW_p, "dW_p",
                 "Algorithm 18", tol)
    g = ti.unembedding_backward(f(dloss), f(X), f(W_u), tensor(y))
    assert_close(g["X"], dX, "de", "Algorithm 23", tol)
    assert_close(g["W_u"], dW_u, "dW_u", "Algorithm 23", tol)


BF16_CASES = ["attention", "mhattention", "layer_norm", "mlp", "unembedding"]


@pytest.mark.parametrize("name", BF16_CASES)
def test_bfloat16_primitives_agree_with_the_reference_to_the_documented_tolerance(name):
    """bfloat16 (8-bit significand): within 2^-6 relative of the float64 reference
    (spec/properties.md, reference.forward_agreement), at unit-scale inputs of width 16."""
    rng = np.random.default_rng(7)
    B, l, d = 2, 5, 16
    X = rng.normal(size=(B, l, d))
    def f(a: np.ndarray) -> torch.Tensor:
        return tensor(a, torch.bfloat16)

    if name in ("attention", "mhattention"):
        H = 4 if name == "mhattention" else None
        shape = (lambda *s: (H, *s)) if H else (lambda *s: s)
        p = {"W_q": rng.normal(size=shape(4, d)) / 4, "b_q": rng.normal(size=shape(4)),
             "W_k": rng.normal(size=shape(4, d)) / 4, "b_k": rng.normal(size=shape(4)),
             "W_v": rng.normal(size=shape(4, d)) / 4, "b_v": rng.normal(size=shape(4))}
        if H:
            p |= {"W_o": rng.normal(size=(d, H * 4)) / 4, "b_o": rng.normal(size=d)}
        fn, r_fn = (ti.mh_attention, ref.mh_attention) if H else (ti.attention, ref.attention)
        out = fn(f(X), f(X), **{k: f(v) for k, v in p.items()}, causal=True)
        causal = np.triu(np.ones((l, l), bool))
        exp = np.stack([r_fn(X_b, X_b, **p, Mask=causal).T for X_b in columns(X)])
    elif name == "layer_norm":
        g, b = rng.normal(size=d), rng.normal(size=d)
        out = ti.layer_norm(f(X), f(g), f(b), 1e-5)
        exp = np.array([[ref.layer_norm(e, g, b, 1e-5) for e in row] for row in X])
    elif name == "mlp":
        p = {"W_mlp1": rng.normal(size=(32, d)) / 4, "b_mlp1": rng.normal(size=32),
             "W_mlp2": rng.normal(size=(d, 32)) / 6, "b_mlp2": rng.normal(size=d)}
        out = ti.mlp(f(X), **{k: f(v) for k, v in p.items()}, activation="gelu")
        exp = np.stack([ref.mlp(X_b, **p, activation="gelu").T for X_b in columns(X)])
    else:
        W_u = rng.normal(size=(11, d)) / 4
        out = ti.unembedding(f(X), f(W_u))
        exp = np.array([[ref.unembedding(e, W_u) for e in row] for row in X])
    assert out.dtype == torch.bfloat16
    assert_close(out, exp, name, "reference.forward_agreement (bfloat16)",
                 TOLERANCE[torch.bfloat16])
