"""``rmaplab validate``: the model against the live kernel, line by line."""

from __future__ import annotations

import difflib

from rmaplab.kernel.runner import run_on_kernel
from rmaplab.progress import Progress
from rmaplab.scenario.ast import Scenario
from rmaplab.scenario.output import core_fields
from rmaplab.scenario.run import run_scenario


def diff_outputs(model: list[str], kernel: list[str], path: str) -> list[str]:
    """Unified diff (model vs kernel) of the kernel-comparable fields; [] if equal."""
    a = [core_fields(x) for x in model]
    b = [core_fields(x) for x in kernel]
    if a == b:
        return []
    return list(difflib.unified_diff(a, b, f"{path} (model)", f"{path} (kernel)", lineterm=""))


def validate_files(scs: list[Scenario], design: str = "classic", method: str = "trace",
                   repeat: int | None = None,
                   progress: Progress | None = None) -> tuple[list[str], bool]:
    """One ``OK``/``DIFF`` line per scenario (diffs follow), and a summary."""
    out: list[str] = []
    bad = 0
    prog = progress or Progress("validate", 0, "", enabled=False)
    prog.total, prog.unit = len(scs), "scenarios"
    for sc in scs:
        prog.step(note=sc.path)
        d = diff_outputs(run_scenario(sc, design), run_on_kernel(sc, method, repeat), sc.path)
        if d:
            bad += 1
            out.append(f"DIFF {sc.path}")
            out.extend("  " + x for x in d)
        else:
            out.append(f"OK   {sc.path}")
    out.append(f"{len(scs) - bad} agree, {bad} differ")
    return out, bad == 0
