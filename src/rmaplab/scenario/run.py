"""Run a parsed scenario on the model.

>>> from rmaplab.scenario.parse import parse_text
>>> sc = parse_text("P0 mmap @0 4\\nP0 write 0..0\\nP0 fork P1\\nmeasure\\nmaps P1\\n")
>>> run_scenario(sc)
['measure 4: anon_vma=2 avc=3', 'maps P1: 0..3:rw-']
"""

from __future__ import annotations

from collections.abc import Callable

from rmaplab.designs import make_design
from rmaplab.machine.config import KernelConfig
from rmaplab.machine.machine import Machine
from rmaplab.scenario.ast import (
    Exit,
    Fork,
    Madvise,
    Maps,
    Measure,
    Mmap,
    Mprotect,
    Mremap,
    Munmap,
    Op,
    Scenario,
    Touch,
)
from rmaplab.scenario.output import format_error, format_maps, format_measure

StepHook = Callable[[Machine, Op, int], None]


def apply_op(m: Machine, op: Op, extra: bool = False) -> str | None:
    """Execute one operation; its output line, if any."""
    a = op.action
    p = op.proc
    if isinstance(a, Measure):
        fields = m.design.measure_extra() if extra else m.design.measure()
        return format_measure(op.line, fields)
    assert p is not None
    if isinstance(a, Maps):
        return format_maps(p, m.maps(p))
    if isinstance(a, Touch):
        r = m.touch(p, a.first, a.last, a.write)
    elif isinstance(a, Mmap):
        r = m.mmap(p, a.start, a.npages, a.prot, a.shared, a.file, a.off, a.populate)
    elif isinstance(a, Mprotect):
        r = m.mprotect(p, a.first, a.last, a.prot)
    elif isinstance(a, Munmap):
        r = m.munmap(p, a.first, a.last)
    elif isinstance(a, Mremap):
        r = m.mremap(p, a.old_start, a.old_len, a.new_len, a.new_start, a.dontunmap, a.maymove)
    elif isinstance(a, Madvise):
        r = m.madvise(p, a.first, a.last, a.advice)
    elif isinstance(a, Fork):
        r = m.fork(p, a.child)
    elif isinstance(a, Exit):
        r = m.exit(p)
    else:  # pragma: no cover
        raise AssertionError(a)
    return format_error(op.line, -r) if r else None


def run_scenario(sc: Scenario, design: str = "classic", config: KernelConfig | None = None,
                 on_step: StepHook | None = None, extra: bool = False,
                 machine: Machine | None = None) -> list[str]:
    """Output lines of ``sc`` on a fresh machine with ``design``.

    ``on_step(machine, op, index)`` runs after every operation (the checker
    uses it); ``extra`` adds the design's extra measure fields.
    """
    m = machine or Machine(make_design(design), config)
    out = []
    for i, op in enumerate(sc.ops):
        line = apply_op(m, op, extra)
        m.steps += 1
        if line is not None:
            out.append(line)
        if on_step is not None:
            on_step(m, op, i)
    return out
