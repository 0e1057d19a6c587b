"""Measured beside predicted, with the tolerances of spec/memory.md section 8.

The reference's tracemalloc peak must equal the prediction within 2 %, torch's measured
peak within 10 % (its working memory follows autograd's order of release; see section 5);
the activations kept for the backward pass are exact on every path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from formal_transformers.errors import ConfigError
from formal_transformers.memory import runs
from formal_transformers.memory.baselines import baseline_estimates
from formal_transformers.memory.predict import Estimate, dtype_bytes

REFERENCE_TOLERANCE = 0.02
TORCH_TOLERANCE = 0.10
ACTIVATION_TOLERANCE = 0.0


@dataclass(frozen=True)
class Check:
    """One quantity, predicted and measured, and whether they agree within ``tolerance``."""

    name: str
    predicted: int
    measured: int
    tolerance: float
    method: str
    baselines: dict[str, int] = field(default_factory=dict)  # outside estimates of a peak

    @property
    def error(self) -> float:
        """Relative error of the measurement against the prediction."""
        return (self.measured - self.predicted) / self.predicted

    @property
    def ok(self) -> bool:
        return abs(self.measured - self.predicted) <= self.tolerance * self.predicted

    def estimates(self) -> dict[str, int]:
        """Ours first, then the outside estimates (spec/memory.md section 12)."""
        return {"ours": self.predicted, **self.baselines}

    def error_of(self, name: str) -> float:
        """Relative error of one estimate against the measurement: (predicted - measured)
        / measured."""
        return (self.estimates()[name] - self.measured) / self.measured

    def to_dict(self) -> dict:
        data = {"name": self.name, "predicted_bytes": self.predicted,
                "measured_bytes": self.measured, "relative_error": self.error,
                "tolerance": self.tolerance, "within_tolerance": self.ok,
                "method": self.method}
        if self.baselines:
            data["estimates"] = {k: {"predicted_bytes": v,
                                     "relative_error_vs_measured": self.error_of(k)}
                                 for k, v in self.estimates().items()}
        return data


def training_checks(estimate: Estimate, device: str = "cpu", seed: int = 0,
                    peak: bool = True, activations: bool = True) -> list[Check]:
    """Run the training step ``estimate`` describes; check its peak and the activations it
    keeps (``peak`` / ``activations`` False skip one; the reference always measures both)."""
    s, c = estimate.settings, estimate.config
    if s["path"] == "reference":
        m = runs.measure_reference_training(c, s["seq"], s["src_seq"], seed, peak)
        tol = REFERENCE_TOLERANCE
    else:
        m = runs.measure_torch_training(c, s["batch"], s["seq"], s["dtype"], s["optimizer"],
                                        s["path"], s["src_seq"], device, seed, peak,
                                        activations)
        tol = TORCH_TOLERANCE
    label = f"training step, {s['path']}"
    outside = ({} if s["path"] == "reference" else
               baseline_estimates(c, s["batch"], s["seq"], dtype_bytes(s["dtype"]),
                                  s["optimizer"]))
    checks = [Check(f"{label}: peak", estimate.peak, m.peak, tol, m.method, outside)
              ] if peak else []
    if m.activations is not None:
        checks.append(Check(f"{label}: activations kept", estimate.row("activations"),
                            m.activations, ACTIVATION_TOLERANCE,
                            "NumPy array data in the caches" if s["path"] == "reference"
                            else "autograd saved tensors"))
    return checks


def inference_checks(estimate: Estimate, device: str = "cpu", seed: int = 0) -> list[Check]:
    """Run the decode ``estimate`` describes with torch_impl; check its peak."""
    s = estimate.settings
    m = runs.measure_torch_inference(estimate.config, s["batch"], s["prompt"],
                                     s["new_tokens"], s["dtype"], device, seed)
    outside = baseline_estimates(estimate.config, s["batch"], s["cache_positions"],
                                 dtype_bytes(s["dtype"]), None)
    return [Check("inference with KV cache: peak", estimate.peak, m.peak, TORCH_TOLERANCE,
                  m.method, outside)]


def measure_all(estimates: dict[str, Estimate], inference: Estimate | None, device: str,
                max_bytes: float) -> list[Check]:
    """Every check of ``estimates`` (and of ``inference`` unless the reference is asked),
    refusing when a prediction exceeds ``max_bytes``."""
    todo = list(estimates.values()) + ([inference] if inference is not None
                                       and "reference" not in estimates else [])
    for e in todo:
        if e.peak > max_bytes:
            raise ConfigError(f"the predicted peak {e.peak:,} bytes exceeds --max-measure-bytes "
                              f"{max_bytes:,.0f}; measure a smaller preset, batch or seq")
    checks: list[Check] = []
    for e in estimates.values():
        checks += training_checks(e, device)
    if inference is not None and "reference" not in estimates:
        checks += inference_checks(inference, device)
    return checks


COMPARISON_PRESETS = ("tiny-gpt2", "tiny-llama", "tiny-mistral", "tiny-gemma2")


def estimate_comparison(name: str, config, batch: int = 2, seq: int = 64,
                        device: str = "cpu") -> list[dict]:
    """The three estimates of spec/memory.md section 12 beside the measured peaks of one
    model: a float32 AdamW training step on each attention path and a decode of seq // 2
    tokens after seq - seq // 2 + 1 (the cache holds seq positions). One row per run: the
    measured bytes and, per estimate, its bytes and (estimate - measured) / measured."""
    from formal_transformers.memory.predict import inference_memory, training_memory

    checks = [check for path in ("naive", "sdpa") for check in training_checks(
        training_memory(config, batch, seq, "float32", "adamw", path, device=device),
        device, activations=False)]
    new = seq // 2
    checks += inference_checks(inference_memory(config, batch, seq - new + 1, new), device)
    return [{"model": name, "run": c.name.removesuffix(": peak"), "batch": batch, "seq": seq,
             "measured_bytes": c.measured, "method": c.method,
             "estimates": {k: {"predicted_bytes": v, "relative_error_vs_measured":
                               c.error_of(k)} for k, v in c.estimates().items()}}
            for c in checks]
