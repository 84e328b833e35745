"""``rmaplab report FILE... --out DIR``: one self-contained HTML page per scenario.

A page compares the designs on one scenario: the memory table of its last
``measure`` line (or its end) in the cover letter's layout, the live
objects of each kind over the scenario's lines for each design (sampled at
most :data:`SAMPLES` times), the distribution of walk costs (VMAs examined
per rmap walk of every mapped anonymous folio, at the end), and pictures of
the structures (``rmaplab draw``) after chosen lines.  Everything is inline
(SVG charts, no script, no external file), so the page can be mailed.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from rmaplab.designs import make_design
from rmaplab.fuzz.atomic import write_atomic
from rmaplab.machine.machine import Machine
from rmaplab.progress import Progress
from rmaplab.report import memory_table, walk_vmas
from rmaplab.report.draw import picture, render_svg, run_to, to_dot
from rmaplab.report.svgplot import COLOURS, bar_chart, line_chart
from rmaplab.scenario.ast import Scenario
from rmaplab.scenario.run import apply_op

#: samples of the live-object curves per design
SAMPLES = 300
#: buckets of the walk-cost histogram: VMAs examined per walk
BUCKETS = ((0, 0), (1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, 64), (65, 1 << 30))

_CSS = """
body { font-family: sans-serif; margin: 2em; max-width: 1100px; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #bbb; padding: 2px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
h2 { border-bottom: 1px solid #ccc; }
.picture svg { max-width: 100%; height: auto; }
"""


Curves = dict[str, list[tuple[float, float]]]


def _run(sc: Scenario, design: str) -> tuple[Curves, dict[str, tuple[int, int]], list[int], int]:
    """Live objects per kind over the lines; then, at the peak (the first line
    after which the design's rmap memory is largest, before any teardown
    empties it), the memory per kind and the VMAs a walk of each mapped folio
    examines; and the peak's line.  Two passes: O(ops) each."""
    m = Machine(make_design(design))
    every = max(1, len(sc.ops) // SAMPLES)
    curves: Curves = {}
    peak, peak_i = -1, -1
    for i, op in enumerate(sc.ops):
        apply_op(m, op)
        mem = m.design.memory()
        total = sum(b for _n, b in mem.values())
        if total > peak:
            peak, peak_i = total, i
        if i % every == 0 or i == len(sc.ops) - 1:
            for kind, (n, _b) in mem.items():
                curves.setdefault(kind, []).append((op.line, n))
    m = Machine(make_design(design))
    for op in sc.ops[:peak_i + 1]:
        apply_op(m, op)
    return curves, m.design.memory(), walk_vmas(m), sc.ops[peak_i].line if peak_i >= 0 else 0


def report_page(sc: Scenario, designs: list[str], at: list[int],
                progress: Progress | None = None) -> str:
    """The HTML page for one scenario."""
    runs = {}
    for d in designs:
        if progress is not None:
            progress.step(note=f"{d} {sc.path}")
        runs[d] = _run(sc, d)
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>rmaplab report: "
           f"{escape(sc.path)}</title><style>{_CSS}</style></head><body>",
           f"<h1>rmaplab report: {escape(Path(sc.path).name)}</h1>",
           f"<p>{len(sc.ops):,} operations; designs: {escape(', '.join(designs))}.  "
           "Produced by <code>rmaplab report</code>; every number is the model's.</p>",
           "<h2>Memory at the peak</h2>",
           "<p>Each design's objects after the line where its rmap memory is largest ("
           + escape(", ".join(f"{d}: line {r[3]}" for d, r in runs.items())) + ").</p>"]
    out.append(_md_table(memory_table({d: r[1] for d, r in runs.items()})))
    out.append("<h2>Live objects over the scenario</h2>")
    kinds = sorted({k for r in runs.values() for k in r[0]})
    colours = {d: COLOURS[i % len(COLOURS)] for i, d in enumerate(designs)}
    for kind in kinds:
        series = [(d, runs[d][0][kind]) for d in designs if kind in runs[d][0]
                  and any(n for _, n in runs[d][0][kind])]
        if series:
            out.append(line_chart(f"live {kind}", series, "scenario line", "objects",
                                  colours=colours))
    out.append("<h2>Cost of an rmap walk at the peak</h2>")
    groups = []
    for lo, hi in BUCKETS:
        label = f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi < 1 << 30 else f">{lo - 1}")
        groups.append((label, [(d, float(sum(lo <= w <= hi for w in runs[d][2])))
                               for d in designs]))
    out.append(bar_chart("folios by VMAs examined per walk", groups, "folios"))
    out.append("<table><tr><th>design</th><th>folios walked</th><th>mean VMAs examined</th>"
               "<th>worst</th></tr>")
    for d in designs:
        w = runs[d][2]
        out.append(f"<tr><td>{escape(d)}</td><td>{len(w):,}</td>"
                   f"<td>{(sum(w) / len(w) if w else 0):.2f}</td><td>{max(w, default=0)}</td>"
                   "</tr>")
    out.append("</table>")
    for line in at:
        for d in designs:
            m, where = run_to(sc, d, line)
            svg = render_svg(to_dot(picture(m, f"after {where}, design {d}")))
            out.append(f"<h2>{escape(d)} after {escape(where)}</h2>")
            out.append(f"<div class='picture'>{svg[svg.index('<svg'):]}</div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _md_table(lines: list[str]) -> str:
    """A Markdown table (``memory_table``'s) as HTML."""
    rows = [ln.strip("|").split("|") for ln in lines if not set(ln) <= set("|-: ")]
    head, *body = rows
    out = ["<table><tr>" + "".join(f"<th>{escape(c.strip())}</th>" for c in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{escape(c.strip())}</td>" for c in r) + "</tr>" for r in body]
    return "\n".join(out) + "</table>"


def write_reports(scs: list[Scenario], designs: list[str], out: Path, at: list[int],
                  progress: Progress | None = None) -> list[Path]:
    """One page per scenario in ``out`` (written atomically); their paths."""
    paths = []
    if progress is not None:
        progress.total, progress.unit = len(scs) * len(designs), "runs"
    for sc in scs:
        page = out / (Path(sc.path).stem + ".html")
        write_atomic(page, report_page(sc, designs, at, progress))
        paths.append(page)
    return paths
