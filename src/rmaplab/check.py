"""The correctness oracle: ground-truth page tables against ``rmap_walk``.

After every operation :func:`check_machine` verifies that

1. for every anonymous folio mapped anywhere, the design's ``rmap_walk``
   yields, for each (mm, page) where the page tables map page i of the
   folio, a live VMA of that mm containing the page with the folio's first
   page at ``page - i`` (what ``page_vma_mapped_walk`` needs to find the
   PTE); a walk that yields a freed VMA is a use-after-free;
2. the machine's own structures are consistent (VMA trees, page tables
   inside VMAs, folio map counts);
3. the design's invariants hold (no leaked object, nothing used after free);
4. once every process has exited, the design holds no object at all.

>>> from rmaplab.scenario.parse import parse_text
>>> check_scenario(parse_text("P0 mmap @0 4\\nP0 write 0..3\\nP0 fork P1\\nP0 exit\\nP1 exit\\n"))
"""

from __future__ import annotations

from dataclasses import dataclass

from rmaplab.designs import make_design
from rmaplab.designs.base import RmapDesign
from rmaplab.machine.config import KernelConfig
from rmaplab.machine.constants import page_name
from rmaplab.machine.folio import Folio
from rmaplab.machine.machine import Machine
from rmaplab.machine.mm import Mm
from rmaplab.machine.vma import Vma
from rmaplab.scenario.ast import Op, Scenario
from rmaplab.scenario.run import apply_op


@dataclass(frozen=True)
class Violation:
    """The first failed check of a scenario."""

    what: str
    line: int
    step: int
    op: str

    def __str__(self) -> str:
        return f"{self.what}; at line {self.line} ({self.op}), step {self.step}"


def rmap_violations(m: Machine, limit: int = 5) -> list[str]:
    """Mappings that ``rmap_walk`` misses or reaches at a wrong address."""
    truth: dict[Folio, list[tuple[Mm, int, int, int]]] = {}
    for mm, vpn, f, i, n in m.anon_runs():
        truth.setdefault(f, []).append((mm, vpn, i, n))
    errs: list[str] = []
    walk = m.rmap_candidates
    for f, maps in truth.items():
        seen: dict[tuple[int, int], list[Vma]] = {}
        for vma, base in walk(f):
            if vma.detached:
                errs.append(f"rmap_walk of folio {f.id} visits freed VMA {vma.id} "
                            f"(use after free)")
                continue
            seen.setdefault((vma.mm.id, base), []).append(vma)
        for mm, vpn, i, n in maps:
            cands = seen.get((mm.id, vpn - i), ())
            for v in cands:
                if v.start <= vpn and vpn + n <= v.end:
                    break
            else:
                errs.append(f"rmap_walk of folio {f.id} (index {f.index:#x}, {f.nr} pages) "
                            f"misses its page {i}, mapped by {mm.name} at {page_name(vpn)}")
                if len(errs) >= limit:
                    return errs
    return errs


def check_machine(m: Machine) -> list[str]:
    """Every violated property of the current state (empty if none)."""
    errs = rmap_violations(m)
    errs += m.check_structures()
    errs += m.design.check_invariants()
    if not m.mms:
        held = {k: v for k, v in m.design.accounting().items() if v[0]}
        if held:
            errs.append("objects leaked after every process exited: "
                        + ", ".join(f"{k}={n}" for k, (n, _) in held.items()))
    return errs


def check_scenario(sc: Scenario, design: str | RmapDesign = "classic",
                   config: KernelConfig | None = None,
                   machine: Machine | None = None) -> Violation | None:
    """Run ``sc`` with the checks after every op; the first violation or None.
    ``design`` is a design name or a fresh design object; ``machine`` a
    fresh machine to use (so that the caller can inspect it afterwards)."""
    m = machine or Machine(make_design(design) if isinstance(design, str) else design, config)
    ops = sc.ops
    for i, op in enumerate(ops):
        try:
            apply_op(m, op)
        except Exception as e:  # a design crashing is a finding too
            return Violation(f"{type(e).__name__}: {e}", op.line, i + 1, op.text)
        errs = check_machine(m)
        if errs:
            return Violation(errs[0], op.line, i + 1, op.text)
    return None


def check_with_exit(sc: Scenario, design: str | RmapDesign = "classic",
                    config: KernelConfig | None = None,
                    machine: Machine | None = None) -> Violation | None:
    """:func:`check_scenario`, then every live process exits (checked too),
    so that leaks show up even when the scenario leaves processes alive."""
    from rmaplab.scenario.ops import Exit

    names = [n for n in _alive_at_end(sc)]
    extra = [Op(0, n, Exit(), f"{n} exit (implicit, end of scenario)") for n in names]
    return check_scenario(Scenario(sc.path, sc.ops + extra, sc.files, sc.header), design, config,
                          machine)


def _alive_at_end(sc: Scenario) -> list[str]:
    from rmaplab.scenario.ops import Exit, Fork

    alive = ["P0"]
    for op in sc.ops:
        if isinstance(op.action, Fork):
            alive.append(op.action.child)
        elif isinstance(op.action, Exit) and op.proc in alive:
            alive.remove(op.proc)
    # children exit before their parents, as a shell would reap them
    return list(reversed(alive))
