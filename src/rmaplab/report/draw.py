"""``rmaplab draw``: pictures of a design's structures after a scenario line.

A picture shows every process (its mm) with its VMAs in address order, the
design's own objects and their links (the design's ``structure()``: for
classic the anon_vmas with root, parent and counters, an edge per
anon_vma_chain; for ANON_VMA_LAZY the lineage roots, references and retained
roots; for the CoW context the contexts and their remap entries), and, for
one folio (``--folio``), its mapping, every (mm, page) it is mapped at, the
VMAs its walk visits and the mappings the walk misses (in red).

Formats: ``dot`` (Graphviz source), ``svg`` (rendered by Graphviz's ``dot``,
Debian package ``graphviz``), ``txt`` (for terminals).

>>> from rmaplab.scenario.parse import parse_text
>>> sc = parse_text("P0 mmap @0 4\\nP0 write 0..0\\nP0 fork P1\\n")
>>> print(draw(sc, "classic", fmt="txt").splitlines()[0])
after line 3 (P0 fork P1), design classic
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

from rmaplab.designs import make_design
from rmaplab.errors import KernelUnavailable, UsageError
from rmaplab.machine.constants import ARENA_VPN, page_name
from rmaplab.machine.design import StructEdge, StructNode
from rmaplab.machine.flags import VM_EXEC, VM_READ, VM_SHARED, VM_WRITE
from rmaplab.machine.folio import Folio
from rmaplab.machine.machine import Machine
from rmaplab.machine.vma import Vma
from rmaplab.scenario.ast import Scenario
from rmaplab.scenario.run import apply_op


@dataclass
class Picture:
    """What is drawn: per mm its VMAs, the design's objects, one folio's walk."""

    title: str
    mms: list[tuple[str, list[StructNode]]] = field(default_factory=list)
    nodes: list[StructNode] = field(default_factory=list)
    edges: list[StructEdge] = field(default_factory=list)
    folio_lines: list[str] = field(default_factory=list)


def _perms(flags: int) -> str:
    return (("r" if flags & VM_READ else "-") + ("w" if flags & VM_WRITE else "-")
            + ("x" if flags & VM_EXEC else "-") + ("s" if flags & VM_SHARED else "p"))


def _span(vpn: int) -> str:
    p = vpn - ARENA_VPN
    return str(p) if 0 <= p < 1 << 20 else f"{vpn << 12:#x}"


def run_to(sc: Scenario, design: str, at: int | None) -> tuple[Machine, str]:
    """The machine after the scenario's last line ``<= at`` (all if None)."""
    if at is not None and sc.ops and at > sc.ops[-1].line:
        raise UsageError(f"--at {at}: {sc.path} ends at line {sc.ops[-1].line}; "
                         "give a line of the scenario (or leave --at out for its end)")
    m = Machine(make_design(design))
    last = "the start"
    for op in sc.ops:
        if at is not None and op.line > at:
            break
        apply_op(m, op)
        last = f"line {op.line} ({op.text})"
    if at is not None and not any(op.line <= at for op in sc.ops):
        raise UsageError(f"--at {at}: {sc.path} has no operation up to that line")
    return m, last


def picture(m: Machine, title: str, folio: int | None = None) -> Picture:
    """The picture of machine ``m``'s state (see the module docstring)."""
    pic = Picture(title)
    for mm in sorted(m.mms.values(), key=lambda x: x.id):
        vmas = [StructNode(f"vma{v.id}", f"VMA {v.id} [{_span(v.start)}..{_span(v.end - 1)}] "
                           f"{_perms(v.flags)} pgoff {v.pgoff:#x}"
                           + (f" {v.file.name}" if v.file else "")
                           + ("" if v.anon_vma is not None else " (unfaulted)"), "vma")
                for v in mm.vmas]
        users = [t.name for t in m.tasks.values() if t.mm is mm]
        pic.mms.append((f"mm{mm.id}", [StructNode(f"mm{mm.id}", f"mm of {', '.join(users)}",
                                                  "mm"), *vmas]))
    nodes, edges = m.design.structure()
    pic.nodes += nodes
    if folio is not None:
        pic.edges += [e for e in edges if not e.src.startswith("folio") or e.src == f"folio{folio}"]
        f = m.anon_folios.get(folio)
        if f is None:
            raise UsageError(f"--folio {folio}: no such anonymous folio at this point "
                             f"(live: {', '.join(map(str, sorted(m.anon_folios)[:20]))})")
        _walk(m, f, pic)
    else:
        pic.edges += [e for e in edges if not e.src.startswith("folio")]
    return pic


