"""Small inline SVG plots for the report pages (no plotting library, no JavaScript).

- :func:`ratio_bars`: one horizontal bar per benchmark (the median ratio) with a min-max
  whisker, a line at parity (1x) and each benchmark's target;
- :func:`log_log`: predicted (lines) against measured (markers) series on log-log axes.

Both scale to the width of the content column (``viewBox`` + ``width: 100%`` in site.css).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

COLOURS = ("#3949ab", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f")


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 12,
          cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{c}>'
            f"{html.escape(text)}</text>")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    low: float
    high: float
    target: float | None = None


def ratio_bars(bars: Sequence[Bar], title: str, unit: str = "×") -> str:
    """Horizontal bars of ratios on a log axis, whiskers low-high, parity and targets marked."""
    left, right, row, top = 170, 40, 34, 34
    width = 720
    plot_w = width - left - right
    values = [v for b in bars for v in (b.low, b.high, b.value, b.target or b.value) if v > 0]
    lo = min(values + [1.0]) / 1.25
    hi = max(values + [1.0]) * 1.25

    def x(v: float) -> float:
        return left + plot_w * (math.log(max(v, lo)) - math.log(lo)) / (math.log(hi) -
                                                                           math.log(lo))

    height = top + row * len(bars) + 34
    out = [f'<svg class="ft-plot" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg">',
           f"<title>{html.escape(title)}</title>", _text(left, 18, title, size=13, cls="ft-t")]
    for tick in _log_ticks(lo, hi):
        out.append(f'<line x1="{x(tick):.1f}" y1="{top - 6}" x2="{x(tick):.1f}" '
                   f'y2="{height - 28}" class="ft-grid"/>')
        out.append(_text(x(tick), height - 12, f"{tick:g}{unit}", "middle", 11))
    out.append(f'<line x1="{x(1):.1f}" y1="{top - 8}" x2="{x(1):.1f}" y2="{height - 28}" '
               'class="ft-parity"/>')
    for i, b in enumerate(bars):
        y = top + i * row
        out.append(_text(left - 8, y + 17, b.label, "end", 12))
        out.append(f'<rect x="{min(x(1), x(b.value)):.1f}" y="{y + 6}" '
                   f'width="{abs(x(b.value) - x(1)):.1f}" height="{row - 14}" '
                   f'fill="{COLOURS[0]}" opacity="0.75"><title>{html.escape(b.label)}: '
                   f"{b.value:.3g}{unit} (min {b.low:.3g}, max {b.high:.3g})</title></rect>")
        out.append(f'<line x1="{x(b.low):.1f}" y1="{y + row / 2 - 1}" x2="{x(b.high):.1f}" '
                   f'y2="{y + row / 2 - 1}" class="ft-whisker"/>')
        for v in (b.low, b.high):
            out.append(f'<line x1="{x(v):.1f}" y1="{y + 9}" x2="{x(v):.1f}" y2="{y + row - 11}" '
                       'class="ft-whisker"/>')
        if b.target is not None:
            out.append(f'<path d="M{x(b.target):.1f},{y + 4} l-5,-6 h10 z" class="ft-target">'
                       f"<title>target {b.target:g}{unit}</title></path>")
    out.append("</svg>")
    return "".join(out)


def _log_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            t = m * 10.0 ** e
            if lo <= t <= hi:
                ticks.append(t)
    return ticks


@dataclass(frozen=True)
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    style: str  # "line" (predicted) or "points" (measured)
    colour: int = 0


def log_log(series: Sequence[Series], title: str, x_label: str, y_label: str,
            y_format=lambda v: f"{v:g}") -> str:
    """Series on log-log axes: lines for predictions, markers for measurements, a legend."""
    width, height, left, right, top, bottom = 720, 360, 78, 20, 34, 58
    pts = [(x, y) for s in series for x, y in zip(s.xs, s.ys, strict=True) if x > 0 and y > 0]
    if not pts:
        return ""
    x_lo, x_hi = min(p[0] for p in pts) / 1.1, max(p[0] for p in pts) * 1.1
    y_lo, y_hi = min(p[1] for p in pts) / 1.3, max(p[1] for p in pts) * 1.3
    pw, ph = width - left - right, height - top - bottom

    def sx(v: float) -> float:
        return left + pw * (math.log(v) - math.log(x_lo)) / (math.log(x_hi) - math.log(x_lo))

    def sy(v: float) -> float:
        return top + ph * (1 - (math.log(v) - math.log(y_lo)) / (math.log(y_hi) -
                                                                   math.log(y_lo)))

    out = [f'<svg class="ft-plot" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg">',
           f"<title>{html.escape(title)}</title>", _text(left, 18, title, size=13, cls="ft-t"),
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="ft-frame"/>']
    for t in sorted({x for x, _ in pts}):
        out.append(f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{top + ph}" '
                   'class="ft-grid"/>')
        out.append(_text(sx(t), top + ph + 16, f"{t:g}", "middle", 11))
    for t in _log_ticks(y_lo, y_hi)[::2] or [y_lo]:
        out.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{left + pw}" y2="{sy(t):.1f}" '
                   'class="ft-grid"/>')
        out.append(_text(left - 6, sy(t) + 4, y_format(t), "end", 11))
    out.append(_text(left + pw / 2, height - 22, x_label, "middle", 12))
    out.append(_text(14, top + ph / 2, y_label, "middle", 12).replace(
        "<text ", f'<text transform="rotate(-90 14 {top + ph / 2:.1f})" ', 1))
    for n, s in enumerate(series):
        colour = COLOURS[s.colour % len(COLOURS)]
        xy = [(sx(x), sy(y)) for x, y in zip(s.xs, s.ys, strict=True) if x > 0 and y > 0]
        if s.style == "line":
            d = " ".join(f"{'M' if i == 0 else 'L'}{a:.1f},{b:.1f}" for i, (a, b) in enumerate(xy))
            out.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"/>')
        else:
            out += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="4" fill="none" stroke="{colour}" '
                    f'stroke-width="2"/>' for a, b in xy]
        ly = height - 6 - 0 * n
        lx = left + 10 + n * (pw - 10) / max(1, len(series))
        mark = (f'<line x1="{lx:.1f}" y1="{ly - 4}" x2="{lx + 16:.1f}" y2="{ly - 4}" '
                f'stroke="{colour}" stroke-width="2"/>' if s.style == "line" else
                f'<circle cx="{lx + 8:.1f}" cy="{ly - 4}" r="4" fill="none" stroke="{colour}" '
                'stroke-width="2"/>')
        out.append(mark + _text(lx + 20, ly, s.label, size=11))
    out.append("</svg>")
    return "".join(out)
