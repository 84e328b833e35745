"""Tables: reviewer-scenario verdicts and memory comparisons.

Verdicts: every reviewer scenario states, in a header line
``# expect: DESIGN=PASS|VIOLATION@LINE ...`` (or ``# expect: n/a`` for a
concern the scenario language cannot express), the verdict each design
must get.  :func:`verdict_table` runs ``rmaplab check`` for each (design,
scenario) pair and prints a Markdown table; a cell that differs from the
expectation is marked and makes the command fail.
"""

from __future__ import annotations

import gc
import re
from pathlib import Path

from rmaplab.check import check_with_exit
from rmaplab.errors import ScenarioError
from rmaplab.progress import Progress
from rmaplab.scenario.ast import Scenario

_EXPECT = re.compile(r"expect:\s*(.*)")


def expectations(sc: Scenario) -> dict[str, str] | None:
    """design -> 'PASS' or 'VIOLATION@L' from the header; None for n/a.
    A scenario without an ``# expect:`` line, or with a malformed one, is
    bad input (:class:`ScenarioError` naming the file and line).

    >>> from rmaplab.scenario.parse import parse_text
    >>> expectations(parse_text("# expect: classic=PASS lazy=VIOLATION@3\\nP0 mmap @0 1\\n"))
    {'classic': 'PASS', 'lazy': 'VIOLATION@3'}
    """
    for n, h in enumerate(sc.header):
        m = _EXPECT.match(h)
        if not m:
            continue
        line = sc.header_lines[n] if n < len(sc.header_lines) else 0
        body = m.group(1).strip()
        if body.startswith("n/a"):
            return None
        out = {}
        for kv in body.split():
            d, eq, v = kv.partition("=")
            if not eq or not d or not re.fullmatch(r"PASS|VIOLATION@[0-9]{1,9}", v):
                raise ScenarioError(sc.path, line, f"bad expect entry {kv[:40]!r}: write "
                                                   "DESIGN=PASS or DESIGN=VIOLATION@LINE")
            if d in out:
                raise ScenarioError(sc.path, line, f"design {d} expected twice")
            out[d] = v
        return out
    raise ScenarioError(sc.path, 0, "no '# expect: DESIGN=VERDICT ...' line in the header "
                                    "(verdicts needs one)")


def verdict(sc: Scenario, design: str) -> str:
    v = check_with_exit(sc, design)
    return "PASS" if v is None else f"VIOLATION@{v.line}"


def verdict_table(scs: list[Scenario], designs: list[str]) -> tuple[list[str], bool]:
    """Markdown table design x scenario; ok=False if any cell disagrees with
    its scenario's stated expectation (or a scenario states none)."""
    head = "| scenario | " + " | ".join(designs) + " |"
    out = [head, "|---|" + "---|" * len(designs)]
    ok = True
    for sc in scs:
        name = Path(sc.path).stem
        exp = expectations(sc)
        if exp is None:
            out.append(f"| {name} | " + " | ".join("n/a" for _ in designs) + " |")
            continue
        cells = []
        for d in designs:
            got = verdict(sc, d)
            want = exp.get(d)
            cell = "PASS" if got == "PASS" else f"VIOLATION (line {got.split('@')[1]})"
            if want is None:
                ok = False
                cell += " (no expectation)"
            elif want != got:
                ok = False
                cell += f" (expected {want})"
            cells.append(cell)
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out, ok


# ---------------------------------------------------------------- memory tables
#: rows of the memory table, in the cover letter's order, then other kinds
KIND_ORDER = ("vm_area_struct", "anon_vma_chain", "anon_vma")


def snapshot(m) -> dict[str, tuple[int, int]]:  # type: ignore[no-untyped-def]
    """Live objects and bytes per kind (``RmapDesign.memory``)."""
    return m.design.memory()


WALK_FIELDS = (("anchors", "anon_vmas or contexts visited"), ("vmas", "VMAs examined"),
               ("lookups", "tree lookups"), ("locks", "locks taken"))


class Snapshot:
    """What ``compare`` records at a ``measure`` line under one design."""

    def __init__(self, memory: dict[str, tuple[int, int]], walks: dict[str, tuple[float, int]],
                 nwalks: int, forks: int, fork_allocs: int, fork_entries: int) -> None:
        self.memory = memory
        self.walks = walks  # field -> (mean, worst)
        self.nwalks = nwalks
        self.forks = forks
        self.fork_allocs = fork_allocs
        self.fork_entries = fork_entries


def walk_costs(m) -> tuple[dict[str, tuple[float, int]], int]:  # type: ignore[no-untyped-def]
    """Walk every mapped anonymous folio once (as reclaim would) and return
    mean and worst cost per walk for each :data:`WALK_FIELDS` counter."""
    cost = m.design.cost
    tot = {k: 0 for k, _ in WALK_FIELDS}
    worst = {k: 0 for k, _ in WALK_FIELDS}
    mapped = {id(f): f for _mm, _vpn, f, _i in m.anon_mappings()}
    for f in mapped.values():
        before = {k: cost[k] for k in tot}
        m.rmap_candidates(f)
        for k in tot:
            d = cost[k] - before[k]
            tot[k] += d
            worst[k] = max(worst[k], d)
    n = len(mapped)
    return {k: (tot[k] / n if n else 0.0, worst[k]) for k in tot}, n


def walk_vmas(m) -> list[int]:  # type: ignore[no-untyped-def]
    """The VMAs examined (``cost["vmas"]``) by one walk of each mapped
    anonymous folio, in no particular order: the distribution behind
    :func:`walk_costs`' mean and worst, for histograms.  O(folios x walk)."""
    cost = m.design.cost
    out = []
    for f in {id(f): f for _mm, _vpn, f, _i in m.anon_mappings()}.values():
        before = cost["vmas"]
        m.rmap_candidates(f)
        out.append(cost["vmas"] - before)
    return out


