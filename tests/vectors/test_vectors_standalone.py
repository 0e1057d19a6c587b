"""The golden vectors stand alone: this test reads only the files, with plain NumPy and
safetensors, and recomputes answers from the algorithms' definitions (spec/algorithms/).

Nothing of formal-transformers is imported here (the vectors are written by the command line
in a subprocess), as a C++, Rust or WebGPU test would read them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[2]
ALGORITHMS = ("token_embedding", "attention", "mhattention", "layer_norm", "unembedding", "mlp",
              "layer_norm_backward", "sliding_window_mask")


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    out = tmp_path_factory.mktemp("standalone")
    subprocess.run([sys.executable, "-m", "formal_transformers", "vectors", "--out", str(out),
                    "--only", *ALGORITHMS], check=True, capture_output=True,
                   env=os.environ | {"PYTHONPATH": str(ROOT)})
    index = json.loads((out / "index.json").read_text())
    return {e["algorithm"]: (e, load_file(out / e["file"])) for e in index["algorithms"]}


def softmax(S, axis):
    E = np.exp(S - S.max(axis=axis, keepdims=True))
    return E / E.sum(axis=axis, keepdims=True)


def attention(X, Z, p, mask):
    """Alg 4, batched rows: S[b, t_x, t_z] = q_t . k_t' / sqrt(d_attn), masked, softmax over t_z."""
    Q, K, V = X @ p["W_q"].T + p["b_q"], Z @ p["W_k"].T + p["b_k"], Z @ p["W_v"].T + p["b_v"]
    S = Q @ K.transpose(0, 2, 1) / math.sqrt(Q.shape[-1])
    if mask is not None:
        S = np.where(mask.T[None], S, -np.inf)
    return softmax(S, -1) @ V


def mhattention(X, Z, p, mask):
    """Alg 5: heads stacked on axis 0, concatenated, then W_o, b_o."""
    heads = [attention(X, Z, {k: p[k][h] for k in ("W_q", "b_q", "W_k", "b_k", "W_v", "b_v")},
                       mask) for h in range(p["W_q"].shape[0])]
    return np.concatenate(heads, axis=-1) @ p["W_o"].T + p["b_o"]


def layer_norm(X, p, eps):
    m, v = X.mean(-1, keepdims=True), X.var(-1, keepdims=True)
    return (X - m) / np.sqrt(v + eps) * p["gamma"] + p["beta"]


def mlp(X, p, activation):
    H = X @ p["W_mlp1"].T + p["b_mlp1"]
    if activation == "relu":
        H = np.maximum(H, 0)
    elif activation == "gelu":
        H = 0.5 * H * (1 + np.vectorize(math.erf)(H / math.sqrt(2)))
    else:
        H = 0.5 * H * (1 + np.tanh(math.sqrt(2 / math.pi) * (H + 0.044715 * H**3)))
    return H @ p["W_mlp2"].T + p["b_mlp2"]


def compute(alg, ins, p, hyper, mask):
    if alg == "token_embedding":
        return p["W_e"][:, ins["x"]].transpose(1, 2, 0)
    if alg in ("attention", "mhattention"):
        return globals()[alg](ins["X"], ins["Z"], p, mask)
    if alg == "layer_norm":
        return layer_norm(ins["X"], p, hyper["eps"])
    if alg == "unembedding":
        return softmax(ins["X"] @ p["W_u"].T, -1)
    if alg == "mlp":
        return mlp(ins["X"], p, hyper["activation"])
    if alg == "sliding_window_mask":
        t = np.arange(hyper["l"])
        return (t[None, :] - hyper["w"] < t[:, None]) & (t[:, None] <= t[None, :])
    raise KeyError(alg)


def unpack(case, tensors):
    ins = {k: tensors[v] for k, v in case["inputs"].items() if k != "mask"}
    p = {k: tensors[v] for k, v in case["params"].items()}
    mask = tensors[case["mask"]] if case.get("mask") else None
    return ins, p, mask


@pytest.mark.parametrize("alg", [a for a in ALGORITHMS if not a.endswith("_backward")])
def test_forward_answers_follow_from_the_definitions(vectors, alg):
    entry, tensors = vectors[alg]
    assert len(entry["cases"]) >= 4
    for case in entry["cases"]:
        ins, p, mask = unpack(case, tensors)
        (name, key), = case["outputs"].items()
        got = compute(alg, ins, p, case["hyperparameters"], mask)
        tol = case["tolerances"]["float64"]
        if tol.get("exact"):
            np.testing.assert_array_equal(got, tensors[key], err_msg=case["id"])
        else:
            np.testing.assert_allclose(got, tensors[key], rtol=tol["rtol"], atol=tol["atol"],
                                       err_msg=case["id"])
        assert np.all(np.isfinite(tensors[key]))
        if case["kind"] == "single_entry_mask":
            assert (tensors[case["mask"]].sum(axis=0) == 1).all()


def test_layer_norm_gradients_match_finite_differences(vectors):
    entry, tensors = vectors["layer_norm_backward"]
    for case in entry["cases"]:
        ins, p, _ = unpack(case, tensors)
        eps, dY = case["hyperparameters"]["eps"], tensors[case["upstream"]]

        def loss(X, gamma, beta, dY=dY, eps=eps):
            return float(np.sum(dY * layer_norm(X, {"gamma": gamma, "beta": beta}, eps)))

        args = {"X": ins["X"], "gamma": p["gamma"], "beta": p["beta"]}
        for name, key in case["gradients"].items():
            grad, h = np.zeros_like(args[name]), 1e-6
            for i in np.ndindex(grad.shape):
                plus, minus = dict(args), dict(args)
                plus[name], minus[name] = args[name].copy(), args[name].copy()
                plus[name][i] += h
                minus[name][i] -= h
                grad[i] = (loss(**plus) - loss(**minus)) / (2 * h)
            np.testing.assert_allclose(tensors[key], grad, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{case['id']} d{name}")
