#!/usr/bin/env python3
"""Regenerate docs/pictures/: each reviewer scenario drawn on each design that
fails it, at the line of its first violation (``rmaplab check``), with the
folio the violation names.  The picture shows the missed mapping: the
walk's runs are marked found or MISSED against the page tables.

    python3 scripts/draw_pictures.py [--check]

``--check`` only reports pictures that differ from what is committed (exit 1).
Needs Graphviz ``dot``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from rmaplab.check import check_scenario  # noqa: E402
from rmaplab.report.draw import draw  # noqa: E402
from rmaplab.scenario.parse import parse_file  # noqa: E402

OUT = ROOT / "docs" / "pictures"
#: the designs with a sequential flaw, and the correct readings
DESIGNS = ("lazy-single-address", "lazy-merge-any", "lazy-no-upgrade-on-mremap",
           "cowctx-poc-shortcut", "scalable-cow-no-merge-check", "lazy", "cowctx", "scalable-cow")


def pictures() -> dict[str, str]:
    out: dict[str, str] = {}
    for scn in sorted((ROOT / "scenarios" / "reviewer").glob("*.scn")):
        sc = parse_file(str(scn))
        for design in DESIGNS:
            v = check_scenario(sc, design)
            if v is None or v.line == 0:
                continue
            m = re.search(r"folio (\d+)", v.what)
            folio = int(m.group(1)) if m else None
            name = f"{scn.stem}--{design}.svg"
            out[name] = draw(sc, design, v.line, "svg", folio)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    new = pictures()
    if a.check:
        stale = [n for n, svg in new.items()
                 if not (OUT / n).exists() or (OUT / n).read_text() != svg]
        stale += [p.name for p in OUT.glob("*.svg") if p.name not in new]
        for n in stale:
            print(f"docs/pictures/{n} is stale")
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for p in OUT.glob("*.svg"):
        if p.name not in new:
            p.unlink()
    for n, svg in new.items():
        (OUT / n).write_text(svg)
        print(f"docs/pictures/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
