"""Golden vectors: the float64 reference's known answers, portable to any language.

``write(directory)`` writes, for every algorithm of the catalogue that reference_numpy
implements, known-answer cases -- inputs, canonical parameters, masks, hyperparameters,
outputs; for backward entries the upstream gradient and the gradients; for training the loss
and the updated parameters -- as one safetensors file per algorithm plus ``index.json``
(schema: spec/vectors.schema.json) with the spec version and per-case tolerances by dtype.

The cases are the suite's own (conformance/strategies.py), drawn by hypothesis with fixed
seeds in float32 (so every input is exactly representable in float32 and float64; the answers
are the float64 reference's on exactly those values), plus edge cases derived from them: a
mask with a single allowed entry per query, the same case without its mask, extreme logits
(queries and keys, or the unembedding, scaled by a power of two), every activation function.
Hypothesis' first example is its simplest (every length 1). The same versions of the project
and of hypothesis write byte-identical files.

``check(directory, adapter)`` runs an adapter over the vectors and returns runner.Result rows
(property ``vectors.known_answer``, one per algorithm and dtype).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed

from conformance import calls
from conformance.assertions import (
    PropertyViolation,
    Tolerance,
    assert_close,
    assert_exact,
    gradient_tolerance,
    tolerance,
)
from conformance.bound import Bound
from conformance.registry import up
from conformance.runner import Result
from conformance.strategies import cases_for, training_cases
from formal_transformers import __version__
from formal_transformers.atomic import atomic_write, write_json
from formal_transformers.errors import AdapterError, ParameterFileError
from formal_transformers.hyperparameters import (
    ACTIVATIONS,
    GATED_ACTIVATIONS,
    config_from_dict,
)
from formal_transformers.rope import Rope, RopeScaling
from formal_transformers.spec import load_catalogue, spec_root

FORMAT = "formal-transformers-vectors"
FORMAT_VERSION = 1
PROPERTY = "vectors.known_answer"
STATEMENT = ("On the published known-answer cases the implementation's outputs (and gradients) "
             "equal the float64 reference's within the case's tolerance for the dtype.")
DRAWN = 8  # cases drawn per algorithm, before the edge cases
DTYPES = ("float64", "float32")  # inputs are exact in both
MASKS = ("sliding_window_mask", "block_sparse_mask")
TRAINING = ("ed_training", "e_training", "d_training")
ARCH_BACKWARD = tuple(f"{a}_backward" for a in calls.ARCHITECTURES)
NOT_WRITTEN = {
    "d_inference": "stochastic sampling: the tokens depend on the implementation's random "
                   "stream, so no known answer exists; the sampled distributions are checked "
                   "by the suite's sampling.* laws instead",
    "ed_inference": "stochastic sampling: the tokens depend on the implementation's random "
                    "stream, so no known answer exists; the sampled distributions are checked "
                    "by the suite's sampling.* laws instead",
    "sampling": "stochastic: the draws depend on the implementation's random stream; the "
                "distribution they follow is checked by the suite's sampling.* laws",
    "speculative_decoding": "stochastic: the accepted tokens depend on the implementation's "
                            "random stream; the output distribution is checked by the suite's "
                            "speculative.* laws",
}
GENERATION = ("scale",)  # how a case was drawn, not an input of the algorithm
ANSWER = {"sliding_window_mask": "Mask", "block_sparse_mask": "Mask",
          **{a: "P" for a in (*calls.ARCHITECTURES, "unembedding")}}


# -- what is written ---------------------------------------------------------------------------
def algorithms() -> list[str]:
    """The catalogue's ids in order, then the architectures' backward extras."""
    return [a.id for a in load_catalogue()] + list(ARCH_BACKWARD)


def spec_version() -> dict[str, str]:
    """The project's version and a digest of every spec file (what the answers derive from)."""
    root = spec_root()
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".md", ".json")
                       and p.name != "vectors.schema.json"):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return {"version": __version__, "digest": "sha256:" + digest.hexdigest()}