def _walk(m: Machine, f: Folio, pic: Picture) -> None:
    """The folio, where it is mapped, what its walk visits and misses."""
    pic.nodes.append(StructNode(f"folio{f.id}", f"folio {f.id}\n{f.nr} page(s), index "
                                f"{f.index:#x}\nmapping {m.design.anchor_name(f.mapping)}",
                                "folio"))
    seen: dict[tuple[int, int], list[Vma]] = {}
    for vma, base in m.rmap_candidates(f):
        seen.setdefault((vma.mm.id, base), []).append(vma)
        pic.edges.append(StructEdge(f"folio{f.id}", f"vma{vma.id}", "walk visits", "bold"))
    names = {mm.id: mm.name for mm in m.mms.values()}
    # (mm, first vpn, last vpn, found?) runs of consecutive pages
    runs: list[list] = []  # type: ignore[type-arg]
    missed_vmas: set[int] = set()
    for mm, vpn, g, i, n in sorted(m.anon_runs(), key=lambda r: (r[0].id, r[1])):
        if g is not f:
            continue
        ok = any(v.start <= vpn and vpn + n <= v.end for v in seen.get((mm.id, vpn - i), ()))
        if not ok:
            v = mm.vmas.find(vpn)
            if v is not None:
                missed_vmas.add(v.id)
        last = runs[-1] if runs else None
        if last is not None and last[0] == mm.id and last[2] == vpn - 1 and last[3] == ok:
            last[2] = vpn + n - 1
        else:
            runs.append([mm.id, vpn, vpn + n - 1, ok])
    for mm_id, lo, hi, ok in runs:
        span = page_name(lo) if lo == hi else f"{page_name(lo)} .. {page_name(hi)}"  # type: ignore
        pic.folio_lines.append(f"{'found' if ok else 'MISSED'}: {names[mm_id]} {span}")  # type: ignore
    for vid in sorted(missed_vmas):
        pic.edges.append(StructEdge(f"folio{f.id}", f"vma{vid}", "MISSED", "missed"))


def to_dot(pic: Picture) -> str:
    """Graphviz source of the picture."""
    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    colours = {"anon_vma": "lightblue", "context": "khaki", "retained": "lightpink",
               "folio": "palegreen", "mm": "lightgrey", "vma": "white"}
    out = ["digraph rmaplab {", "  rankdir=LR; node [shape=box, fontname=monospace, fontsize=10];",
           f"  label={q(pic.title)}; labelloc=t;"]
    for cid, nodes in pic.mms:
        out.append(f"  subgraph cluster_{cid} {{ label={q(nodes[0].label)}; style=rounded;")
        for n in nodes[1:]:
            out.append(f"    {n.id} [label={q(n.label)}];")
        for a, b in zip(nodes[1:], nodes[2:]):
            out.append(f"    {a.id} -> {b.id} [style=invis];")
        out.append(f"    {nodes[0].id} [label={q(nodes[0].label)}, style=filled, "
                   "fillcolor=lightgrey];")
        out.append("  }")
    for n in pic.nodes:
        out.append(f"  {n.id} [label={q(n.label)}, style=filled, "
                   f"fillcolor={colours.get(n.kind, 'white')}];")
    for e in pic.edges:
        attrs = [f"label={q(e.label)}"] if e.label else []
        if e.style == "missed":
            attrs += ["color=red", "fontcolor=red", "penwidth=2", "style=dashed"]
        elif e.style != "solid":
            attrs.append(f"style={e.style}")
        out.append(f"  {e.src} -> {e.dst} [{', '.join(attrs)}];")
    if pic.folio_lines:
        out.append(f"  legend [shape=note, label={q(chr(10).join(pic.folio_lines))}];")
    out.append("}")
    return "\n".join(out) + "\n"


def to_txt(pic: Picture) -> str:
    """The picture as text: each mm's VMAs, the design's objects, the links."""
    out = [pic.title]
    for _cid, nodes in pic.mms:
        out.append(f"  {nodes[0].label}:")
        out += [f"    {n.id}: {n.label}" for n in nodes[1:]]
    if pic.nodes:
        out.append("  objects:")
        out += [f"    {n.id}: {n.label.replace(chr(10), '; ')}" for n in pic.nodes]
    if pic.edges:
        out.append("  links:")
        out += [f"    {e.src} -{e.label}-> {e.dst}" for e in pic.edges]
    if pic.folio_lines:
        out.append("  the folio's mappings:")
        out += [f"    {x}" for x in pic.folio_lines]
    return "\n".join(out) + "\n"


def render_svg(dot_source: str) -> str:
    """SVG from Graphviz source (needs the ``dot`` program)."""
    dot = shutil.which("dot")
    if dot is None:
        raise KernelUnavailable("no Graphviz 'dot' program: apt-get install graphviz, or use "
                                "--format dot|txt")
    r = subprocess.run([dot, "-Tsvg"], input=dot_source, capture_output=True, text=True,
                       timeout=120)
    if r.returncode:
        raise UsageError(f"dot failed: {r.stderr.strip()[:200]}")
    return r.stdout


def draw(sc: Scenario, design: str, at: int | None = None, fmt: str = "svg",
         folio: int | None = None) -> str:
    """``rmaplab draw``: the state after line ``at`` (the last line if None)."""
    m, where = run_to(sc, design, at)
    pic = picture(m, f"after {where}, design {design}", folio)
    if fmt == "txt":
        return to_txt(pic)
    src = to_dot(pic)
    return src if fmt == "dot" else render_svg(src)
