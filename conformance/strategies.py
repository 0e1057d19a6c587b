"""Hypothesis strategies for the whole suite: sizes, parameters, inputs, masks, configs.

Every strategy draws small sizes and an integer seed; the arrays come from
``numpy.random.default_rng(seed)``, so a counterexample is reproducible from what ``Case``
prints. Sizes pass through the adapter's ``constrain`` hook before any array is drawn, so an
implementation that supports only some shapes (torch.nn.MultiheadAttention) sees only those.
Arrays are drawn in float64 and cast to the dtype under test; the reference then computes in
float64 from exactly the values the adapter received.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance.assertions import summarise
from formal_transformers.canonical import is_bias, parameter_shapes, zero_padding_column
from formal_transformers.hyperparameters import (
    ACTIVATIONS,
    VARIANTS,
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
)

Constrain = Callable[[str, dict[str, Any]], dict[str, Any]]
SEEDS = st.integers(0, 2**32 - 1)
SCALES = st.sampled_from([1.0, 0.5, 2.0])
EPS = st.sampled_from([1e-5, 1e-3, 0.1])
CONFIG_CLASSES = {"d_transformer": DTransformerConfig, "e_transformer": ETransformerConfig,
                  "ed_transformer": EDTransformerConfig}


@dataclass
class Case:
    """One drawn example: its sizes, seed and named inputs (arrays, params, config, ...)."""

    kind: str
    sizes: dict[str, Any]
    seed: int
    data: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def rng(self, salt: int = 1) -> np.random.Generator:
        """A generator derived from the seed, for randomness a check adds (perturbations)."""
        return np.random.default_rng([self.seed, salt])

    def __repr__(self) -> str:
        lines = [f"{self.kind} case: sizes {self.sizes}, seed {self.seed}"]
        for k, v in self.data.items():
            if isinstance(v, Mapping):
                lines.append(f"  {k}: " + ", ".join(f"{n} {np.shape(a)}" for n, a in v.items()))
            elif isinstance(v, np.ndarray):
                lines.append(f"  {k} = " + summarise(v).replace("\n", "\n      "))
            else:
                lines.append(f"  {k} = {v!r}")
        return "\n".join(lines)


def _draw_sizes(draw, ranges: Mapping[str, tuple[int, int]], fixed: Mapping[str, Any]
                ) -> dict[str, Any]:
    sizes = {}
    for name, (lo, hi) in ranges.items():
        sizes[name] = fixed[name] if name in fixed else draw(st.integers(lo, hi))
    return sizes | {k: v for k, v in fixed.items() if k not in sizes}


def _weights(rng: np.random.Generator, shape: tuple[int, ...], scale: float, name: str
             ) -> np.ndarray:
    """Spec-orientation weights: W (.., d_out, d_in) ~ N(0, scale^2 / d_in); embeddings, biases
    and beta ~ N(0, scale^2 / 4); gamma ~ 1 + N(0, 0.2^2)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "gamma":
        return 1.0 + 0.2 * rng.standard_normal(shape)
    if leaf in ("W_e", "W_p"):
        return scale * rng.standard_normal(shape)
    if leaf.startswith("W_"):
        return scale * rng.standard_normal(shape) / np.sqrt(shape[-1])
    return 0.5 * scale * rng.standard_normal(shape)


def random_parameters(shapes: Mapping[str, tuple[int, ...]], rng: np.random.Generator,
                      scale: float, dtype: Any) -> dict[str, np.ndarray]:
    """Random parameters for every (name, shape), cast to ``dtype``."""
    return {n: _weights(rng, s, scale, n).astype(dtype) for n, s in shapes.items()}


