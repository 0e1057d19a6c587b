"""Memory of the modern decoder (spec/memory.md section 11, formulas (M68)-(M70); Algorithm 65).

``modern_activation_terms`` is (M68), what a torch_impl training step of
torch_impl/modern_decoder.py keeps for its backward pass, read off what autograd's graph
holds (tests/memory/test_modern_decoder_memory.py compares every selection it covers byte
for byte); ``modern_forward_working`` / ``modern_backward_working`` are (M69), the transient
buffers of the step; ``modern_inference_working`` is (M70), the prompt's forward pass beside
the ring-buffer KV cache of (M67).

Symbols: n = B T tokens, b bytes per number, w = max(b, 4), d_h the head size, G kv heads.
Which kernel attends decides what attention keeps: PyTorch's flash kernel (path 'sdpa'),
its math kernel (path 'naive', and ALiBi's float bias, which the flash kernel declines), or
the explicit soft-capped scores of Algorithm 46 (``attn_softcap``), on either path.
"""

from __future__ import annotations

from formal_transformers.hyperparameters import ModernDTransformerConfig
from formal_transformers.memory.activations import Term, check_path


def attention_kernel(c: ModernDTransformerConfig, path: str) -> str:
    """'capped' (Algorithm 46's explicit scores), 'math' or 'flash'."""
    if c.attn_softcap is not None:
        return "capped"
    return "math" if path == "naive" or c.positions == "alibi" else "flash"


def _norm(c: ModernDTransformerConfig, count: int, n: int, b: int, what: str) -> list[Term]:
    """``count`` norms of n tokens: RMSNorm keeps x / rms (d_e) and 1 / rms (1) per token
    (and with the offset its gain 1 + gamma once), layer norm its mean and 1 / sigma (2);
    their inputs and outputs are counted where they are made (the residual stream, the
    input of the next projection)."""
    if c.norm == "rmsnorm":
        w = max(b, 4)  # below float32, F.rms_norm computes in float32 from a copy of x
        terms = [Term(f"{what}: x / rms", "layer norm", count * n * c.d_e, w),
                 Term(f"{what}: 1 / rms", "layer norm", count * n, w),
                 Term(f"{what}: float32 copy of x", "layer norm",
                      count * n * c.d_e if b < 4 else 0, 4)]
        if c.norm_offset:  # each call forms its gain 1 + gamma, a new d_e vector
            terms.append(Term(f"{what}: gains 1 + gamma", "layer norm", count * c.d_e, b))
        return terms
    return [Term(f"{what}: mean, 1 / sigma", "layer norm", count * n * 2, b)]


def _projections_kept(c: ModernDTransformerConfig, kernel: str, B: int, b: int) -> bool:
    """Whether the graph holds the fused Q, K, V projection: QK-norm saves its inputs (views
    of it); the flash kernel reads V as a view of it; the capped scores copy all three (Q
    into the product's contiguous operand, K and V repeated); the math kernel copies Q, K, V
    except V when B = 1 and G = H in float32 or wider. (RoPE hands its input to autograd's
    hook too, but in a node the graph does not keep.)"""
    if c.qk_norm != "none" or kernel == "flash":
        return True
    return kernel == "math" and B == 1 and c.G == c.H and b >= 4


def _queries_keys(c: ModernDTransformerConfig, kernel: str, n: int, T: int, b: int
                  ) -> list[Term]:
    """QK-norm's statistics and gamma * q, RoPE's cos / sin tables (per layer, independent
    of B) and the new queries and keys they make, where the kernel reads them."""
    H, G, d, terms = c.H, c.G, c.d_head, []
    rope, normed = c.positions == "rope", c.qk_norm != "none"
    # the flash kernel reads the new queries and keys where RoPE or QK-norm made them;
    # Algorithm 46's product reads contiguous queries -- those, or a copy of the projection's
    # view -- and repeated copies of the keys
    read = {"flash": H + G if rope or normed else 0, "capped": H, "math": 0}[kernel]
    if normed:
        stats = H + G if c.qk_norm == "per_head" else 2
        terms += [Term("QK-norm: rms of q, k", "attention", n * stats, b),
                  Term("QK-norm: gamma q, gamma k", "attention", n * (H + G) * d, b)]
    if rope:
        d_r = c.rope.rotated_features(d)
        table = T * d_r if c.rope.layout == "half_split" else T * d_r // 2
        terms.append(Term("RoPE: cos, sin of q and k", "attention", 4 * table, b))
    if read:
        terms.append(Term("queries (and keys) the kernel reads as new tensors", "attention",
                          n * read * d, b))
    return terms


