"""The benchmark and memory pages: real tables with units, plots, and where the run was made.

From ``reports/bench.json`` (``formal-transformers bench --json``) and ``reports/memory.json``
(``python benchmarks/memory_plot.py``). Times are shown in s / ms / µs, bytes in KiB / MiB /
GiB, parameter counts in K / M / B; every ratio is baseline time / torch_impl time (above 1:
torch_impl is faster) with its min-max spread from the repeats. Keys the page does not know
are still shown, under "Other fields", so nothing in a report is silently dropped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from sitegen import html as h
from sitegen.reports import (
    BENCH_JSON,
    cell,
    generic_report,
    humanize,
    not_produced,
    run_facts_table,
    status_html,
)
from sitegen.svg import Bar, Series, log_log, ratio_bars


def seconds(value: Any) -> str:
    """0.0123 -> '12.3 ms'."""
    if not isinstance(value, (int, float)):
        return cell(value)
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def binary_bytes(value: Any) -> str:
    """3 * 2**20 -> '3 MiB'."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return cell(value)
    for scale, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} B"


def count(value: Any) -> str:
    """124_439_808 -> '124 M'."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return cell(value)
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:g}"


def _timing(t: Any) -> str:
    if not isinstance(t, Mapping) or "median" not in t:
        return cell(t)
    return (f"{seconds(t['median'])}<br><small>{seconds(t.get('min'))} – "
            f"{seconds(t.get('max'))}</small>")


def ratio_range(r: Mapping[str, Any]) -> tuple[float, float] | None:
    """The ratio's spread over the repeats: (baseline min / ours max, baseline max / ours min)."""
    ours, theirs = r.get("ours"), r.get("theirs")
    try:
        return theirs["min"] / ours["max"], theirs["max"] / ours["min"]
    except (TypeError, KeyError, ZeroDivisionError):
        return None


def _details(d: Any) -> str:
    if not isinstance(d, Mapping) or not d:
        return "—"
    return "<br>".join(f"{html.escape(humanize(k))}: {cell(v)}" for k, v in d.items())


def bench_page(data: Any, problem: str | None, images: Sequence[str] = ()) -> str:
    """benchmarks.md."""
    parts = ["# Benchmarks",
             "Speed of `torch_impl` against baselines timed in the same run on the same "
             f"machine, from `{BENCH_JSON}`. Each ratio is baseline time / `torch_impl` time "
             "(above 1×: `torch_impl` is faster), the median of the repeats, with its min–max "
             "spread. Timings on a shared machine vary with its load (shown below)."]
    if problem:
        return "\n\n".join(parts + [f'!!! failure "Unreadable report"\n\n    {problem}']) + "\n"
    if data is None:
        return "\n\n".join(parts + [not_produced(
            "benchmark result", f"formal-transformers bench --json {BENCH_JSON}")]) + "\n"
    env = data.get("environment") if isinstance(data.get("environment"), Mapping) else {}
    quick = bool(data.get("quick"))
    extra = [("profile", "<strong>quick</strong>: shrunk shapes, a smoke test; no verdict on "
              "the targets" if quick else "<strong>full</strong>: the published shapes")]
    load = data.get("load_average_1_5_15min")
    if isinstance(load, Mapping):
        extra.append(("load average (1, 5, 15 min)", "before " + ", ".join(
            f"{v:.2f}" for v in load.get("before", [])) + "; after " + ", ".join(
            f"{v:.2f}" for v in load.get("after", []))))
    facts = dict(data) | (dict(data["run"]) if isinstance(data.get("run"), Mapping) else {})
    if "machine" not in facts and env:
        facts["machine"] = {k: v for k, v in env.items() if k in (
            "processor", "cpu_count", "threads")}
    if env:
        facts["versions"] = {k: v for k, v in env.items() if k in (
            "python", "torch", "transformers")}
    parts += ["## The run", run_facts_table(facts, extra)]
    results = [r for r in data.get("results") or [] if isinstance(r, Mapping)]
    if results:
        rows, bars = [], []
        for r in results:
            spread = ratio_range(r)
            ratio = r.get("ratio")
            ratio_txt = f"{ratio:.3g}×" if isinstance(ratio, (int, float)) else cell(ratio)
            if spread:
                ratio_txt += f"<br><small>{spread[0]:.3g}× – {spread[1]:.3g}×</small>"
                bars.append(Bar(str(r.get("name")), float(ratio), spread[0], spread[1],
                                r.get("target")))
            target = r.get("target")
            verdict = ("—" if target is None or quick else
                       status_html("met" if r.get("met_target") else "not met"))
            what = html.escape(str(r.get("what", "")))
            details = _details(r.get("details"))
            rows.append([f"<code>{html.escape(str(r.get('name')))}</code><br><small>{what}"
                         + (f"<br>{details}" if details != "—" else "") + "</small>",
                         _timing(r.get("ours")),
                         f"{html.escape(str(r.get('baseline', '')))}<br>"
                         f"{_timing(r.get('theirs'))}", ratio_txt,
                         (f"{target:g}×" if isinstance(target, (int, float)) else "—")
                         + f"<br>{verdict}"])
        parts += ["## Results", h.table(
            ["benchmark", "torch_impl", "baseline", "ratio", "target"], rows,
            "ft-bench ft-stack")]
        if bars:
            parts += [ratio_bars(bars, "Speed-up of torch_impl over its baseline (median, "
                                       "min–max whisker; ▼ target)")]
        parts += _floor_sections(results, quick)
    gpu = data.get("gpu")
    if isinstance(gpu, Mapping) and gpu:
        parts += ["## GPU", generic_report({humanize(k): v for k, v in gpu.items()})]
    known = {"environment", "quick", "load_average_1_5_15min", "results", "gpu", "date",
             "commit", "machine", "versions", "run"}
    rest = {k: v for k, v in data.items() if k not in known}
    if rest:
        parts += ["## Other fields", generic_report(rest)]
    parts += [f"![{img.rsplit('/', 1)[-1]}]({img})" for img in images]
    return "\n\n".join(parts) + "\n"


