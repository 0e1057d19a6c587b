"""The laws of the modern decoder (spec: Algorithm 65; spec/properties.md): its output columns
are distributions, it is causal, it agrees with the reference, with GPT-2's selections it is
Algorithm 10 (``structure.special_case``), its KV cache (G heads, a ring buffer of w slots per
windowed layer) gives the distributions of the full pass, and its parameter count is the
closed form of spec/memory.md. Its backward (Algorithm 66) matches central differences of the
forward and the reference's hand-written gradients, and one step of Algorithm 13 on it is the
reference's step."""

from __future__ import annotations

from hypothesis import strategies as st

from conformance import calls
from conformance.assertions import assert_close, tolerance
from conformance.modern_cases import ALG, gpt2_cases, modern_cases, modern_fields
from conformance.properties.causal import decoder_non_leakage
from conformance.properties.gradient import finite_difference
from conformance.properties.memory import assert_count
from conformance.properties.reference import forward_agreement, gradient_agreement
from conformance.properties.structure import columns_are_distributions
from conformance.properties.training import assert_step_agrees
from conformance.registry import Check, check, register, up
from formal_transformers.hyperparameters import ModernDTransformerConfig
from formal_transformers.memory.counts import modern_parameter_counts

register(Check("structure.distribution", ALG, columns_are_distributions,
               lambda a, c, d: modern_cases(c, d), line=r"softmax"))
register(Check("reference.forward_agreement", ALG, forward_agreement,
               lambda a, c, d: modern_cases(c, d), dtypes="all", line=r"return", cost=2))
register(Check("causal.non_leakage", ALG, decoder_non_leakage,
               lambda a, c, d: modern_cases(c, d, min_len=2), line=r"t_z \\le t_x", cost=2))

BACKWARD = "modern_d_transformer_backward"  # Algorithm 66
register(Check("gradient.finite_difference", BACKWARD, finite_difference,
               lambda a, c, d: modern_cases(c, d), requires=(ALG,), cost=2))
register(Check("reference.gradient_agreement", BACKWARD, gradient_agreement,
               lambda a, c, d: modern_cases(c, d), dtypes="all", cost=2))


def modern_training_cases(constrain, dtype):
    """A modern decoder case with a learning rate: one epoch of Algorithm 13 on it."""
    def with_eta(drawn):
        case, eta = drawn
        case.kind, case.data["eta"] = "d_training", eta
        return case
    return st.tuples(modern_cases(constrain, dtype, min_len=2, l_max=(2, 5)),
                     st.sampled_from([0.1, 0.01])).map(with_eta)


@check("training.step_agreement", (BACKWARD,), lambda a, c, d: modern_training_cases(c, d),
       requires=("d_training",), dtypes="all", line=r"P \\odot", cost=2)
def modern_training_step_agreement(ctx, case):
    """d_training (Algorithm 13) on a modern decoder: the reference's loss and updated
    parameters, its gradient being Algorithm 66's."""
    assert_step_agrees(ctx, "d_training", case)


@check("structure.special_case", (ALG,), lambda a, c, d: gpt2_cases(c, d),
       requires=("d_transformer",), line=r"return")
def gpt2_selections_are_algorithm_10(ctx, case):
    """ModernDTransformer with GPT-2's selections equals DTransformer on the same parameters."""
    x, params = case["x"], case["params"]
    modern = ctx.adapter.modern_d_transformer(x, params, case["config"])
    d = ctx.adapter.d_transformer(x, params, case["d_config"])
    assert_close(ctx, "modern decoder (GPT-2 selections) vs Algorithm 10", modern, d,
                 tolerance(ctx.dtype), calls.AXES[ALG])


@check("kv_cache.equivalence", (ALG,),
       lambda a, c, d: st.tuples(modern_cases(c, d, min_len=2, l_max=(3, 8)),
                                 st.integers(1, 8)),
       requires=("modern_d_transformer_cached",), line=r"Mask", cost=2)
def cached_decoding_equals_the_full_pass(ctx, drawn):
    """Prefill p tokens, then one token per step through the cache: every row of P equals the
    reference's full forward pass (teacher forcing is recomputation, by causality)."""
    case, p = drawn
    x, params, config = case["x"], case["params"], case["config"]
    prefill = min(p, x.shape[1])
    observed = ctx.adapter.modern_d_transformer_cached(x, params, config, prefill)
    expected = calls.forward(ctx.reference, ALG, {k: up(v) for k, v in case.data.items()})
    assert_close(ctx, f"P through the cache (prefill {prefill}, then 1 token per step, "
                 f"windows {config.windows}) vs the full pass", observed, expected,
                 tolerance(ctx.dtype), calls.AXES[ALG])


def modern_count(c: ModernDTransformerConfig) -> int:
    """Closed form (M66) of spec/memory.md: the parameters of Algorithm 65."""
    return modern_parameter_counts(c)["total"]


@st.composite
def _modern_configs(draw, alg, constrain, dtype):
    return ModernDTransformerConfig(**constrain(ALG, draw(modern_fields())))


@check("memory.parameter_count", (ALG,), _modern_configs, requires=("count_parameters",))
def modern_parameter_count_is_exact(ctx, config):
    """The adapter's parameter count equals the closed form (and the canonical count)."""
    assert_count(ctx, config, modern_count(config))
