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
from rmaplab.scenario.ast import Op, Scenario
from rmaplab.scenario.ops import Maps, Measure
from rmaplab.scenario.output import format_error, format_maps, format_measure

StepHook = Callable[[Machine, Op, int], None]


def apply_op(m: Machine, op: Op, extra: bool = False) -> str | None:
    """Execute one operation; its output line, if any."""
    a = op.action
    if type(a) is Measure:
        fields = m.design.measure_extra() if extra else m.design.measure()
        return format_measure(op.line, fields)
    p = op.proc
    assert p is not None
    if type(a) is Maps:
        return format_maps(p, m.maps(p))
    r = a.run(m, p)
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
        if line is not None:
            out.append(line)
        if on_step is not None:
            on_step(m, op, i)
    return out