def _kernel_terms(c: ModernDTransformerConfig, kernel: str, B: int, T: int, b: int
                  ) -> list[Term]:
    """What the attention kernel keeps for T queries over T keys, and the input of W_o."""
    n, H, G, d, w = B * T, c.H, c.G, c.d_head, max(b, 4)
    if kernel == "flash":
        terms = [Term("causal / window mask as float", "masks", T * T, b),
                 Term("log-normalisers", "attention scores", n * H, w),
                 Term("kernel output", "attention", n * H * d, b)]
        if c.positions == "rope":  # a contiguous output: merging the heads copies it
            terms.append(Term("merged heads (input of W_o)", "attention", n * H * d, b))
        return terms
    merged = Term("merged heads (input of W_o)", "attention", n * H * d, b)
    if kernel == "math":
        v_copied = not (B == 1 and G == H and b >= 4)
        return [Term("scaled queries, keys (H heads)", "attention", 2 * n * H * d, w),
                Term("values (H heads)", "attention", n * H * d if v_copied else 0, w),
                Term("attention weights A", "attention scores", n * H * T, w), merged]
    return [Term("keys, values repeated to H heads (copies)", "attention", 2 * n * H * d, b),
            Term("capped scores tanh(S / c)", "attention scores", n * H * T, b),
            Term("softmax of the capped scores", "attention scores", n * H * T, b),
            Term("causal / window mask (bool)", "masks", T * T, 1), merged]


def _mlp(c: ModernDTransformerConfig, n: int, b: int) -> Term:
    """Gated: W_gate X, W_up X (one fused output), phi(gate) and phi(gate) * up; plain:
    U and phi(U) (phi(U) only for ReLU, whose backward reads its output)."""
    k = 4 if c.mlp == "gated" else (1 if c.activation == "relu" else 2)
    return Term(f"MLP ({'gate, up, phi(gate), product' if k == 4 else 'U, phi(U)'})", "mlp",
                n * k * c.d_mlp, b)


def modern_activation_terms(c: ModernDTransformerConfig, B: int, T: int, b: int, path: str
                            ) -> list[Term]:
    """(M68) The inventory of a training step of the modern decoder on B sequences of T
    tokens (torch_impl, path 'naive' or 'sdpa')."""
    check_path(path)
    if path == "reference":
        from formal_transformers.errors import ConfigError

        raise ConfigError("the memory formulas cover the modern decoder on torch_impl's paths "
                          "('naive', 'sdpa'), not the reference's")
    n, L, d, w, kernel = B * T, c.L, c.d_e, max(b, 4), attention_kernel(c, path)
    post = 2 if c.post_norms else 0
    per_layer = [Term("fused Q, K, V projection", "attention",
                      n * (c.H + 2 * c.G) * c.d_head if _projections_kept(c, kernel, B, b)
                      else 0, b),
                 *_queries_keys(c, kernel, n, T, b), *_kernel_terms(c, kernel, B, T, b),
                 _mlp(c, n, b)]
    terms = [Term(f"per layer: {t.name}", t.group, L * t.count, t.width) for t in per_layer]
    terms += _norm(c, (2 + post) * L + 1, n, b, "norms")
    # X_0 .. X_L and the L mid-layer streams, the post-norms' inputs (the outputs of W_o and
    # W_fc2) -- every norm's input, which below float32 RMSNorm replaces by its float32 copy
    # -- and the pre-norms' outputs (inputs of W_qkv, W_fc1 and W_u)
    inputs = 0 if c.norm == "rmsnorm" and b < 4 else (2 * L + 1) + post * L
    terms.append(Term("residual stream, norm inputs and outputs", "residual",
                      (inputs + 2 * L + 1) * n * d, b))
    if c.embedding_scale:
        terms.append(Term("embedding scale sqrt(d_e) (a 0-d tensor)", "residual", 1, b))
    if c.final_softcap is not None:
        terms.append(Term("final soft-cap tanh(logits / c)", "head", n * c.N_V, b))
    return terms + [Term("log-probabilities (at least float32)", "head", B * (T - 1) * c.N_V, w),
                    Term("targets (int64) and the loss's total weight", "head",
                         (B * (T - 1) * 8 if B > 1 else 0) + w, 1)]


