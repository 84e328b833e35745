"""``rmaplab check``: run the oracle on scenario files or random scenarios."""

from __future__ import annotations

from rmaplab.check import check_with_exit
from rmaplab.fuzz.generate import generate_scenario
from rmaplab.scenario.ast import Scenario
from rmaplab.scenario.parse import parse_text


def check_files(scs: list[Scenario], designs: str) -> tuple[list[str], bool]:
    """``PASS``/``VIOLATION`` per (design, file), then ``N passed, N failed``.

    Every process still alive at the end of a scenario exits implicitly
    (children first), so that leaked objects are caught too.  With several
    designs, each file is also checked differentially, as ``rmaplab fuzz``
    does: the designs must agree on every op's error and on the ranges each
    process maps (``DIFFERENCE`` otherwise), so a differential fuzz finding
    replays with the same ``--design`` list.
    """
    out: list[str] = []
    passed = failed = 0
    names = designs.split(",")
    for d in names:
        for sc in scs:
            v = check_with_exit(sc, d)
            tag = f"{sc.path}" if len(names) == 1 else f"{d} {sc.path}"
            if v is None:
                passed += 1
                out.append(f"PASS {tag}")
            else:
                failed += 1
                out.append(f"VIOLATION: {tag}: {v}")
    if len(names) > 1:
        from rmaplab.fuzz.campaign import first_divergence

        for sc in scs:
            div = first_divergence(sc, names)
            if div is None:
                passed += 1
                out.append(f"AGREE {','.join(names)} {sc.path}")
            else:
                failed += 1
                out.append(f"DIFFERENCE: {sc.path}: {div}")
    out.append(f"{passed} passed, {failed} failed")
    return out, failed == 0


def check_random(designs: str, total_ops: int, seed: int, per: int) -> tuple[list[str], bool]:
    """Check ``total_ops`` random operations, in scenarios of ``per`` ops
    with seeds ``seed``, ``seed+1``, ...; a failing scenario is printed whole
    so it can be replayed."""
    out: list[str] = []
    passed = failed = ops = 0
    s = seed
    while ops < total_ops:
        n = min(per, total_ops - ops)
        text = generate_scenario(s, n)
        sc = parse_text(text, f"random:seed={s}")
        for d in designs.split(","):
            v = check_with_exit(sc, d)
            if v is None:
                passed += 1
                out.append(f"PASS {d} random seed={s} ({n} ops)")
            else:
                failed += 1
                out.append(f"VIOLATION: {d} random seed={s}: {v}")
                out.extend("    " + ln for ln in text.splitlines())
        ops += n
        s += 1
    out.append(f"{passed} passed, {failed} failed ({ops} random ops)")
    return out, failed == 0
