"""``rmaplab check``: run the oracle on scenario files or random scenarios."""

from __future__ import annotations

from rmaplab.check import Violation, check_with_exit
from rmaplab.fuzz.generate import generate_scenario
from rmaplab.progress import Progress
from rmaplab.scenario.ast import Scenario
from rmaplab.scenario.parse import parse_text


class _Tally:
    """Result lines and their pass/fail counts."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.passed = self.failed = 0

    def add(self, ok: bool, line: str) -> None:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        self.lines.append(line)

    def done(self, suffix: str = "") -> tuple[list[str], bool]:
        self.lines.append(f"{self.passed} passed, {self.failed} failed{suffix}")
        return self.lines, self.failed == 0


def check_files(scs: list[Scenario], designs: str, progress: Progress | None = None,
                explain: bool = False) -> tuple[list[str], bool]:
    """``PASS``/``VIOLATION`` per (design, file), then ``N passed, N failed``.

    Every process still alive at the end of a scenario exits implicitly
    (children first), so that leaked objects are caught too.  With several
    designs, each file is also checked differentially, as ``rmaplab fuzz``
    does: the designs must agree on every op's error and on the ranges each
    process maps (``DIFFERENCE`` otherwise), so a differential fuzz finding
    replays with the same ``--design`` list.
    """
    t = _Tally()
    names = designs.split(",")
    prog = progress or Progress("check", 0, "", enabled=False)
    prog.total = len(names) * len(scs) + (len(scs) if len(names) > 1 else 0)
    for d in names:
        for sc in scs:
            prog.step(note=f"{d} {sc.path}")
            v = check_with_exit(sc, d)
            tag = f"{sc.path}" if len(names) == 1 else f"{d} {sc.path}"
            t.add(v is None, f"PASS {tag}" if v is None else f"VIOLATION: {tag}: {v}")
            if v is not None and explain and v.line > 0:
                t.lines.extend(explain_violation(sc, d, v))
    if len(names) > 1:
        from rmaplab.fuzz.campaign import first_divergence

        for sc in scs:
            prog.step(note=f"compare {sc.path}")
            div = first_divergence(sc, names)
            t.add(div is None, f"AGREE {','.join(names)} {sc.path}" if div is None
                  else f"DIFFERENCE: {sc.path}: {div}")
    return t.done()


def explain_violation(sc: Scenario, design: str, v: Violation) -> list[str]:
    """``check --explain``: the state after the failing line, as
    ``rmaplab draw --format txt`` shows it (every VMA and its rmap objects,
    what the walk of the folio the violation names visits, and which of
    the folio's mappings it found or MISSED), indented under the line."""
    import re

    from rmaplab.report.draw import draw

    m = re.search(r"folio (\d+)", v.what)
    pic = draw(sc, design, v.line, "txt", int(m.group(1)) if m else None)
    return ["    " + ln for ln in pic.rstrip("\n").splitlines()]


def check_random(designs: str, total_ops: int, seed: int, per: int,
                 progress: Progress | None = None) -> tuple[list[str], bool]:
    """Check ``total_ops`` random operations, in scenarios of ``per`` ops
    with seeds ``seed``, ``seed+1``, ...; a failing scenario is printed whole
    so it can be replayed."""
    t = _Tally()
    ops = 0
    s = seed
    prog = progress or Progress("check", 0, "", enabled=False)
    prog.total, prog.unit = total_ops, "ops"
    while ops < total_ops:
        n = min(per, total_ops - ops)
        prog.step(n, f"seed {s}")
        text = generate_scenario(s, n)
        sc = parse_text(text, f"random:seed={s}")
        for d in designs.split(","):
            v = check_with_exit(sc, d)
            if v is None:
                t.add(True, f"PASS {d} random seed={s} ({n} ops)")
            else:
                t.add(False, f"VIOLATION: {d} random seed={s}: {v}")
                t.lines.extend("    " + ln for ln in text.splitlines())
        ops += n
        s += 1
    return t.done(f" ({ops} random ops)")