def _strategy(alg: str) -> Any:
    def everything(algorithm, sizes):
        return sizes

    if alg in TRAINING:
        return training_cases(everything, np.float32, alg)
    if alg in ARCH_BACKWARD:
        return cases_for(alg.removesuffix("_backward"), everything, np.float32, min_len=2)
    # the suite starts the modern decoder at 2 tokens (RoPE and masks act from there); the
    # vectors keep the length-1 edge case of every algorithm
    return cases_for(alg, everything, np.float32,
                     **({"min_len": 1} if alg.startswith("modern_d_transformer") else {}))


def drawn_cases(alg: str, n: int = DRAWN) -> list[Any]:
    """The first ``n`` distinct cases hypothesis draws for ``alg`` with a seed fixed by its id."""
    found: list[Any] = []

    @given(_strategy(alg))
    @settings(max_examples=4 * n, database=None, phases=[Phase.generate], deadline=None,
              verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck),
              print_blob=False)
    @hypothesis_seed(int(hashlib.sha256(alg.encode()).hexdigest()[:8], 16))
    def collect(case):
        found.append(case)

    collect()
    distinct, seen = [], set()
    for case in found:
        key = repr(case)
        if key not in seen:
            seen.add(key)
            distinct.append(case)
    return distinct[:n]


def _edge_cases(alg: str, data: dict[str, Any], rng: np.random.Generator, last: bool
                ) -> list[tuple[str, dict[str, Any]]]:
    """Cases derived from a drawn one: a single allowed mask entry per query, no mask (where
    the drawn case had one), extreme logits."""
    out = []
    params = data.get("params", {})
    if "mask" in data and "X" in data and "Z" in data:
        l_z, l_x = data["Z"].shape[1], data["X"].shape[1]
        single = np.zeros((l_z, l_x), dtype=bool)
        single[rng.integers(0, l_z, l_x), np.arange(l_x)] = True
        out.append(("single_entry_mask", data | {"mask": single}))
        if data["mask"] is not None:  # the same case unmasked: None means all ones
            out.append(("no_mask", data | {"mask": None}))
    if "W_q" in params and "W_k" in params:
        big = {k: v * 16 if k in ("W_q", "b_q", "W_k", "b_k") else v for k, v in params.items()}
        out.append(("extreme_logits", data | {"params": big}))
    elif "W_u" in params:
        out.append(("extreme_logits", data | {"params": params | {"W_u": params["W_u"] * 32}}))
    if last and isinstance(data.get("activation"), str):  # every activation, not just drawn
        choices = GATED_ACTIVATIONS if alg.startswith("gated_mlp") else ACTIVATIONS
        out += [("activation", data | {"activation": a}) for a in choices
                if a != data["activation"]]
    return out


def _answer(alg: str, data: Mapping[str, Any], rng: np.random.Generator
            ) -> tuple[dict[str, np.ndarray], np.ndarray | None, dict[str, np.ndarray]]:
    """(outputs, upstream, gradients) of the float64 reference on ``data``."""
    reference = Bound(_reference_adapter())
    if alg in TRAINING:
        loss, new = getattr(reference, alg)(*_training_args(alg, data))
        return _training_outputs(loss, new), None, {}
    if alg.endswith("_backward"):
        upstream = calls.upstream_for(alg, data, rng, np.float32).astype(
            np.int64 if alg == "unembedding_backward" else np.float64)
        grads = calls.backward(reference, alg, data, upstream)
        return {}, upstream, grads
    return {ANSWER.get(alg, "Y"): calls.forward(reference, alg, data)}, None, {}


