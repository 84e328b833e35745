#!/usr/bin/env python3
"""Regenerate the README's generated blocks from the commands that make them.

Each block sits between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` and
is the verbatim output of the command listed in BLOCKS.  The test suite
checks that the README holds the current output (tests/test_readme.py).

    python3 scripts/refresh_readme.py [--check] [--slow]

``--slow`` also regenerates the blocks that are measurements rather than
pure functions of the code (``fuzz-cold``: four 60-second fuzz campaigns,
about five minutes on an idle machine; ``real-workloads``: real programs
traced on the live kernel and replayed, scripts/real_workloads.py, about
three minutes, as root); the test suite does not re-check those.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def rmaplab(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "rmaplab", *args], cwd=ROOT, capture_output=True,
                       text=True)
    if r.returncode not in (0, 1):
        raise SystemExit(f"rmaplab {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def workload(tmp: Path, name: str, *args: str) -> str:
    out = tmp / f"{name}.scn"
    rmaplab("workload", *args, "--out", str(out))
    return str(out)


def last_measure(text: str, path: str) -> str:
    """The tables of the last measure line, with the temporary path removed."""
    part = text.split(f"{path}, measure at line ")[-1]
    return "\n".join(part.splitlines()[1:]).strip().replace(path, "FILE")


#: the flawed variants with a sequential flaw, and the reviewer concern each makes executable
FLAWED = [("lazy-single-address", "S1: a folio is looked up at one address only"),
          ("lazy-merge-any", "S2: VMAs of different lazy roots merge"),
          ("lazy-no-upgrade-on-mremap", "S3: a moved lazy VMA keeps its root"),
          ("cowctx-poc-shortcut", "PoC walk: exclusive folio only at offset 0")]


def fuzz_example(tmp: Path) -> str:
    out = tmp / "fuzz-example"
    rmaplab("fuzz", "--design", "lazy-single-address", "--ops", "2000", "--quiet",
            "--out", str(out))
    (f,) = out.glob("*.scn")
    return ("    $ rmaplab fuzz --design lazy-single-address --ops 2000 --out DIR; cat DIR/*.scn\n"
            + "".join(f"    {ln}\n" for ln in f.read_text().splitlines())).rstrip()


def fuzz_cold(tmp: Path) -> str:
    """Each flawed variant from an empty directory, 60 s: a measurement."""
    rows = ["| `--design` | flaw | first finding after | kinds found | reproducers (lines) "
            "| scenarios run | wall: shards + shrinking |", "|---|---|---:|---:|---|---:|---:|"]
    for design, flaw in FLAWED:
        out = tmp / f"cold-{design}"
        text = rmaplab("fuzz", "--design", design, "--seconds", "60", "--quiet",
                       "--out", str(out))
        first = re.search(r"first new one after ([\d.]+)s", text)
        ops = re.search(r"this run: [\d,]+ scenario ops in ([\d.]+)s", text)
        scen = re.search(r"\(([\d,]+) scenarios of", text)
        shrink = re.search(r"shrinking: \d+ finding\(s\) in ([\d.]+)s", text)
        lines = sorted(int(n) for n in re.findall(r"^finding .*\((\d+) lines, seed", text, re.M))
        assert first and ops and scen and lines, text
        sh = float(shrink.group(1)) if shrink else 0.0
        rows.append(f"| `{design}` | {flaw} | {first.group(1)} s | {len(lines)} | "
                    f"{', '.join(map(str, lines))} | {scen.group(1)} | "
                    f"{float(ops.group(1)):.0f} s + {sh:.0f} s |")
    return "\n".join(rows)


def blocks(tmp: Path, slow: bool = False) -> dict[str, str]:
    """Every block's new text.  The commands are independent: they run two at
    a time (the reference machine has two cores), each in its own process."""
    from concurrent.futures import ThreadPoolExecutor

    reviewer = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scenarios/reviewer").glob("*.scn"))
    litmus = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scenarios/litmus").glob("*.lit"))
    four = "classic,lazy,cowctx,scalable-cow"
    ft = workload(tmp, "forktree", "forktree")
    try:
        a24: str | None = workload(tmp, "android24", "android", "--apps", "24")
        a0: str | None = workload(tmp, "android24nofork", "android", "--apps", "24",
                                  "--fork-fraction", "0")
    except SystemExit:
        a24 = a0 = None  # no smaps dumps here: leave the Android blocks alone
    jobs: dict[str, Callable[[], str]] = {
        "verdicts": lambda: rmaplab("verdicts", *reviewer).strip(),
        "fuzz-example": lambda: fuzz_example(tmp),
        "explore-table": lambda: rmaplab(
            "explore", "--table", "--bound", "all", "--design",
            "classic,lazy,lazy-noretry,lazy-folio-lock,cowctx,cowctx-poc-shortcut,scalable-cow",
            *litmus).strip(),
        "explore-fork-vs-walk": lambda: "```\n" + rmaplab(
            "explore", "--design", "lazy-noretry", "scenarios/litmus/fork-vs-walk.lit").strip()
        + "\n```",
        "compare-forktree": lambda: last_measure(rmaplab("compare", "--designs", four, ft), ft),
    }
    if a24 is not None and a0 is not None:
        jobs["compare-android"] = lambda: last_measure(
            rmaplab("compare", "--designs", four, a24), a24)
        jobs["compare-android-nofork"] = lambda: last_measure(
            rmaplab("compare", "--designs", four, "--no-walks", a0), a0)
    # longest first, so that two workers finish together
    order = ["compare-android", "explore-table", "compare-android-nofork", "compare-forktree",
             "verdicts", "explore-fork-vs-walk", "fuzz-example"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {k: pool.submit(jobs[k]) for k in order if k in jobs}
        out = {k: f.result() for k, f in futures.items()}
    if slow:
        out["fuzz-cold"] = fuzz_cold(tmp)
        r = subprocess.run([sys.executable, str(ROOT / "scripts" / "real_workloads.py")],
                           capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip():  # needs root and tracefs
            out["real-workloads"] = r.stdout.strip()
    return out


def refresh(text: str, new: dict[str, str]) -> str:
    for name, body in new.items():
        b, e = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        if b not in text:
            raise SystemExit(f"README has no block {name}")
        head, rest = text.split(b, 1)
        _, tail = rest.split(e, 1)
        text = f"{head}{b}\n{body}\n{e}{tail}"
    return text


def main() -> int:
    with tempfile.TemporaryDirectory() as t:
        new = blocks(Path(t), slow="--slow" in sys.argv)
    old = README.read_text()
    text = refresh(old, new)
    if "--check" in sys.argv:
        return 0 if text == old else 1
    README.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
