"""Working memory of a training step: spec/memory.md section 5, formulas (M23)-(M27).

Besides what it keeps (section 4), a step needs transient buffers: the gradients a backward
pass holds while it runs, the logits of the loss, the optimizer's scratch space. Unlike the
kept activations, these depend on the order in which an implementation allocates and frees,
so each formula names the buffers of the step it follows and the largest of them sets the
peak. Sizes in bytes.
"""

from __future__ import annotations

from formal_transformers.canonical import parameter_shapes
from formal_transformers.hyperparameters import (
    Config,
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
    ViTConfig,
)

# Bytes of temporaries per entry while reference_numpy evaluates phi'(U) (its output
# included), read off the expressions of reference_numpy/activations.py: GELU boxes every
# entry as a Python float for math.erf (NumPy has no erf). Checked by
# tests/memory/test_working.py.
REFERENCE_PHI_PRIME_BYTES = {"relu": 9, "gelu": 52, "gelu_tanh": 48}


def decoder_tokens(config: Config, batch: int, seq: int) -> int:
    """Tokens whose logits enter the loss (B l; B l_x for the ED transformer)."""
    return batch * seq


def loss_positions(config: Config, seq: int) -> int:
    """Positions with a target: l - 1 for next-token losses (D, ED), l for the E transformer
    (whose loss weights the masked positions of all l)."""
    return seq if isinstance(config, ETransformerConfig) else seq - 1


def torch_forward_working(config: Config, batch: int, seq: int, b: int) -> int:
    """(M23) The logits (B l N_V b) while the loss computes the log-probabilities; with a
    dtype narrower than float32 the float32 copy of the target positions instead. The ViT
    classifier: its B K logits (M52)."""
    if isinstance(config, ViTConfig):
        return batch * config.n_classes * b
    logits = batch * seq * config.N_V * b
    copy32 = batch * loss_positions(config, seq) * config.N_V * 4 if b < 4 else 0
    return max(logits, copy32)


def _freed_above_top_attention(config: Config, batch: int, seq: int, b: int) -> int:
    """Activations autograd has released when the backward pass reaches the top attention:
    the loss head's log-probabilities and what the layers above that attention keep (the
    residual and layer-norm outputs, U and G -- only G for ReLU)."""
    n, d = batch * seq, config.d_e
    mlp = (1 if config.activation == "relu" else 2) * config.d_mlp
    vectors = {DTransformerConfig: 3, ETransformerConfig: 7, EDTransformerConfig: 4}
    head = batch * loss_positions(config, seq) * config.N_V * max(b, 4)
    return head + n * (vectors[type(config)] * d + mlp) * b


def torch_backward_working(config: Config, batch: int, seq: int, b: int, path: str,
                           src_seq: int | None = None) -> int:
    """(M24) The largest of: the loss head's two gradient buffers of log-probability size
    (float32); the top MLP's gradient buffers, one U-sized (two for ReLU, whose backward
    keeps its output until it has run); on the naive path, the softmax backward's two
    gradient buffers dA, dS of the top attention (float32 at least on CPU), less what was
    released before it (``_freed_above_top_attention``)."""
    if isinstance(config, ViTConfig):  # (M52): N + 1 tokens per image, a K-way head
        return _vit_backward_working(config, batch, b, path)
    head = 2 * batch * loss_positions(config, seq) * config.N_V * max(b, 4)
    k = 2 if config.activation == "relu" else 1
    candidates = [head, k * batch * seq * config.d_mlp * b]
    if path == "naive":
        l_z = src_seq or seq if isinstance(config, EDTransformerConfig) else seq
        scores = batch * config.H * seq * l_z * max(b, 4)
        candidates.append(2 * scores - _freed_above_top_attention(config, batch, seq, b))
    return max(candidates)


def _vit_backward_working(c: ViTConfig, batch: int, b: int, path: str) -> int:
    """(M52) The ViT's analogue of (M24): the top MLP's gradient buffers, or on the naive
    path the top attention's dA, dS less what the layers above it released (its MLP's U, G
    and three residual-sized vectors per token)."""
    l = c.n_patches + 1
    n, mlp = batch * l, (1 if c.activation == "relu" else 2) * c.d_mlp
    k = 2 if c.activation == "relu" else 1
    candidates = [2 * batch * c.n_classes * b, k * n * c.d_mlp * b]
    if path == "naive":
        scores = batch * c.H * l * l * max(b, 4)
        candidates.append(2 * scores - n * (3 * c.d_e + mlp) * b)
    return max(candidates)