def valid_mask(rng: np.random.Generator, l_z: int, l_x: int, require_zero: bool = False
               ) -> np.ndarray:
    """A random bool Mask (l_z, l_x) whose every column lets its query attend somewhere;
    with ``require_zero`` (and l_z >= 2) at least one entry is 0."""
    Mask = rng.random((l_z, l_x)) < 0.6
    for t_x in range(l_x):
        if not Mask[:, t_x].any():
            Mask[rng.integers(l_z), t_x] = True
    if require_zero and Mask.all() and l_z >= 2:
        Mask[rng.integers(l_z), rng.integers(l_x)] = False
    return Mask


def causal(l: int) -> np.ndarray:
    """The causal mask Mask[t_z, t_x] = [t_z <= t_x] (spec: Algorithm 10)."""
    return np.tril(np.ones((l, l), dtype=bool)).T


# -- attention family ----------------------------------------------------------------------
ATTENTION_RANGES = {"B": (1, 3), "l_x": (1, 4), "l_z": (1, 4), "d_x": (1, 4), "d_z": (1, 4),
                    "d_attn": (1, 4), "d_out": (1, 4)}
MHA_RANGES = {"B": (1, 3), "l_x": (1, 4), "l_z": (1, 4), "d_x": (1, 4), "d_z": (1, 4),
              "H": (1, 3), "d_attn": (1, 3), "d_mid": (1, 3), "d_out": (1, 4)}


def with_bias(sizes: dict[str, Any]) -> dict[str, Any]:
    """Drawn sizes of a primitive of adapter.BIAS_PRIMITIVES with the declared variant
    ``bias`` at the spec's default; Bound.constrain puts the adapter's declared value there."""
    return sizes | {"bias": sizes.get("bias", VARIANTS["bias"])}


def _biased(shapes: dict[str, tuple[int, ...]], s: Mapping[str, Any]
            ) -> dict[str, tuple[int, ...]]:
    """``shapes`` less every bias and beta when the sizes say ``bias`` = False (spec:
    "Declared variant: bias" of Algorithms 4-6 and 16)."""
    return shapes if s.get("bias", True) else {k: v for k, v in shapes.items()
                                               if not is_bias(k)}


