"""Memory of the modern attention primitives (spec/memory.md section 10, formulas (M40)-(M44);
spec: Algorithms 40-49). A literal transcription, like the rest of formal_transformers.memory.
"""

from __future__ import annotations

from formal_transformers.attention_options import check_groups


def gq_attention_parameters(d_x: int, d_z: int, d_attn: int, d_mid: int, d_out: int, H: int,
                            G: int) -> int:
    """(M40) H query heads, G kv heads, W_o and b_o (Algorithm 40); (M4) at G = H."""
    check_groups(H, G)
    query = H * d_attn * (d_x + 1)
    kv = G * (d_attn * (d_z + 1) + d_mid * (d_z + 1))
    return query + kv + d_out * (H * d_mid + 1)


def gqa_kv_cache_bytes(L: int, B: int, T: int, G: int, d_head: int, b: int,
                       w: int | None = None) -> int:
    """(M41) 2 L B T G d_head b: the KV cache of G kv heads per layer, H / G times smaller
    than (M30); (M42) with a sliding window of w keys, min(T, w) positions suffice."""
    positions = T if w is None else min(T, w)
    return 2 * L * B * positions * G * d_head * b


def online_softmax_working_bytes(l_x: int, block: int, b: int) -> int:
    """(M43) one block of scores and weights plus the running max and sum (Algorithm 48)."""
    return (2 * block * l_x + 2 * l_x) * b


def attention_working_bytes(l_z: int, l_x: int, b: int) -> int:
    """(M44) Algorithm 4's scores and weights, quadratic in the length."""
    return 2 * l_z * l_x * b
