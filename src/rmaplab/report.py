"""Tables: reviewer-scenario verdicts and memory comparisons.

Verdicts: every reviewer scenario states, in a header line
``# expect: DESIGN=PASS|VIOLATION@LINE ...`` (or ``# expect: n/a`` for a
concern the scenario language cannot express), the verdict each design
must get.  :func:`verdict_table` runs ``rmaplab check`` for each (design,
scenario) pair and prints a Markdown table; a cell that differs from the
expectation is marked and makes the command fail.
"""

from __future__ import annotations

import re
from pathlib import Path

from rmaplab.check import check_with_exit
from rmaplab.scenario.ast import Scenario

_EXPECT = re.compile(r"expect:\s*(.*)")


def expectations(sc: Scenario) -> dict[str, str] | None:
    """design -> 'PASS' or 'VIOLATION@L' from the header; None for n/a.

    >>> from rmaplab.scenario.parse import parse_text
    >>> expectations(parse_text("# expect: classic=PASS lazy=VIOLATION@3\\nP0 mmap @0 1\\n"))
    {'classic': 'PASS', 'lazy': 'VIOLATION@3'}
    """
    for h in sc.header:
        m = _EXPECT.match(h)
        if m:
            body = m.group(1).strip()
            if body.startswith("n/a"):
                return None
            return dict(kv.split("=", 1) for kv in body.split())
    return {}


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


def measure_snapshots(sc: Scenario, design: str) -> list[tuple[int, dict[str, tuple[int, int]]]]:
    """(line, snapshot) at every ``measure`` line of ``sc`` under ``design``."""
    from rmaplab.designs import make_design
    from rmaplab.machine.machine import Machine
    from rmaplab.scenario.ast import Measure
    from rmaplab.scenario.run import run_scenario

    snaps: list[tuple[int, dict[str, tuple[int, int]]]] = []

    def hook(m, op, _i):  # type: ignore[no-untyped-def]
        if isinstance(op.action, Measure):
            snaps.append((op.line, snapshot(m)))

    run_scenario(sc, design, on_step=hook, machine=Machine(make_design(design)))
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


def compare(scs: list[Scenario], designs: list[str]) -> list[str]:
    """Memory tables at every measure line of every scenario."""
    out: list[str] = []
    for sc in scs:
        runs = {d: measure_snapshots(sc, d) for d in designs}
        lines = [ln for ln, _ in runs[designs[0]]]
        if not lines:
            out.append(f"{sc.path}: no measure line")
            continue
        for i, ln in enumerate(lines):
            out.append(f"{sc.path}, measure at line {ln}:")
            out.append("")
            out += memory_table({d: runs[d][i][1] for d in designs})
            counts = ", ".join(
                f"{d}: " + " ".join(f"{k}={runs[d][i][1][k][0]}" for k in runs[d][i][1])
                for d in designs)
            out.append("")
            out.append(f"objects: {counts}")
            out.append("")
    return out