_DECODERS = ("ours", "eager", "baseline")


def _floor_sections(results: Sequence[Mapping[str, Any]], quick: bool) -> list[str]:
    """Each decoder's step as a fraction of the weight-reading floor timed in the same run."""
    parts = []
    for r in results:
        d = r.get("details")
        if not isinstance(d, Mapping) or "floor_target" not in d:
            continue
        target, rows = d["floor_target"], []
        for who in _DECODERS:
            fraction = d.get(f"fraction_of_floor_{who}")
            if not isinstance(fraction, (int, float)):
                continue
            name = {"baseline": r.get("baseline", "baseline")}.get(who, d.get(who, who))
            verdict = ("—" if who == "baseline" or quick else
                       status_html("met" if fraction >= target else "not met"))
            rows.append([html.escape(str(name)), cell(d.get(f"step_ms_{who}")),
                         f"{fraction:.3f}", cell(d.get(f"fraction_of_floor_per_call_{who}")),
                         verdict])
        if rows:
            parts += [f"## Decode against the weight-reading floor (`{r.get('name')}`)",
                      f"One batch-1 decode step of each decoder against one pass of the "
                      f"float32 matrix-vector floor (every weight read once, "
                      f"{cell(d.get('floor_ms_per_step'))} ms here), timed interleaved in the "
                      f"same run; the whole call includes the prompt's prefill. Target: "
                      f"{target:g} of the floor.",
                      h.table(["decoder", "step ms", "fraction of the floor (step)",
                               "fraction (whole call)", f"≥ {target:g}"], rows, "ft-bench")]
    return parts


def _error(pred: Any, meas: Any) -> str:
    if isinstance(pred, (int, float)) and isinstance(meas, (int, float)) and meas:
        return f"{100 * (pred - meas) / meas:+.1f} %"
    return "—"


def _sweep(rows: Sequence[Mapping[str, Any]], pred: str, meas: str, title: str) -> list[str]:
    table = h.table(["path", "length ℓ", "predicted", "measured", "prediction error"],
                    ([html.escape(str(r.get("path"))), cell(r.get("l")),
                      binary_bytes(r.get(pred)), binary_bytes(r.get(meas)),
                      _error(r.get(pred), r.get(meas))] for r in rows), "ft-stack")
    series = []
    for n, path in enumerate(sorted({str(r.get("path")) for r in rows})):
        mine = [r for r in rows if str(r.get("path")) == path]
        xs = [r.get("l") for r in mine]
        for key, style, label in ((pred, "line", "predicted"), (meas, "points", "measured")):
            ys = [r.get(key) for r in mine]
            if all(isinstance(v, (int, float)) for v in xs + ys):
                series.append(Series(f"{path}: {label}", xs, [y / 2**20 for y in ys], style, n))
    plot = log_log(series, title, "sequence length ℓ", "MiB",
                   y_format=lambda v: f"{v:.3g}") if series else ""
    return [table] + ([plot] if plot else [])


ESTIMATES = (("ours", "ours (spec/memory.md)"), ("static", "weights + gradients + optimizer"),
             ("korthikanti", "Korthikanti et al. 2022"))