def _training_outputs(loss: float, new: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A training epoch's answers: the summed loss (shape (1,)) and the updated parameters."""
    return {"loss": np.array([loss], dtype=np.float64)} | {f"params.{k}": v
                                                          for k, v in new.items()}


def _training_args(alg: str, d: Mapping[str, Any]) -> tuple[Any, ...]:
    """The arguments of a training algorithm (Algorithms 11-13) from a case's data."""
    if alg == "d_training":
        return d["x"], d["params"], d["config"], d["eta"]
    if alg == "ed_training":
        return d["z"], d["x"], d["params"], d["config"], d["eta"]
    return d["x"], d["masked"], d["params"], d["config"], d["eta"], d["mask_token"]


def _reference_adapter() -> Any:
    from conformance.adapters.reference import ReferenceAdapter

    return ReferenceAdapter()


def _tolerances(alg: str, outputs: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]
                ) -> dict[str, Any]:
    if alg in MASKS:
        return {d: {"exact": True} for d in DTYPES}
    out = {}
    for d in DTYPES:
        if grads:
            tol = gradient_tolerance(d, grads)
        elif alg in TRAINING:
            tol = gradient_tolerance(d, outputs)
        else:
            tol = tolerance(d)
        out[d] = {"rtol": tol.rtol, "atol": tol.atol}
    return out