def attention_shapes(s: Mapping[str, Any], multi_head: bool) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of Algorithm 4 (single head) or Algorithm 5 (heads on axis 0)."""
    if not multi_head:
        return _biased({"W_q": (s["d_attn"], s["d_x"]), "b_q": (s["d_attn"],),
                        "W_k": (s["d_attn"], s["d_z"]), "b_k": (s["d_attn"],),
                        "W_v": (s["d_out"], s["d_z"]), "b_v": (s["d_out"],)}, s)
    H = s["H"]
    return _biased({"W_q": (H, s["d_attn"], s["d_x"]), "b_q": (H, s["d_attn"]),
                    "W_k": (H, s["d_attn"], s["d_z"]), "b_k": (H, s["d_attn"]),
                    "W_v": (H, s["d_mid"], s["d_z"]), "b_v": (H, s["d_mid"]),
                    "W_o": (s["d_out"], H * s["d_mid"]), "b_o": (s["d_out"],)}, s)


@st.composite
def attention_cases(draw, constrain: Constrain, dtype: Any, multi_head: bool,
                    mask: str = "any", self_attention: bool = False,
                    fixed: Mapping[str, Any] | None = None) -> Case:
    """X (B, l_x, d_x), Z (B, l_z, d_z), params and mask for Algorithm 4 or 5.

    mask: "none", "random" (valid, at least one 0 where possible), "causal" (needs
    self-attention) or "any" (one of none / random / causal drawn).
    """
    ranges = MHA_RANGES if multi_head else ATTENTION_RANGES
    sizes = constrain("mhattention" if multi_head else "attention",
                      with_bias(_draw_sizes(draw, ranges, fixed or {})))
    if self_attention:
        sizes["d_z"], sizes["l_z"] = sizes["d_x"], sizes["l_x"]
    mode = draw(st.sampled_from(["none", "random", "causal"] if self_attention
                                else ["none", "random"])) if mask == "any" else mask
    seed, scale = draw(SEEDS), draw(SCALES)
    rng = np.random.default_rng(seed)
    B, l_x, l_z = sizes["B"], sizes["l_x"], sizes["l_z"]
    X = rng.standard_normal((B, l_x, sizes["d_x"])).astype(dtype)
    Z = X if self_attention else rng.standard_normal((B, l_z, sizes["d_z"])).astype(dtype)
    params = random_parameters(attention_shapes(sizes, multi_head), rng, scale, dtype)
    Mask = {"none": None, "causal": causal(l_x) if mode == "causal" else None,
            "random": valid_mask(rng, l_z, l_x, require_zero=True)}[mode]
    return Case("mhattention" if multi_head else "attention", sizes, seed,
                {"X": X, "Z": Z, "params": params, "mask": Mask, "scale": scale})


@st.composite
def basic_attention_cases(draw, constrain: Constrain, dtype: Any) -> Case:
    """e (B, d_x), E_ctx (B, l_z, d_z) and the parameters of Algorithm 3."""
    ranges = {k: v for k, v in ATTENTION_RANGES.items() if k != "l_x"}
    sizes = constrain("basic_attention", with_bias(_draw_sizes(draw, ranges, {})))
    seed, scale = draw(SEEDS), draw(SCALES)
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((sizes["B"], sizes["d_x"])).astype(dtype)
    E_ctx = rng.standard_normal((sizes["B"], sizes["l_z"], sizes["d_z"])).astype(dtype)
    params = random_parameters(attention_shapes(sizes, False), rng, scale, dtype)
    return Case("basic_attention", sizes, seed, {"e": e, "E_ctx": E_ctx, "params": params})


# -- position-wise maps and embeddings -------------------------------------------------------
@st.composite
def layer_norm_cases(draw, constrain: Constrain, dtype: Any, eps_zero: bool = False,
                     identity_affine: bool = False) -> Case:
    """X (B, l, d_e), gamma, beta (absent when bias = False) and eps for Algorithm 6 (d_e >= 2
    when eps = 0)."""
    sizes = constrain("layer_norm", with_bias(_draw_sizes(
        draw, {"B": (1, 3), "l": (1, 4), "d_e": (2 if eps_zero else 1, 6)}, {})))
    eps = 0.0 if eps_zero else draw(EPS)
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    X = (draw(SCALES) * rng.standard_normal((sizes["B"], sizes["l"], sizes["d_e"]))
         + rng.standard_normal()).astype(dtype)
    params = random_parameters(layer_norm_shapes(sizes), rng, 1.0, dtype)
    if identity_affine:
        params = {k: (np.ones_like if k == "gamma" else np.zeros_like)(v)
                  for k, v in params.items()}
    return Case("layer_norm", sizes, seed, {"X": X, "params": params, "eps": eps})


def layer_norm_shapes(s: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of Algorithm 6: gamma, and beta unless bias = False."""
    return _biased({"gamma": (s["d_e"],), "beta": (s["d_e"],)}, s)