def _three_estimates(rows: Sequence[Mapping[str, Any]]) -> str:
    """Each measured peak with the three estimates of spec/memory.md section 12 and their
    errors (estimate - measured) / measured; the closest in bold."""
    def estimate(r: Mapping[str, Any], key: str) -> str:
        e = (r.get("estimates") or {}).get(key) or {}
        err = e.get("relative_error_vs_measured")
        text = f"{binary_bytes(e.get('predicted_bytes'))} ({_signed_percent(err)})"
        errors = [abs(x.get("relative_error_vs_measured")) for x in (r.get("estimates") or {})
                  .values() if isinstance(x.get("relative_error_vs_measured"), (int, float))]
        closest = isinstance(err, (int, float)) and errors and abs(err) == min(errors)
        return f"<strong>{text}</strong>" if closest else text

    return h.table(["model", "run", "measured", *[title for _, title in ESTIMATES]],
                   ([f"<code>{html.escape(str(r.get('model')))}</code>",
                     html.escape(str(r.get("run"))), binary_bytes(r.get("measured_bytes")),
                     *[estimate(r, key) for key, _ in ESTIMATES]] for r in rows), "ft-stack")


def _signed_percent(value: Any) -> str:
    return f"{100 * value:+.1f} %" if isinstance(value, (int, float)) else "—"


def memory_data(data: Any, problem: str | None, command: str) -> str:
    """The data section of memory.md (after spec/memory.md's prose)."""
    parts = ["## Measured and predicted"]
    if problem:
        return "\n\n".join(parts + [f'!!! failure "Unreadable report"\n\n    {problem}'])
    if data is None:
        return "\n\n".join(parts + [not_produced("memory measurement", command)])
    versions = {k: data[k] for k in ("python", "torch", "numpy") if k in data}
    facts = dict(data, versions=versions) if versions else dict(data)
    if isinstance(data.get("machine"), str):
        facts["machine"] = {"architecture": data["machine"]}
    extra = [("produced by", f"<code>{html.escape(str(data.get('generated_by', command)))}"
              "</code>")]
    parts += ["### The run", run_facts_table(facts, extra)]
    laws = [r for r in data.get("laws") or [] if isinstance(r, Mapping)]
    if laws:
        parts += ["### Memory laws", h.table(
            ["property", "result", "largest error"],
            ([f'<a href="../properties/#{html.escape(str(r.get("property")))}"><code>'
              f'{html.escape(str(r.get("property")))}</code></a>',
              status_html("passed" if r.get("passed") else "failed"), cell(r.get("max_error"))]
             for r in laws), "ft-stack")]
    presets = [r for r in data.get("presets") or [] if isinstance(r, Mapping)]
    if presets:
        parts += ["### Presets (batch 1, bfloat16, AdamW, at the context size)", h.table(
            ["preset", "parameters (tied)", "context ℓ", "peak, naive attention",
             "peak, sdpa", "KV cache"],
            ([f"<code>{html.escape(str(r.get('preset')))}</code><br>"
              f"<small>{html.escape(str(r.get('arch', '')))}</small>",
              f"{count(r.get('parameters'))} ({count(r.get('tied_parameters'))})",
              cell(r.get("seq")),
              binary_bytes(r.get("peak_naive_bf16_bytes")),
              binary_bytes(r.get("peak_sdpa_bf16_bytes")),
              binary_bytes(r.get("kv_cache_bf16_bytes")) if "kv_cache_bf16_bytes" in r
              else "—"] for r in presets), "ft-stack")]
    attn = [r for r in data.get("attention_vs_length") or [] if isinstance(r, Mapping)]
    if attn:
        parts += ["### One attention layer: activations kept, against length"] + _sweep(
            attn, "predicted_bytes", "measured_bytes",
            "One attention layer: kept activations, predicted (lines) vs measured (circles)")
    step = [r for r in data.get("training_step_vs_length") or [] if isinstance(r, Mapping)]
    if step:
        parts += ["### A training step: peak memory, against length"] + _sweep(
            step, "predicted_peak_bytes", "measured_peak_bytes",
            "Training step peak, predicted (lines) vs measured (circles)")
    estimates = [r for r in data.get("three_estimates") or [] if isinstance(r, Mapping)]
    if estimates:
        parts += ["### Three estimates beside the measured peak", _three_estimates(estimates)]
    cases = [r for r in data.get("law_cases") or [] if isinstance(r, Mapping)]
    if cases:
        items = "\n".join(f"<li><code>{html.escape(str(r.get('property')))}</code>: "
                          f"{html.escape(str(r.get('case')))}</li>" for r in cases)
        parts.append(f"<details><summary>The laws' {len(cases)} measured cases</summary>\n"
                     f"<ul>\n{items}\n</ul>\n</details>")
    known = {"generated_by", "torch", "numpy", "python", "machine", "laws", "law_cases",
             "presets", "attention_vs_length", "training_step_vs_length", "three_estimates",
             "date", "commit", "versions"}
    rest = {k: v for k, v in data.items() if k not in known}
    if rest:
        parts += ["### Other fields", generic_report(rest)]
    return "\n\n".join(parts)
