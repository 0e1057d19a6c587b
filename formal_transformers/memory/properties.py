"""The memory laws of spec/properties.md, as checks on the bundled implementations.

Each law is a function returning a ``LawResult``; ``LAWS`` maps property id to function and
``run_laws`` runs them (tests/memory/test_properties.py does, and so can the conformance
runner). Unlike the other properties they are statements about reference_numpy and
torch_impl themselves -- how much memory those implementations take -- so they take
configurations, not an adapter.

- memory.parameter_count: (M1)-(M11) equal the canonical parameter count, for every preset;
  the tied counts of GPT-2 equal the published ones.
- memory.activations: the activations kept for the backward pass equal (M15)-(M22) exactly.
- memory.reference_peak: reference_numpy's tracemalloc peak equals (M29) within 2 %.
- memory.torch_peak: torch_impl's peak on CPU equals (M28) within 10 %, and a decode with the
  KV cache equals (M31)/(M32) within 10 %.
- memory.growth_law: one attention layer's kept memory grows as l^2 on the naive path and as
  l on the sdpa path (fitted exponents within 0.25 of 2 and 0.05 of 1), as predicted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from formal_transformers.canonical import parameter_count
from formal_transformers.memory import compare, growth
from formal_transformers.memory.counts import parameter_counts, tied_parameter_count
from formal_transformers.memory.predict import inference_memory, training_memory
from formal_transformers.presets import PRESETS, get_preset

# Published parameter counts (weights tied), Hugging Face GPT2LMHeadModel.
GPT2_TIED = {"gpt2-small": 124_439_808, "gpt2-medium": 354_823_168,
             "gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200}
REFERENCE_CASES = (("small-decoder", 96, None), ("small-encoder", 96, None),
                   ("small-encoder-decoder", 96, 64))
TORCH_CASES = tuple((name, dtype, path) for name in ("tiny-decoder", "tiny-encoder",
                                                      "tiny-encoder-decoder", "tiny-llama",
                                                      "tiny-mistral", "tiny-gemma2")
                    for dtype in ("float32", "bfloat16") for path in ("naive", "sdpa"))
TORCH_BATCH, TORCH_SEQ, TORCH_SRC_SEQ = 4, 64, 48
NAIVE_EXPONENT, SDPA_EXPONENT = (2.0, 0.25), (1.0, 0.05)


@dataclass(frozen=True)
class LawResult:
    """The outcome of one law: ``passed``, one line per case, the largest relative error."""

    id: str
    passed: bool
    lines: tuple[str, ...]
    max_error: float

    def to_dict(self) -> dict:
        return {"property": self.id, "passed": self.passed, "cases": list(self.lines),
                "max_error": self.max_error}


def _from_checks(law: str, checks: list[compare.Check]) -> LawResult:
    lines = tuple(f"{c.name}: predicted {c.predicted:,} B, measured {c.measured:,} B "
                  f"({c.error:+.2%}, tolerance {c.tolerance:.0%})"
                  + ("" if c.ok else "  <-- outside") for c in checks)
    return LawResult(law, all(c.ok for c in checks), lines,
                     max((abs(c.error) for c in checks), default=0.0))


def parameter_count_law(names: Iterable[str] = tuple(PRESETS)) -> LawResult:
    """memory.parameter_count on the presets (the conformance suite draws further configs)."""
    lines, ok = [], True
    for name in names:
        c = get_preset(name)
        ours, canonical = parameter_counts(c)["total"], parameter_count(c)
        good = ours == canonical and (name not in GPT2_TIED
                                      or tied_parameter_count(c) == GPT2_TIED[name])
        ok &= good
        lines.append(f"{name}: formula {ours:,}, canonical {canonical:,}, tied "
                     f"{tied_parameter_count(c):,}" + ("" if good else "  <-- differs"))
    return LawResult("memory.parameter_count", ok, tuple(lines), 0.0 if ok else 1.0)


def _torch_estimate(name: str, dtype: str, path: str):
    c = get_preset(name)
    src = TORCH_SRC_SEQ if c.arch == "encoder-decoder" else None
    return training_memory(c, TORCH_BATCH, TORCH_SEQ, dtype, "adamw", path, src)


def _reference_estimate(name: str, seq: int, src_seq: int | None):
    return training_memory(get_preset(name), 1, seq, "float64", "sgd", "reference", src_seq)


def _split(checks: list[compare.Check], activations: bool) -> list[compare.Check]:
    return [c for c in checks if c.name.endswith("activations kept") == activations]


def activations_law(reference_cases=REFERENCE_CASES, torch_cases=TORCH_CASES) -> LawResult:
    """memory.activations on the reference and torch cases of the two peak laws."""
    checks: list[compare.Check] = []
    for case in reference_cases:
        checks += compare.training_checks(_reference_estimate(*case), peak=False)
    for case in torch_cases:
        checks += compare.training_checks(_torch_estimate(*case), peak=False)
    return _from_checks("memory.activations", checks)


def reference_peak_law(cases=REFERENCE_CASES) -> LawResult:
    """memory.reference_peak: one gradient-descent step of reference_numpy per case."""
    checks: list[compare.Check] = []
    for case in cases:
        checks += _split(compare.training_checks(_reference_estimate(*case)), False)
    return _from_checks("memory.reference_peak", checks)


def torch_peak_law(cases=TORCH_CASES) -> LawResult:
    """memory.torch_peak: a steady-state AdamW step per case, and a decode per preset."""
    checks: list[compare.Check] = []
    for case in cases:
        checks += compare.training_checks(_torch_estimate(*case), activations=False)
    for name, dtype in sorted({(n, d) for n, d, _ in cases}):
        c = get_preset(name)
        if c.arch != "encoder":
            checks += compare.inference_checks(
                inference_memory(c, TORCH_BATCH, TORCH_SEQ, TORCH_SEQ // 2, dtype))
    return _from_checks("memory.torch_peak", checks)


def growth_law(dtype: str = "float32") -> LawResult:
    """memory.growth_law over l in growth.LENGTHS."""
    g = growth.attention_growth(dtype=dtype)
    lines, ok, worst = [], True, 0.0
    for path, (target, tol) in (("naive", NAIVE_EXPONENT), ("sdpa", SDPA_EXPONENT)):
        k, k_pred = g.exponent(path), g.exponent(path, "predicted")
        exact = g.measured[path] == g.predicted[path]
        good = abs(k - target) <= tol and exact
        ok &= good
        worst = max(worst, abs(k - target))
        lines.append(f"{path}: fitted exponent {k:.3f} (predicted {k_pred:.3f}, law "
                     f"{target} +- {tol}); bytes {list(g.measured[path])} "
                     + ("= prediction" if exact else f"!= prediction {list(g.predicted[path])}"))
    return LawResult("memory.growth_law", ok, tuple(lines), worst)


LAWS: dict[str, Callable[[], LawResult]] = {
    "memory.parameter_count": parameter_count_law,
    "memory.activations": activations_law,
    "memory.reference_peak": reference_peak_law,
    "memory.torch_peak": torch_peak_law,
    "memory.growth_law": growth_law,
}


def run_laws(ids: Iterable[str] | None = None) -> list[LawResult]:
    """Run the named memory laws (all by default), in the order of ``LAWS``."""
    wanted = list(LAWS) if ids is None else list(ids)
    unknown = [i for i in wanted if i not in LAWS]
    if unknown:
        raise KeyError(f"unknown memory law {unknown[0]!r}; known: {list(LAWS)}")
    return [LAWS[i]() for i in LAWS if i in wanted]
