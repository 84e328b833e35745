"""``rmaplab record``: record live-kernel output next to a scenario.

``NAME.scn`` gets ``NAME.out``: the kernel's output lines after a comment
header naming the kernel and method.  A recording is kept only when
``runs`` independent kernel runs agree; the file is written atomically.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from rmaplab.kernel.runner import run_on_kernel
from rmaplab.scenario.ast import Scenario


def out_path(sc_path: str) -> Path:
    p = Path(sc_path)
    return p.with_suffix(".out")


def read_recording(path: Path) -> list[str]:
    """Recorded output lines (comments and blank lines skipped)."""
    return [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]


def record_files(scs: list[Scenario], method: str, runs: int,
                 force: bool) -> tuple[list[str], bool]:
    out: list[str] = []
    ok = True
    for sc in scs:
        dest = out_path(sc.path)
        if dest.exists() and not force:
            out.append(f"SKIP {dest} (exists; --force to overwrite)")
            continue
        results = [run_on_kernel(sc, method) for _ in range(max(1, runs))]
        if any(r != results[0] for r in results):
            ok = False
            out.append(f"UNSTABLE {sc.path}: {runs} kernel runs disagree, not recorded")
            continue
        tmp = dest.with_suffix(f".out.tmp{os.getpid()}")
        header = (f"# recorded by 'rmaplab record --method {method}' on Linux "
                  f"{platform.release()} ({platform.machine()}), {runs} agreeing runs\n")
        tmp.write_text(header + "".join(line + "\n" for line in results[0]))
        os.replace(tmp, dest)
        out.append(f"RECORDED {dest}")
    return out, ok
