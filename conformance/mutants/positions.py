"""Mutants of the fixed position encodings (spec: Algorithms 24 and 26), each modelled on a
bug seen in real code (spec/properties.md, sinusoidal.* and alibi.*)."""

from __future__ import annotations

import math

import numpy as np

from conformance.adapters.torch_adapter import TorchAdapter


class SinusoidalMutant(TorchAdapter):
    """Replaces ``sinusoidal_embedding`` by ``table(p, d_e, base, s)`` in float64 NumPy."""

    only = ("sinusoidal_embedding",)

    def sinusoidal_embedding(self, positions, d_e, base, index_offset, dtype):
        return self.table(positions.astype(np.float64)[:, None], d_e, base,
                          index_offset).astype(dtype)

    def table(self, p, d_e, base, s):
        raise NotImplementedError


class SinusoidalExponentPerFeature(SinusoidalMutant):
    """The exponent is 2j/d_e for feature j itself, not 2 floor(j/2)/d_e: the cosine of a pair
    runs at another frequency than its sine (the `2 * (j // 2)` of the usual code dropped)."""

    caught_by = ("sinusoidal.shift_rotation", "reference.forward_agreement")

    def table(self, p, d_e, base, s):
        j = np.arange(d_e)[None, :]
        angles = p / base ** (2 * (j + 2 * s) / d_e)
        return np.where(j % 2 == 0, np.sin(angles), np.cos(angles))


class SinusoidalPositionInExponent(SinusoidalMutant):
    """pos / base^(2 pos / d_e): the position typed where the feature index belongs."""

    caught_by = ("sinusoidal.shift_rotation", "reference.forward_agreement")

    def table(self, p, d_e, base, s):
        angles = np.repeat(p / base ** (2 * (p + s) / d_e), d_e // 2, axis=1)  # (l, d_e/2)
        return np.stack((np.sin(angles), np.cos(angles)), axis=-1).reshape(len(p), d_e)


class SinusoidalBaseIgnored(SinusoidalMutant):
    """The base is hard-coded to 10000, ignoring a declared base (Phuong & Hutter's l_max)."""

    caught_by = ("reference.forward_agreement",)

    def table(self, p, d_e, base, s):
        omega = 10000.0 ** (-2 * (np.arange(d_e // 2) + s) / d_e)
        angles = p * omega[None, :]
        return np.stack((np.sin(angles), np.cos(angles)), axis=-1).reshape(len(p), d_e)


class AlibiMutant(TorchAdapter):
    """Replaces ``alibi`` by ``slopes(H)`` and ``bias(m, D, p_z, form)`` in float64 NumPy,
    with D[t_z, t_x] = p_x[t_x] - p_z[t_z]."""

    only = ("alibi",)

    def alibi(self, positions_x, positions_z, H, form, dtype):
        D = (positions_x[None, :] - positions_z[:, None]).astype(np.float64)
        return self.bias(self.slopes(H), D, positions_z, form).astype(dtype)

    def slopes(self, H):
        n = 2 ** math.floor(math.log2(H))
        return np.array([2.0 ** (-8 * (h + 1) / n) if h < n
                         else 2.0 ** (-4 * (2 * (h - n) + 1) / n) for h in range(H)])

    def bias(self, m, D, p_z, form):
        G = {"signed": -D, "symmetric": -np.abs(D),
             "key_position": np.broadcast_to(p_z[:, None], D.shape).astype(np.float64)}[form]
        return m[:, None, None] * G[None]


class AlibiTextFormulaForEveryH(AlibiMutant):
    """2^(-8(h+1)/H) for every H: the paper's text formula applied where its code uses the
    interleaving rule (H not a power of two; transformers #28380)."""

    caught_by = ("alibi.slopes", "reference.forward_agreement")

    def slopes(self, H):
        return np.array([2.0 ** (-8 * (h + 1) / H) for h in range(H)])


class AlibiSlopesReversed(AlibiMutant):
    """The slopes are assigned to the heads in reverse order (steepest head last)."""

    caught_by = ("alibi.slopes",)

    def slopes(self, H):
        return super().slopes(H)[::-1].copy()


class AlibiRewardsDistance(AlibiMutant):
    """The distance is taken as key minus query (memory - context without the minus): far
    keys get a bonus instead of a penalty."""

    caught_by = ("alibi.linear_in_distance", "reference.forward_agreement")

    def bias(self, m, D, p_z, form):
        return -super().bias(m, D, p_z, form)


class AlibiAlwaysSymmetric(AlibiMutant):
    """-m |p_x - p_z| whatever form is declared: an encoder's symmetric ALiBi reused where the
    signed (or key-position) form is declared, so keys after the query are penalised."""

    caught_by = ("alibi.linear_in_distance", "reference.forward_agreement")

    def bias(self, m, D, p_z, form):
        return super().bias(m, D, p_z, "symmetric")
