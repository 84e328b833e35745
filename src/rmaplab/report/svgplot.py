"""Small inline SVG charts for the HTML report (no plotting library needed).

>>> svg = line_chart("t", [("a", [(0, 0), (1, 2)])], "x", "y")
>>> svg.startswith("<svg") and "polyline" in svg
True
"""

from __future__ import annotations

from html import escape

#: one colour per series, distinguishable in print
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round, integer tick values (1, 2 or 5 times a power of ten
    apart) from ``lo`` to ``hi``: the charts count objects and lines.

    >>> _ticks(0, 3)
    [0, 1, 2, 3]
    >>> _ticks(10, 24)
    [10, 15, 20]
    >>> _ticks(0, 12345)
    [0, 5000, 10000]
    """
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    step = 1
    while step * 10 <= raw:
        step *= 10
    for k in (1, 2, 5, 10):
        if step * k >= raw:
            step *= k
            break
    first = -(-int(lo) // step) * step
    return list(range(first, int(hi) + 1, step))


PAD_L, PAD_R, PAD_T, PAD_B = 70, 150, 30, 40


def _frame(title: str, xlabel: str, ylabel: str, y1: float, width: int, height: int,
           xticks: list[tuple[float, str]]) -> list[str]:
    """Title, axes, y ticks (0..y1) with grid lines, the given x tick labels
    (pixel x, text), axis labels: the SVG elements both charts share."""
    pw, ph = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'role="img" aria-label="{escape(title)}" class="chart">',
           f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">{escape(title)}'
           '</text>',
           f'<line x1="{PAD_L}" y1="{PAD_T + ph}" x2="{PAD_L + pw}" y2="{PAD_T + ph}" '
           'stroke="black"/>',
           f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{PAD_T + ph}" stroke="black"/>']
    for t in _ticks(0.0, y1):
        y = PAD_T + ph - t / y1 * ph
        out.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" '
                   f'font-size="10">{t:,.0f}</text>')
        out.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{PAD_L + pw}" y2="{y:.1f}" '
                   'stroke="#eee"/>')
    for x, label in xticks:
        out.append(f'<text x="{x:.1f}" y="{PAD_T + ph + 14}" text-anchor="middle" '
                   f'font-size="10">{escape(label)}</text>')
    out.append(f'<text x="{PAD_L + pw / 2}" y="{height - 6}" text-anchor="middle" '
               f'font-size="11">{escape(xlabel)}</text>')
    out.append(f'<text x="14" y="{PAD_T + ph / 2}" text-anchor="middle" font-size="11" '
               f'transform="rotate(-90 14 {PAD_T + ph / 2})">{escape(ylabel)}</text>')
    return out


def _legend(out: list[str], names: list[str], width: int, *, bars: bool,
            colours: list[str] | None = None) -> None:
    x = width - PAD_R + 10
    for k, name in enumerate(names):
        col = colours[k] if colours else COLOURS[k % len(COLOURS)]
        ly = PAD_T + 14 + 16 * k
        if bars:
            out.append(f'<rect x="{x}" y="{ly - 6}" width="20" height="10" fill="{col}"/>')
        else:
            out.append(f'<line x1="{x}" y1="{ly}" x2="{x + 20}" y2="{ly}" stroke="{col}" '
                       'stroke-width="3"/>')
        out.append(f'<text x="{x + 24}" y="{ly + 4}" font-size="11">{escape(name)}</text>')


def line_chart(title: str, series: list[tuple[str, list[tuple[float, float]]]], xlabel: str,
               ylabel: str, width: int = 640, height: int = 300,
               colours: dict[str, str] | None = None) -> str:
    """Step lines of (x, y) points (y holds from one x to the next: object
    counts change at scenario lines), one per named series, with axes and a
    legend; ``colours`` fixes a series' colour across charts."""
    xs = [x for _, pts in series for x, _ in pts] or [0.0]
    ys = [y for _, pts in series for _, y in pts] or [0.0]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y1 = float(max(max(ys), 1.0))
    pw, ph = width - PAD_L - PAD_R, height - PAD_T - PAD_B

    def px(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return PAD_T + ph - y / y1 * ph

    out = _frame(title, xlabel, ylabel, y1, width, height,
                 [(px(t), f"{t:,.0f}") for t in _ticks(x0, x1)])
    cols = [(colours or {}).get(name, COLOURS[k % len(COLOURS)])
            for k, (name, _) in enumerate(series)]
    for col, (_name, pts) in zip(cols, series):
        steps = [p for (x, y), (nx, _) in zip(pts, [*pts[1:], pts[-1]]) for p in ((x, y), (nx, y))]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in steps)
        out.append(f'<polyline fill="none" stroke="{col}" stroke-width="2" points="{path}"/>')
    _legend(out, [n for n, _ in series], width, bars=False, colours=cols)
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(title: str, groups: list[tuple[str, list[tuple[str, float]]]], ylabel: str,
              width: int = 640, height: int = 300) -> str:
    """Grouped bars: per group (a bucket, labelled under the x axis), one bar
    per series (the same series, in the same order, in every group)."""
    series = [n for n, _ in groups[0][1]] if groups else []
    top = max([v for _, g in groups for _, v in g] + [1.0])
    pw, ph = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    gw = pw / max(1, len(groups))
    bw = gw / (len(series) + 1)
    out = _frame(title, "", ylabel, top, width, height,
                 [(PAD_L + (gi + 0.5) * gw, label) for gi, (label, _) in enumerate(groups)])
    for gi, (_label, bars) in enumerate(groups):
        gx = PAD_L + gi * gw
        for si, (_name, v) in enumerate(bars):
            h = v / top * ph
            out.append(f'<rect x="{gx + (si + 0.5) * bw:.1f}" y="{PAD_T + ph - h:.1f}" '
                       f'width="{bw * 0.9:.1f}" height="{h:.1f}" '
                       f'fill="{COLOURS[si % len(COLOURS)]}"/>')
    _legend(out, series, width, bars=True)
    out.append("</svg>")
    return "\n".join(out)