def modern_forward_working(c: ModernDTransformerConfig, B: int, T: int, b: int) -> int:
    """(M69) forward: (M23)'s logits while the loss computes its log-probabilities; with the
    final soft-cap, the logits and logits / c beside each other while tanh runs."""
    logits = B * T * c.N_V * b
    copy32 = B * (T - 1) * c.N_V * 4 if b < 4 else 0
    return max((2 if c.final_softcap is not None else 1) * logits, copy32)


def modern_backward_working(c: ModernDTransformerConfig, B: int, T: int, b: int, path: str
                            ) -> int:
    """(M69) backward: the largest of the loss head's two log-probability-sized gradient
    buffers; the top MLP's gradient buffers, one d_mlp-sized (two for a plain ReLU MLP) as
    (M24) -- autograd frees each as soon as it is consumed; with explicit scores
    (math or capped kernel), the softmax backward's dA, dS of the top attention less what the
    layers above it released (the log-probabilities, the MLP, five d_e-vectors per token)."""
    n, w = B * T, max(b, 4)
    head = 2 * B * (T - 1) * c.N_V * w
    k = 2 if c.mlp == "plain" and c.activation == "relu" else 1
    candidates = [head, k * n * c.d_mlp * b]
    kernel = attention_kernel(c, path)
    if kernel != "flash":
        width = w if kernel == "math" else b
        kept = (4 if c.mlp == "gated" else 2) * c.d_mlp
        freed = B * (T - 1) * c.N_V * w + n * (5 * c.d_e + kept) * b
        candidates.append(2 * n * c.H * T * width - freed)
    return max(candidates)


def modern_inference_working(c: ModernDTransformerConfig, B: int, prompt: int, capacity: int,
                             b: int, path: str = "sdpa") -> int:
    """(M70) The prompt's forward pass beside the cache, the largest of: one layer's MLP
    intermediates (gated: the fused gate and up, phi(gate) and the product, 4 d_mlp; plain:
    2 d_mlp) with four d_e-vectors per token (the layer's input, which its caller still
    holds, the attention's output A, X + A and the norm's output); the last position's logits
    with the final norm's output beside the residual stream (a decode step forms P[:, l - 1]
    only); and one
    layer's attention over K = C_l + T keys (the cached slots and the prompt): the residual
    stream, the norm's output, Q, K, V, the rotated Q, K and the output (2 d_e + (2 H + 3 G)
    d_h per token), the concatenated keys and values (G heads), with explicit scores three
    score-sized buffers (S, S / c and tanh while the cap runs) and K, V repeated to H heads,
    with the math
    kernel its weights and their scaled inputs, with the flash kernel the float mask."""
    n, T, d = B * prompt, prompt, c.d_head
    mlp = (4 if c.mlp == "gated" else 2) * c.d_mlp
    K = max(capacity if c.window(l) is None else min(c.window(l), capacity)
            for l in range(c.L)) + T
    # the residual stream, the norm's output, Q, K, V, the rotated Q, K and the output
    attention = (n * (2 * c.d_e + (2 * c.H + 3 * c.G) * d) + 2 * B * c.G * K * d) * b
    kernel = attention_kernel(c, path)
    if kernel == "capped":
        attention += 3 * B * c.H * T * K * b + 2 * B * c.H * K * d * b
    elif kernel == "math":
        attention += 2 * B * c.H * T * K * max(b, 4)
    else:
        attention += T * K * b
    head = (n * c.d_e + B * (c.N_V + c.d_e)) * b
    return max(n * (mlp + 4 * c.d_e) * b, head, attention)