def mlp_shapes(s: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of Algorithm 16 (no b_mlp1, b_mlp2 when bias = False)."""
    return _biased({"W_mlp1": (s["d_mlp"], s["d_e"]), "b_mlp1": (s["d_mlp"],),
                    "W_mlp2": (s["d_e"], s["d_mlp"]), "b_mlp2": (s["d_e"],)}, s)


@st.composite
def mlp_cases(draw, constrain: Constrain, dtype: Any) -> Case:
    """X (B, l, d_e), the MLP parameters and an activation for Algorithm 16."""
    sizes = constrain("mlp", with_bias(_draw_sizes(draw, {"B": (1, 3), "l": (1, 4),
                                                          "d_e": (1, 5), "d_mlp": (1, 6)}, {})))
    activation = draw(st.sampled_from(ACTIVATIONS))
    seed, scale = draw(SEEDS), draw(SCALES)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((sizes["B"], sizes["l"], sizes["d_e"])).astype(dtype)
    params = random_parameters(mlp_shapes(sizes), rng, scale, dtype)
    return Case("mlp", sizes, seed, {"X": X, "params": params, "activation": activation})


@st.composite
def embedding_cases(draw, constrain: Constrain, dtype: Any, which: str) -> Case:
    """Token ids x (B, l) with W_e (d_e, N_V), or a length l with W_p (d_e, l_max). The
    token embedding's sizes carry the declared variant ``padding_idx`` p: then W_e[:, p] = 0
    and x[0, 0] = p (data ``padding_idx``; spec: Algorithm 1, "Declared variant")."""
    alg = "token_embedding" if which == "token" else "positional_embedding"
    drawn = _draw_sizes(draw, {"B": (1, 3), "l": (1, 5), "d_e": (1, 5), "N_V": (1, 7),
                               "l_max": (5, 7)}, {})
    sizes = constrain(alg, drawn | {"padding_idx": VARIANTS["padding_idx"]}
                      if which == "token" else drawn)
    p = sizes.get("padding_idx")
    if p is not None:  # the padding id must be a token of the vocabulary
        sizes["N_V"] = max(sizes["N_V"], p + 1)
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, sizes["N_V"], (sizes["B"], sizes["l"]))
    W = "W_e" if which == "token" else "W_p"
    cols = sizes["N_V"] if which == "token" else sizes["l_max"]
    params = {W: rng.standard_normal((sizes["d_e"], cols)).astype(dtype)}
    data = {"x": x, "l": sizes["l"], "params": params}
    if p is not None:
        params["W_e"][:, p], x[0, 0], data["padding_idx"] = 0, p, p
    return Case(alg, sizes, seed, data)


def padding_index(data: Mapping[str, Any]) -> int | None:
    """The declared padding_idx of a case: its config's, or a token embedding case's."""
    config = data.get("config")
    return getattr(config, "padding_idx", None) if config is not None else data.get(
        "padding_idx")


@st.composite
def unembedding_cases(draw, constrain: Constrain, dtype: Any) -> Case:
    """X (B, l, d_e), W_u (N_V, d_e) and targets y (B, l) for Algorithms 7 and 23."""
    sizes = constrain("unembedding", _draw_sizes(draw, {"B": (1, 3), "l": (1, 4),
                                                        "d_e": (1, 5), "N_V": (2, 7)}, {}))
    seed, scale = draw(SEEDS), draw(SCALES)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((sizes["B"], sizes["l"], sizes["d_e"])).astype(dtype)
    params = random_parameters({"W_u": (sizes["N_V"], sizes["d_e"])}, rng, scale, dtype)
    y = rng.integers(0, sizes["N_V"], (sizes["B"], sizes["l"]))
    return Case("unembedding", sizes, seed, {"X": X, "params": params, "y": y})


# -- architectures, training, inference ------------------------------------------------------
@st.composite
def configs(draw, constrain: Constrain, arch: str, l_max: tuple[int, int] = (2, 6),
            fixed: Mapping[str, Any] | None = None):
    """A small config of ``arch`` ("d_transformer", "e_transformer", "ed_transformer")."""
    return draw(config_fields(constrain, arch, l_max, fixed))[0]


@st.composite
def config_fields(draw, constrain: Constrain, arch: str, l_max: tuple[int, int] = (2, 6),
                  fixed: Mapping[str, Any] | None = None,
                  shapes: Callable[[Any], dict[str, int]] | None = None):
    """(config, shapes): a small config of ``arch`` and the input sizes ``shapes(draw,
    fields)`` draws for it (batch size, lengths), all passed through ``constrain`` together so
    that a fixed-shape implementation sees them; lengths are clipped to the constrained l_max."""
    fixed = dict(fixed or {})
    H = fixed.get("H", draw(st.integers(1, 2)))
    d_head = draw(st.integers(2 if H == 1 else 1, 3))
    fields: dict[str, Any] = {
        "N_V": draw(st.integers(2, 7)), "l_max": draw(st.integers(*l_max)), "d_e": H * d_head,
        "d_mlp": draw(st.integers(1, 6)), "H": H,
        "activation": draw(st.sampled_from(ACTIVATIONS)), "layer_norm_eps": draw(EPS)}
    if arch == "ed_transformer":
        fields |= {"L_enc": draw(st.integers(1, 2)), "L_dec": draw(st.integers(1, 2))}
    else:
        fields["L"] = draw(st.integers(1, 2))
    if arch == "e_transformer":
        fields["embedding_layer_norm"] = draw(st.booleans())
    fields |= VARIANTS | fixed  # the adapter's declared variants replace these in constrain
    extra = shapes(draw, fields) if shapes is not None else {}
    out = constrain(arch, fields | extra)
    fields = {k: v for k, v in out.items() if k not in extra}
    if fields["padding_idx"] is not None:  # the padding id must be a token of the vocabulary
        fields["N_V"] = max(fields["N_V"], fields["padding_idx"] + 1)
    config = CONFIG_CLASSES[arch](**fields)
    sizes = {k: min(out[k], config.l_max) if k.startswith("l") else out[k] for k in extra}
    return config, sizes


# Sequence lengths of the long regime: half the examples of every architecture check (and of
# their training and inference) have l_max and l in this range, so that a bug that only shows
# beyond a few positions (a window on the causal mask, a position table cut short) is reached.
LONG = (16, 20)


def model_parameters(config: Any, rng: np.random.Generator, scale: float, dtype: Any
                     ) -> dict[str, np.ndarray]:
    """Random canonical parameters of ``config``, respecting its declared variants: exactly
    the entries of canonical.parameter_shapes (no W_u when tied, no b_*/beta without bias),
    W_e[:, padding_idx] = 0."""
    return zero_padding_column(config, random_parameters(parameter_shapes(config), rng, scale,
                                                         dtype))


@st.composite
def architecture_cases(draw, constrain: Constrain, dtype: Any, arch: str,
                       zero_positions: bool = False, l_max: tuple[int, int] = (2, 6),
                       fixed: Mapping[str, Any] | None = None, min_len: int = 1,
                       long: bool | None = None) -> Case:
    """A config, canonical parameters and token sequences x (B, l) [and z (B, l_z)].

    ``zero_positions`` sets W_p = 0 (the positional embedding disabled). ``long`` (drawn when
    None) picks the long regime: l_max and l in LONG (l_z anywhere up to l_max), B <= 2.
    """
    long = draw(st.booleans()) if long is None else long
    low = max(min_len, LONG[0]) if long else min_len

    def shapes(draw, fields):
        top = fields["l_max"]
        out = {"B": draw(st.integers(1, 2 if long else 3)),
               "l": draw(st.integers(min(low, top), top))}
        if arch == "ed_transformer":
            out["l_z"] = draw(st.integers(1, top))
        return out

    config, sizes = draw(config_fields(constrain, arch, LONG if long else l_max, fixed, shapes))
    return build_architecture_case(arch, config, sizes["B"], sizes["l"], sizes.get("l_z"),
                                   draw(SEEDS), draw(SCALES), dtype, zero_positions)


def build_architecture_case(arch: str, config: Any, B: int, l: int, l_z: int | None,
                            seed: int, scale: float, dtype: Any, zero_positions: bool = False
                            ) -> Case:
    """The case ``architecture_cases`` draws for these choices (also used to pin examples)."""
    rng = np.random.default_rng(seed)
    params = model_parameters(config, rng, scale, dtype)
    if zero_positions:
        params["W_p"] = np.zeros_like(params["W_p"])
    data: dict[str, Any] = {"config": config, "params": params,
                            "x": rng.integers(0, config.N_V, (B, l)), "scale": scale}
    sizes = {"B": B, "l": l}
    if arch == "ed_transformer":
        sizes["l_z"] = l_z  # the context may be a single token
        data["z"] = rng.integers(0, config.N_V, (B, l_z))
    return Case(arch, sizes, seed, data)


@st.composite
def training_cases(draw, constrain: Constrain, dtype: Any, arch: str) -> Case:
    """An architecture case plus a learning rate, and for the E transformer the masking
    decisions and a mask token (spec: Algorithms 11-13)."""
    case = draw(architecture_cases(constrain, dtype, arch.replace("training", "transformer"),
                                   l_max=(2, 5), min_len=2))
    case.kind = arch
    case.data["eta"] = draw(st.sampled_from([0.1, 0.01]))
    if arch == "e_training":
        rng = case.rng(2)
        masked = rng.random(case["x"].shape) < 0.5
        masked[:, 0] |= ~masked.any(axis=1)  # every sequence predicts at least one token
        case.data["masked"] = masked
        case.data["mask_token"] = int(rng.integers(case["config"].N_V))
    return case


@st.composite
def inference_cases(draw, constrain: Constrain, dtype: Any, arch: str, taus=(1.0, 0.5, 2.0),
                    scale: float | None = None, fixed: Mapping[str, Any] | None = None) -> Case:
    """A D or ED transformer with parameters, a prompt (B, l) or context z (B, l_z), a
    temperature and a sampling seed (spec: Algorithms 14-15). ``fixed``: config fields to
    impose (e.g. a wide N_V). ``constrain`` sees the config fields with the batch size B and
    the prompt length l and l_gen (ED: the context length l_z), so that a fixed-shape
    implementation can fix them too."""
    base = "d_transformer" if arch == "d_inference" else "ed_transformer"
    # Long regimes (see architecture_cases): a long generation from a prompt of any length,
    # or a prompt (a context) of >= LONG[0] - 1 tokens, so that even a check that samples a
    # single new token runs on >= LONG[0] tokens.
    regime = draw(st.sampled_from(["short", "long generation", "long prompt"]))
    config, sizes = draw(config_fields(
        constrain, base, (4, 7) if regime == "short" else (LONG[0] + 2, LONG[1] + 2), fixed,
        lambda draw, fields: _inference_shapes(draw, base, fields, regime == "long prompt")))
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    params = model_parameters(config, rng, scale or draw(SCALES), dtype)
    data: dict[str, Any] = {"config": config, "params": params, "tau": draw(st.sampled_from(taus)),
                            "sample_seed": draw(st.integers(0, 2**31 - 1))}
    B = sizes["B"]
    if base == "d_transformer":
        l = min(sizes["l"], config.l_max - 1)
        data["prompt"] = rng.integers(0, config.N_V, (B, l))
        data["l_gen"] = max(1, min(sizes["l_gen"], config.l_max - l))
    else:
        data["z"] = rng.integers(0, config.N_V, (B, sizes["l_z"]))
        data["bos_token"], data["eos_token"] = 0, config.N_V - 1
        data["l_max_gen"] = config.l_max - 1
    return Case(arch, sizes, seed, data)


def _inference_shapes(draw, base: str, fields: Mapping[str, Any], long_prompt: bool
                      ) -> dict[str, int]:
    """B and the prompt length l with l_gen (D) or the context length l_z (ED) of an
    inference case, drawn for the config fields before ``constrain`` sees them."""
    top = fields["l_max"]
    low = min(LONG[0] - 1, top - 2) if long_prompt else 1
    B = draw(st.integers(1, 2))
    if base != "d_transformer":
        return {"B": B, "l_z": draw(st.integers(low, top))}
    l = draw(st.integers(low, top - 2))
    return {"B": B, "l": l, "l_gen": draw(st.integers(2, top - l))}


def cases_for(alg: str, constrain: Constrain, dtype: Any, **options: Any):
    """The default cases of a forward or backward algorithm (a backward gets its forward's)."""
    base = alg.removesuffix("_backward")
    from conformance import variant_strategies  # the modern primitives (Algorithms 40-49)

    if base in variant_strategies.VARIANTS:
        return variant_strategies.variant_cases_for(alg, constrain, dtype, **options)
    if base in ("attention", "mhattention"):
        return attention_cases(constrain, dtype, base == "mhattention", **options)
    if base in CONFIG_CLASSES:
        return architecture_cases(constrain, dtype, base, **options)
    if base == "modern_d_transformer":
        from conformance.modern_cases import modern_cases  # it builds on this module

        return modern_cases(constrain, dtype, **options)
    builders = {"basic_attention": basic_attention_cases, "layer_norm": layer_norm_cases,
                "mlp": mlp_cases, "unembedding": unembedding_cases,
                "token_embedding": lambda c, d, **o: embedding_cases(c, d, "token", **o),
                "positional_embedding": lambda c, d, **o: embedding_cases(c, d, "positional",
                                                                          **o)}
    from conformance.strategies_modern import BUILDERS as MODERN_BUILDERS
    from conformance.strategies_vision import BUILDERS as VISION_BUILDERS

    builders |= MODERN_BUILDERS | VISION_BUILDERS
    return builders[base](constrain, dtype, **options)


def regressions(alg: str, dtype: Any) -> list[Case]:
    """Counterexamples that once failed, pinned so that every run tries them first.

    ed_transformer: reference_numpy's decoder backward once dropped the residual around the
    cross-attention (dX = dQ instead of dY + dQ); gradient.finite_difference caught it here.
    """
    if alg != "ed_transformer":
        return []
    config = EDTransformerConfig(N_V=3, l_max=3, d_e=3, d_mlp=2, L_enc=1, L_dec=1, H=1,
                                 activation="relu")
    return [build_architecture_case(alg, config, 1, 3, 2, 0, 1.0, dtype)]


# -- sampling conventions (Algorithm 60) -----------------------------------------------------
SAMPLING_DELTA = 2e-3  # top-p / min-p thresholds this far away change no kept set


def _kept(p: np.ndarray, config: Any) -> tuple[bool, ...]:
    from reference_numpy.sampling import truncated_distribution

    return tuple(bool(v) for v in truncated_distribution(p, config) > 0)


def robust_sampling_config(P: np.ndarray, config: Any) -> bool:
    """Whether moving top_p and min_p by SAMPLING_DELTA keeps every row's kept set: the no-
    near-boundary condition of sampling.kept_set (a float32 or float16 implementation's
    rounding of the masses must not decide the set)."""
    from dataclasses import replace

    moved = [replace(config, top_p=min(1.0, max(SAMPLING_DELTA, config.top_p + s)))
             for s in (-SAMPLING_DELTA, SAMPLING_DELTA) if config.top_p < 1]
    moved += [replace(config, min_p=min(1.0, max(0.0, config.min_p + s)))
              for s in (-SAMPLING_DELTA, SAMPLING_DELTA) if config.min_p > 0]
    return all(_kept(p, c) == _kept(p, config) for p in P for c in moved)


@st.composite
def sampling_cases(draw, constrain: Constrain, dtype: Any, truncate: bool = True,
                   taus=(1.0, 0.5, 2.0, 0.8)) -> Case:
    """Logits (B, N_V) on a grid of 1/8 (exact in float16; ties are exact, distinct values
    differ by e^(1/8) at least), a SamplingConfig and a seed (spec: Algorithm 60).

    N_V is small (2-8) or wide (64-128: past a silent top-50 truncation). ``truncate=False``
    gives the explicit no-op values top_k = N_V, top_p = 1, min_p = 0."""
    from formal_transformers.sampling_config import ORDERS, SamplingConfig

    sizes = constrain("sampling", {"N_V": draw(st.one_of(st.integers(2, 8),
                                                         st.integers(64, 128)))})
    N_V, seed = sizes["N_V"], draw(SEEDS)
    rng = np.random.default_rng(seed)
    B, spread = draw(st.integers(1, 2)), draw(st.sampled_from([0.5, 1.0, 2.0, 3.0]))
    if draw(st.booleans()):  # a few levels: many exact ties, boundaries inside tie groups
        logits = rng.integers(0, 4, (B, N_V)) * spread
    else:
        logits = np.round(rng.standard_normal((B, N_V)) * spread * 8) / 8
    P = np.exp(logits - logits.max(-1, keepdims=True))
    P /= P.sum(-1, keepdims=True)
    order, tau = draw(st.sampled_from(ORDERS)), draw(st.sampled_from(taus))
    config = SamplingConfig(tau=tau, top_k=N_V, order=order)
    if truncate:
        k = draw(st.sampled_from([None, 1, 2, 3, N_V // 2, N_V - 1, N_V, 55]))
        for _ in range(8):
            config = SamplingConfig(
                tau=tau, top_k=None if k is None else max(1, min(k, N_V)), order=order,
                top_p=draw(st.sampled_from([1.0, 0.3, 0.6, 0.9, 0.95, 0.99])),
                min_p=draw(st.sampled_from([0.0, 0.01, 0.05, 0.2, 0.5])))
            if robust_sampling_config(P, config):
                break
        else:
            config = SamplingConfig(tau=tau, top_k=config.top_k, order=order)
    return Case("sampling", sizes, seed, {"logits": logits.astype(dtype), "config": config,
                                          "sample_seed": draw(st.integers(0, 2**31 - 1))})


# -- speculative decoding (Algorithm 61) -----------------------------------------------------
@st.composite
def speculative_cases(draw, constrain: Constrain, dtype: Any, greedy: bool = False,
                      rollbacks: bool = False, rows: tuple[int, int] = (1, 2)) -> Case:
    """A target and a smaller draft D transformer on one vocabulary, a prompt (B, l_x), l_gen,
    the draft length k and the sampling conventions (None: greedy). Sampled cases are tiny
    (N_V^l_gen <= 16) so that the exact distribution over sequences can be enumerated;
    ``rollbacks`` draws k >= 2 and l_gen >= 3, where a rejection leaves draft proposals to cut
    from the draft's cache before it proposes again."""
    from formal_transformers.sampling_config import SamplingConfig

    N_V = draw(st.integers(2, 7) if greedy else st.integers(2, 3))
    l_x = draw(st.integers(1, 2))
    if greedy:
        l_gen = draw(st.integers(4, 6) if rollbacks else st.integers(2, 5))
    else:
        l_gen = 4 if rollbacks and N_V == 2 else draw(st.integers(3 if rollbacks else 2,
                                                                   4 if N_V == 2 else 3))
    shared = {"N_V": N_V, "l_max": l_x + l_gen - 1}
    target = draw(configs(constrain, "d_transformer", fixed=shared | {"L": draw(
        st.integers(1, 2))}))
    k = draw(st.integers(2 if rollbacks else 1, 3))
    # a draft may have the longer context (room for a cache that fails to roll back)
    draft = draw(configs(constrain, "d_transformer", fixed=shared | {
        "L": 1, "H": 1, "l_max": shared["l_max"] + (k - 1) * l_gen}))
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {
        "target_config": target, "draft_config": draft,
        "target_params": random_parameters(parameter_shapes(target), rng, 2.0, dtype),
        "draft_params": random_parameters(parameter_shapes(draft), rng,
                                          3.0 if rollbacks else 2.0, dtype),
        "prompt": rng.integers(0, N_V, (draw(st.integers(*rows)), l_x)), "l_gen": l_gen,
        "k": k, "sample_seed": draw(st.integers(0, 2**31 - 1)),
        "sampling": None if greedy else SamplingConfig(tau=draw(st.sampled_from([1.0, 0.7])))}
    return Case("speculative_decoding", shared, seed, data)