def measure_snapshots(sc: Scenario, design: str, walks: bool = True) -> list[tuple[int, Snapshot]]:
    """(line, snapshot) at every ``measure`` line of ``sc`` under ``design``."""
    from rmaplab.designs import make_design
    from rmaplab.machine.machine import Machine
    from rmaplab.scenario.ops import Fork, Measure
    from rmaplab.scenario.run import run_scenario

    snaps: list[tuple[int, Snapshot]] = []
    m = Machine(make_design(design))
    cost = m.design.cost
    fork = {"n": 0, "allocs": 0, "entries": 0}
    last = {"allocs": 0, "fork_entries": 0}

    def hook(m, op, _i):  # type: ignore[no-untyped-def]
        if isinstance(op.action, Fork):
            fork["n"] += 1
            fork["allocs"] += cost["allocs"] - last["allocs"]
            fork["entries"] += cost["fork_entries"] - last["fork_entries"]
        if isinstance(op.action, Measure):
            w, n = walk_costs(m) if walks else ({}, 0)
            snaps.append((op.line, Snapshot(snapshot(m), w, n, fork["n"], fork["allocs"],
                                            fork["entries"])))
        last["allocs"] = cost["allocs"]
        last["fork_entries"] = cost["fork_entries"]

    run_scenario(sc, design, on_step=hook, machine=m)
    return snaps


def _pct(a: float, b: float) -> str:
    if a == 0:
        return "n/a" if b else "0.0%"
    return f"{(b - a) / a * 100:+.1f}%"


def memory_table(per_design: dict[str, dict[str, tuple[int, int]]]) -> list[str]:
    """Markdown table in the layout of the ANON_VMA_LAZY cover letter:
    KB per object kind under each design and the change from the first."""
    designs = list(per_design)
    base = designs[0]
    kinds = [k for k in KIND_ORDER if any(k in s for s in per_design.values())]
    kinds += sorted({k for s in per_design.values() for k in s} - set(kinds))
    head = f"| Object | {base} (KB) |" + "".join(f" {d} (KB) | Change |" for d in designs[1:])
    out = [head, "|---|---:|" + "---:|---:|" * (len(designs) - 1)]
    total = {d: 0 for d in designs}
    for k in kinds:
        row = []
        b = per_design[base].get(k, (0, 0))[1] / 1024
        total[base] += per_design[base].get(k, (0, 0))[1]
        for d in designs[1:]:
            v = per_design[d].get(k, (0, 0))[1] / 1024
            total[d] += per_design[d].get(k, (0, 0))[1]
            row.append(f" {v:.2f} | {_pct(b, v)} |")
        out.append(f"| {k} | {b:.2f} |" + "".join(row))
    tb = total[base] / 1024
    out.append(f"| total | {tb:.2f} |" + "".join(
        f" {total[d] / 1024:.2f} | {_pct(tb, total[d] / 1024)} |" for d in designs[1:]))
    return out


def walk_table(per_design: dict[str, Snapshot]) -> list[str]:
    """Mean and worst cost per rmap walk, and cost per fork."""
    designs = list(per_design)
    nw = next(iter(per_design.values())).nwalks
    head = (f"| per rmap walk ({nw} folios) |"
            + "".join(f" {d} mean | {d} worst |" for d in designs))
    out = [head, "|---|" + "---:|---:|" * len(designs)]
    for k, label in WALK_FIELDS:
        out.append(f"| {label} |" + "".join(
            f" {per_design[d].walks.get(k, (0.0, 0))[0]:.2f} |"
            f" {per_design[d].walks.get(k, (0.0, 0))[1]} |" for d in designs))
    nf = next(iter(per_design.values())).forks
    out.append("")
    out.append(f"| per fork ({nf} forks) |" + "".join(f" {d} |" for d in designs))
    out.append("|---|" + "---:|" * len(designs))

    def per_fork(s: Snapshot, v: int) -> str:
        return f"{v / s.forks:.1f}" if s.forks else "0"

    out.append("| objects allocated |" + "".join(
        f" {per_fork(per_design[d], per_design[d].fork_allocs)} |" for d in designs))
    out.append("| entries copied (chains / remap entries) |" + "".join(
        f" {per_fork(per_design[d], per_design[d].fork_entries)} |" for d in designs))
    return out


def compare(scs: list[Scenario], designs: list[str], walks: bool = True,
            progress: Progress | None = None) -> list[str]:
    """Memory tables (and walk/fork cost tables) at every measure line."""
    out: list[str] = []
    prog = progress or Progress("compare", 0, "", enabled=False)
    prog.total, prog.unit = len(scs) * len(designs), "runs"
    for sc in scs:
        runs = {}
        for d in designs:
            prog.step(note=f"{d} {sc.path}")
            runs[d] = measure_snapshots(sc, d, walks)
            gc.collect()  # the previous machine's cycles go before the next one grows
        lines = [ln for ln, _ in runs[designs[0]]]
        if not lines:
            out.append(f"{sc.path}: no measure line")
            continue
        for i, ln in enumerate(lines):
            snaps = {d: runs[d][i][1] for d in designs}
            out.append(f"{sc.path}, measure at line {ln}:")
            out.append("")
            out += memory_table({d: s.memory for d, s in snaps.items()})
            out.append("")
            out.append("objects: " + ", ".join(
                f"{d}: " + " ".join(f"{k}={v[0]}" for k, v in s.memory.items())
                for d, s in snaps.items()))
            if walks:
                out.append("")
                out += walk_table(snaps)
            out.append("")
    return out