def matrix_parameter_count(config: Config) -> int:
    """Scalars in weight matrices: every canonical parameter except biases, gamma, beta."""
    count = 0
    for name, shape in parameter_shapes(config).items():
        leaf = name.rsplit(".", 1)[-1]
        if not (leaf.startswith("b_") or leaf in ("gamma", "beta")):
            n = 1
            for s in shape:
                n *= s
            count += n
    return count


def optimizer_working(config: Config, optimizer: str, b: int, device: str) -> int:
    """(M25) PyTorch's multi-tensor (foreach) AdamW, the CPU default, computes sqrt(v) for
    one parameter group at a time: the weight-decayed matrices are the larger group. The
    fused AdamW kernel (CUDA) and plain gradient descent update in place."""
    if optimizer == "adamw" and device == "cpu":
        return matrix_parameter_count(config) * b
    return 0


def _reference_mlp(c: Config, l: int) -> int:
    """reference_numpy's MLP backward (Alg 22): dW_mlp2, dG and phi'(U)'s temporaries, or,
    at its end, both weight gradients, dG, dU and dX."""
    at_phi = 8 * (c.d_e * c.d_mlp + c.d_mlp * l) + REFERENCE_PHI_PRIME_BYTES[c.activation] * (
        c.d_mlp * l)
    at_end = 8 * (2 * c.d_e * c.d_mlp + 2 * c.d_mlp * l + c.d_e * l)
    return max(at_phi, at_end)


def _reference_mha(c: Config, l_x: int, l_z: int) -> int:
    """reference_numpy's multi-head attention backward (Algs 19-20) at its end: dW_o, the
    per-head gradients of W_q, W_k, W_v and their stacked copies, dY, dX, dZ and the last
    head's dX^h, dZ^h; or inside a head, the three l_z x l_x buffers of the softmax
    backward."""
    d = c.d_e
    at_end = 8 * (7 * d * d + 3 * d * l_x + 2 * d * l_z)
    in_head = 8 * (4 * d * d + 3 * d * l_x + 2 * d * l_z + 3 * l_z * l_x)
    return max(at_end, in_head)


def reference_backward_working(config: Config, seq: int, src_seq: int | None = None) -> int:
    """(M26) The reference's largest backward working set plus what the chained backward
    carries: the gradient dW_u of the loss beside the zero-initialised gradient dictionary,
    dX_out, the residual stream's gradient and that of a layer norm's output (three
    d_e x l arrays; in the ED transformer's decoder one more, and the gradient dZ of the
    encoder output, d_e x l_z)."""
    c, l = config, seq
    l_z = src_seq or seq
    primitives = [_reference_mlp(c, l), _reference_mha(c, l, l),
                  8 * c.d_e * max(c.N_V, c.l_max),  # dense dW_e / dW_p of one token
                  8 * 2 * c.N_V * c.d_e]  # the loss head: dW_u and one token's outer product
    if isinstance(c, EDTransformerConfig):
        primitives += [_reference_mlp(c, l_z), _reference_mha(c, l, l_z),
                       _reference_mha(c, l_z, l_z)]
    carried = 8 * (c.N_V * c.d_e + 3 * c.d_e * l)
    if isinstance(c, EDTransformerConfig):  # a decoder layer's dX and dY, and dZ
        carried += 8 * (c.d_e * l + c.d_e * l_z)
    return carried + max(primitives)


def reference_update_working(config: Config) -> int:
    """(M27) theta - eta * grad, entry by entry in canonical order: the new entries so far
    plus the product eta * grad of the current one: max_k (sum_{j<=k} s_j + s_k), 8 bytes."""
    done, worst = 0, 0
    for shape in parameter_shapes(config).values():
        n = 1
        for s in shape:
            n *= s
        done += n
        worst = max(worst, done + n)
    return 8 * worst
