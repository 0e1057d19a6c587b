"""memory.parameter_count: an implementation holds exactly the spec's parameters
(spec/properties.md). The closed forms below are evaluated at the drawn hyperparameters and
compared with formal_transformers.canonical.parameter_count (for the architectures) and with
the adapter's own count. The memory-accounting issue registers its byte-count laws beside this
one with the same ``check`` decorator."""

from __future__ import annotations

from hypothesis import strategies as st

from conformance.adapter import BIAS_PRIMITIVES
from conformance.assertions import fail
from conformance.registry import check
from conformance.strategies import configs, with_bias
from formal_transformers.canonical import parameter_count
from formal_transformers.hyperparameters import EDTransformerConfig, ETransformerConfig


def mha_count(H: int, d_attn: int, d_mid: int, d_x: int, d_z: int, d_out: int,
              bias: bool = True) -> int:
    """Algorithm 5: H heads of W_q, b_q, W_k, b_k, W_v, b_v, then W_o and b_o (the b's only
    with ``bias``)."""
    return H * (d_attn * d_x + d_attn * d_z + d_mid * d_z) + d_out * H * d_mid \
        + bias * (H * (2 * d_attn + d_mid) + d_out)


def mlp_count(d_e: int, d_mlp: int, bias: bool = True) -> int:
    """Algorithm 16: W_mlp1, b_mlp1, W_mlp2, b_mlp2 (the b's only with ``bias``)."""
    return 2 * d_e * d_mlp + bias * (d_mlp + d_e)


def gated_mlp_count(d_e: int, d_mlp: int, bias: bool) -> int:
    """Algorithm 28, (M7b) of spec/memory.md: W_gate, W_up, W_down and the optional biases."""
    return 3 * d_e * d_mlp + (2 * d_mlp + d_e if bias else 0)


def architecture_count(c) -> int:
    """Algorithms 8-10 in closed form: embeddings, layers, final parts, unembedding; the
    declared variants drop W_u (tied_unembedding) and every b and beta (bias = False)."""
    d, b = c.d_e, c.bias
    mha = mha_count(c.H, d // c.H, d // c.H, d, d, d, b)
    ln, mlp = (2 if b else 1) * d, mlp_count(d, c.d_mlp, b)
    embed = c.N_V * d + c.l_max * d + (0 if c.tied_unembedding else c.N_V * d)  # W_e, W_p, W_u
    if isinstance(c, EDTransformerConfig):
        return embed + c.L_enc * (mha + mlp + 2 * ln) + c.L_dec * (2 * mha + mlp + 3 * ln)
    if isinstance(c, ETransformerConfig):
        return embed + (ln if c.embedding_layer_norm else 0) + c.L * (mha + mlp + 2 * ln) \
            + d * d + b * d + ln
    return embed + c.L * (mha + mlp + 2 * ln) + ln


@st.composite
def _sizes(draw, alg, constrain, dtype):
    """Architecture configs, or sizes of a primitive. Multi-head attention is drawn at the
    shapes it takes inside the architectures (d_x = d_z = d_out = H d_attn, d_mid = d_attn),
    the shapes nn.Module implementations of it are built for."""
    if alg in ("d_transformer", "e_transformer", "ed_transformer"):
        return draw(configs(constrain, alg))
    if alg == "mhattention":
        H, d_head = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        sizes = {"H": H, "d_attn": d_head, "d_mid": d_head, "d_x": H * d_head,
                 "d_z": H * d_head, "d_out": H * d_head}
    elif alg in ("layer_norm", "rmsnorm"):
        sizes = {"d_e": draw(st.integers(1, 8))}
    elif alg == "gated_mlp":
        sizes = {"d_e": draw(st.integers(1, 8)), "d_mlp": draw(st.integers(1, 8)),
                 "bias": draw(st.booleans())}
    else:
        sizes = {"d_e": draw(st.integers(1, 8)), "d_mlp": draw(st.integers(1, 8))}
    # the declared variant bias of the primitives of Algorithms 5, 6 and 16
    return constrain(alg, with_bias(sizes) if alg in BIAS_PRIMITIVES else sizes)


def formula(alg: str, sizes) -> int:
    if alg == "mhattention":
        return mha_count(**sizes)
    if alg == "layer_norm":
        return (1 + sizes["bias"]) * sizes["d_e"]  # gamma, and beta unless bias = False
    if alg == "mlp":
        return mlp_count(**sizes)
    if alg == "rmsnorm":
        return sizes["d_e"]  # (M7a)
    if alg == "gated_mlp":
        return gated_mlp_count(**sizes)
    return architecture_count(sizes)


@check("memory.parameter_count", ("mhattention", "layer_norm", "mlp", "d_transformer",
                                  "e_transformer", "ed_transformer", "rmsnorm", "gated_mlp"),
       _sizes,
       requires=("count_parameters",))
def parameter_count_is_exact(ctx, sizes):
    """The adapter's parameter count equals the spec's closed form (and the canonical count)."""
    assert_count(ctx, sizes, formula(ctx.algorithm, sizes))


def assert_count(ctx, sizes, want: int) -> None:
    """``want`` (a closed form of spec/memory.md) equals the canonical count of an architecture
    config and the adapter's count of ``ctx.algorithm`` at ``sizes``."""
    if not isinstance(sizes, dict) and parameter_count(sizes) != want:
        fail(f"formal_transformers.canonical.parameter_count = {parameter_count(sizes)} but "
             f"the closed form gives {want}", expected=str(want),
             observed=str(parameter_count(sizes)))
    got = ctx.adapter.count_parameters(ctx.algorithm, sizes)
    ctx.observe(float(abs(got - want)), measure="count difference")
    if got != want:
        fail(f"{ctx.algorithm} has {got} parameters, the spec's formula gives {want} "
             f"(difference {got - want:+d}) at {sizes}", expected=str(want), observed=str(got))