def _hyper(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return value.to_dict() if hasattr(value, "to_dict") else dataclasses.asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _case_record(alg: str, case_id: str, kind: str, sizes: Mapping[str, Any],
                 data: Mapping[str, Any], rng: np.random.Generator,
                 tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    data = up(dict(data))
    if alg in MASKS:
        data = {k: data[k] for k in ("l", "w", "b", "c") if k in data}
    if alg == "unembedding":
        data.pop("y", None)
    outputs, upstream, grads = _answer(alg, data, rng)

    def put(group: str, name: str, value: np.ndarray) -> str:
        key = f"{case_id}/{group}/{name}"
        tensors[key] = np.ascontiguousarray(value)
        return key

    record: dict[str, Any] = {
        "id": case_id, "kind": kind,
        "sizes": {k: _hyper(v) for k, v in sizes.items() if not isinstance(v, np.ndarray)},
        "inputs": {k: put("inputs", k, v) for k, v in data.items()
                   if isinstance(v, np.ndarray) and k != "mask"},
        "params": {k: put("params", k, v) for k, v in data.get("params", {}).items()},
        "hyperparameters": {k: _hyper(v) for k, v in data.items()
                            if k not in ("params", "mask", "config", "rope", *GENERATION)
                            and not isinstance(v, np.ndarray)},
        "outputs": {k: put("outputs", k, v) for k, v in outputs.items()},
        "tolerances": _tolerances(alg, outputs, grads),
    }
    for name in ("config", "rope"):
        if name in data:
            record["hyperparameters"][name] = _hyper(data[name])
    if "mask" in data:
        record["mask"] = None if data["mask"] is None else put("inputs", "mask", data["mask"])
    if upstream is not None:
        record["upstream"] = put("upstream", "dY" if alg != "unembedding_backward" else "y",
                                 upstream)
        record["gradients"] = {k: put("gradients", k, v) for k, v in grads.items()}
    return record


def build(alg: str) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The case records and tensors of one algorithm."""
    tensors: dict[str, np.ndarray] = {}
    records = []
    drawn = drawn_cases(alg)
    for i, case in enumerate(drawn):
        rng = np.random.default_rng([i, 1818])
        variants = [("drawn", case.data)] + _edge_cases(alg, case.data, rng, i == len(drawn) - 1)
        for j, (kind, data) in enumerate(variants):
            tag = f"-{kind}" + (f"-{data['activation']}" if kind == "activation" else "")
            case_id = f"{alg}-{i:02d}" + ("" if j == 0 else tag)
            records.append(_case_record(alg, case_id, kind, case.sizes, data, rng, tensors))
    return records, tensors


def _kind(alg: str) -> str:
    if alg in TRAINING:
        return "training"
    if alg in ARCH_BACKWARD:
        return "backward (extra: vector-Jacobian product of the architecture)"
    return "backward" if alg.endswith("_backward") else "forward"


def write(directory: str | Path, only: Iterable[str] | None = None,
          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the vectors of every algorithm (or of ``only``) into ``directory``; return the
    index. The files are written atomically; existing ones are replaced."""
    from safetensors.numpy import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    wanted = list(only) if only else algorithms()
    unknown = sorted(set(wanted) - set(algorithms()))
    if unknown:
        raise ParameterFileError(f"vectors --only: unknown algorithm id(s) {unknown}; known: "
                                 f"{', '.join(algorithms())}")
    catalogue = {a.id: a for a in load_catalogue()}
    version = spec_version()
    index: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                             "spec_version": version, "dtypes": list(DTYPES),
                             "layout": "adapter layout of conformance/adapter.py: (batch, "
                                       "length, features); parameters by the spec's names in "
                                       "the spec's orientation; Mask[t_z, t_x]",
                             "tolerance_rule": "|observed - expected| <= atol + rtol "
                                               "|expected| elementwise",
                             "algorithms": [], "not_written": []}
    for alg in wanted:
        if progress is not None:
            progress(alg)
        if alg in NOT_WRITTEN:
            index["not_written"].append({"algorithm": alg, "reason": NOT_WRITTEN[alg]})
            continue
        try:
            records, tensors = build(alg)
        except Exception as exc:  # a broken case builder is reported, never dropped silently
            index["not_written"].append({"algorithm": alg, "reason": f"error: the cases could "
                                         f"not be built: {type(exc).__name__}: {exc}"})
            continue
        # one metadata key: safetensors orders several at random (a Rust HashMap)
        blob = save(tensors, metadata={"format": f"{FORMAT} {FORMAT_VERSION}: {alg}, spec "
                                                 f"{version['version']}"})
        name = f"{alg}.safetensors"
        atomic_write(directory / name, lambda tmp, blob=blob: Path(tmp).write_bytes(blob))
        spec = catalogue.get(alg.removesuffix("_backward") if alg in ARCH_BACKWARD else alg)
        index["algorithms"].append({
            "algorithm": alg, "kind": _kind(alg), "number": spec.number,
            "title": spec.title, "spec_file": f"spec/algorithms/{spec.path.name}",
            "file": name, "sha256": hashlib.sha256(blob).hexdigest(), "cases": records})
    write_json(directory / "index.json", index)
    return index


# -- reading and checking ---------------------------------------------------------------------
def read_index(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / "index.json"
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ParameterFileError(f"{path}: cannot read the vectors index ({exc})") from None
    if index.get("format") != FORMAT:
        raise ParameterFileError(f"{path}: field 'format' is {index.get('format')!r}, expected "
                                 f"{FORMAT!r}")
    return index


def _cast(value: np.ndarray, dtype: Any) -> np.ndarray:
    return value.astype(dtype) if np.issubdtype(value.dtype, np.floating) else value


def case_data(record: Mapping[str, Any], tensors: Mapping[str, np.ndarray], dtype: Any
              ) -> dict[str, Any]:
    """The ``data`` dict of conformance.calls from a case record, floats cast to ``dtype``."""
    data: dict[str, Any] = {k: _cast(tensors[key], dtype) for k, key in record["inputs"].items()
                            if k != "mask"}
    data["params"] = {k: _cast(tensors[key], dtype) for k, key in record["params"].items()}
    if "mask" in record:
        data["mask"] = None if record["mask"] is None else tensors[record["mask"]]
    hyper = dict(record["hyperparameters"])
    if "config" in hyper:
        data["config"] = config_from_dict(hyper.pop("config"))
    if "rope" in hyper:
        rope = dict(hyper.pop("rope"))
        data["rope"] = Rope(**rope | {"scaling": RopeScaling(**rope["scaling"])})
    return data | hyper


def _observe(alg: str, bound: Bound, record: Mapping[str, Any], data: dict[str, Any],
             tensors: Mapping[str, np.ndarray], dtype: Any) -> dict[str, np.ndarray]:
    if alg in TRAINING:
        loss, new = getattr(bound, alg)(*_training_args(alg, data))
        return _training_outputs(loss, new)
    if "upstream" in record:
        upstream = _cast(tensors[record["upstream"]], dtype)
        return calls.backward(bound, alg, data, upstream)
    return {ANSWER.get(alg, "Y"): calls.forward(bound, alg, data)}


class _Errors:
    """The Observer of conformance.assertions: the largest error and its tolerance ratio."""

    def __init__(self) -> None:
        self.max_error: float | None = None
        self.max_ratio: float | None = None
        self.measure = ""

    def observe(self, error: float, ratio: float | None = None, measure: str | None = None
                ) -> None:
        error = float("inf") if np.isnan(error) else error
        self.max_error = error if self.max_error is None else max(self.max_error, error)
        if ratio is not None:
            ratio = float("inf") if np.isnan(ratio) else ratio
            self.max_ratio = ratio if self.max_ratio is None else max(self.max_ratio, ratio)
        if measure and not self.measure:
            self.measure = measure


def jobs(directory: str | Path, adapter: Any) -> list[tuple[dict[str, Any], str | None,
                                                          Callable[[], Result]]]:
    """(index entry, dtype, compute the Result) for every algorithm and dtype of the vectors."""
    from safetensors.numpy import load_file

    directory = Path(directory)
    index = read_index(directory)
    bound = Bound(adapter)
    out: list[tuple[dict[str, Any], str | None]] = []
    for entry in index["algorithms"]:
        dtypes = [d for d in DTYPES if d in bound.dtypes] if bound.declares(entry["algorithm"]) \
            else []
        out += [(entry, d) for d in dtypes] or [(entry, None)]
    out += [({"algorithm": e["algorithm"], "reason": e["reason"]}, None)
            for e in index["not_written"]]
    return [(entry, dtype, lambda e=entry, d=dtype: _check_entry(directory, e, bound, d,
                                                                 load_file))
            for entry, dtype in out]


def check(directory: str | Path, adapter: Any,
          progress: Callable[[Result, int, int], None] | None = None) -> list[Result]:
    """Run ``adapter`` over the vectors in ``directory``: one Result per algorithm and dtype."""
    todo = jobs(directory, adapter)
    results = []
    for i, (_, _, compute) in enumerate(todo):
        results.append(compute())
        if progress is not None:
            progress(results[-1], i + 1, len(todo))
    return results


def _check_entry(directory: Path, entry: Mapping[str, Any], bound: Bound, dtype: str | None,
                 load_file: Callable) -> Result:
    alg = entry["algorithm"]
    result = Result(alg, PROPERTY, dtype, "passed", statement=STATEMENT,
                    spec_line=entry.get("spec_file", ""))
    if "cases" not in entry:
        result.status, result.reason = "not covered", f"no vectors: {entry['reason']}"
        return result
    if dtype is None:
        result.status = "not covered"
        result.reason = (f"the adapter does not declare {alg}" if not bound.declares(alg) else
                         f"the adapter's dtypes {bound.dtypes} exclude {DTYPES}")
        return result
    path = directory / entry["file"]
    blob = path.read_bytes() if path.exists() else b""
    if hashlib.sha256(blob).hexdigest() != entry["sha256"]:
        result.status, result.reason = "error", f"{path}: missing or its sha256 differs"
        return result
    tensors = load_file(path)
    errors = _Errors()
    for record in entry["cases"]:
        data = case_data(record, tensors, dtype)
        try:
            observed = _observe(alg, bound, record, data, tensors, dtype)
            expected = {k: tensors[key] for k, key in
                        (record.get("gradients") or record["outputs"]).items()}
            if set(observed) != set(expected):
                raise AdapterError(f"{alg} returned {sorted(observed)}, the vectors hold "
                                   f"{sorted(expected)}")
            tol = record["tolerances"][dtype]
            for name, value in expected.items():
                what = f"case {record['id']}: {name}"
                if tol.get("exact"):
                    assert_exact(errors, what, observed[name], value)
                else:
                    assert_close(errors, what, observed[name], value,
                                 Tolerance(tol["rtol"], tol["atol"]), calls.AXES.get(alg))
            result.examples += 1
        except PropertyViolation as exc:
            result.status, result.reason = "failed", str(exc)
            result.expected, result.observed = exc.expected, exc.observed
            result.counterexample = f"case {record['id']} ({record['kind']})"
            break
        except AdapterError as exc:
            result.status, result.reason = "error", str(exc)
            result.counterexample = f"case {record['id']} ({record['kind']})"
            break
    result.max_error, result.max_ratio = errors.max_error, errors.max_ratio
    result.measure = errors.measure
    return result
