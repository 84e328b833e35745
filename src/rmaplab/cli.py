"""Command-line interface (thin: each command calls one module function).

Exit status: 0 success; 1 a check/validation found a difference or a
violation; 2 bad input (one line naming file, line and problem); 3 the live
kernel cannot be used here.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rmaplab.errors import KernelUnavailable, RmaplabError, UsageError


def _progress(a: argparse.Namespace, what: str, total: int | None = 0, unit: str = "") -> Any:
    from rmaplab.progress import Progress

    return Progress(what, total, unit, enabled=None if not getattr(a, "quiet", False) else False)


def writable_dir(path: str, what: str) -> Path:
    """``path`` as a directory rmaplab can write in (created if missing);
    UsageError saying why not."""
    import tempfile

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{what} {path}: exists and is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".rmaplab-write-test-"):
            pass
    except OSError as e:
        raise UsageError(f"{what} {path}: cannot write there ({e.strerror or e})") from None
    return p


def _parse_all(files: Sequence[str]):
    from rmaplab.scenario.parse import parse_file

    if not files:
        raise UsageError("no scenario file given")
    return [parse_file(f) for f in files]


def _per_file(files: Sequence[str], fn: Callable) -> list[str]:
    """Parse every file first (so bad input prints nothing), then run."""
    scs = _parse_all(files)
    out: list[str] = []
    for sc in scs:
        lines = fn(sc)
        if len(scs) > 1:
            out.append(f"== {sc.path}")
        out.extend(lines)
    return out


def cmd_run(a: argparse.Namespace) -> int:
    from rmaplab.designs import make_design
    from rmaplab.scenario.run import run_scenario

    make_design(a.design)  # validate the name early
    print("\n".join(_per_file(a.files, lambda sc: run_scenario(sc, a.design, extra=a.extra))))
    return 0


def cmd_kernel(a: argparse.Namespace) -> int:
    from rmaplab.kernel.runner import run_on_kernel

    print("\n".join(_per_file(a.files, lambda sc: run_on_kernel(sc, a.method, a.repeat))))
    return 0


def cmd_validate(a: argparse.Namespace) -> int:
    from rmaplab.kernel.validate import validate_files

    scs = _parse_all(a.files)
    prog = _progress(a, "validate")
    try:
        report, ok = validate_files(scs, a.design, a.method, a.repeat, progress=prog)
    finally:
        prog.close()
    print("\n".join(report))
    return 0 if ok else 1


def cmd_check(a: argparse.Namespace) -> int:
    from rmaplab.checkrun import check_files, check_random
    from rmaplab.designs import make_design

    for d in a.design.split(","):
        make_design(d)
    if a.random and a.files:
        raise UsageError("--random checks generated scenarios: give no FILE with it")
    if a.random and a.explain:
        raise UsageError("--explain draws a file's failing step: use it with FILE, not --random")
    if a.random:
        prog = _progress(a, "check")
        try:
            lines, ok = check_random(a.design, a.random, a.seed, a.ops_per_scenario, prog)
        finally:
            prog.close()
    else:
        scs = _parse_all(a.files)
        prog = _progress(a, "check")
        try:
            lines, ok = check_files(scs, a.design, prog, explain=a.explain)
        finally:
            prog.close()
    print("\n".join(lines))
    return 0 if ok else 1


def cmd_verdicts(a: argparse.Namespace) -> int:
    from rmaplab.designs import make_design
    from rmaplab.report import verdict_table

    designs = a.designs.split(",")
    for d in designs:
        make_design(d)
    lines, ok = verdict_table(_parse_all(a.files), designs)
    print("\n".join(lines))
    return 0 if ok else 1


def cmd_compare(a: argparse.Namespace) -> int:
    from rmaplab.designs import make_design
    from rmaplab.report import compare

    designs = a.designs.split(",")
    for d in designs:
        make_design(d)
    scs = _parse_all(a.files)
    prog = _progress(a, "compare")
    try:
        out = compare(scs, designs, walks=not a.no_walks, progress=prog)
    finally:
        prog.close()
    print("\n".join(out))
    return 0


def cmd_workload(a: argparse.Namespace) -> int:
    from rmaplab.fuzz.atomic import write_atomic

    if a.kind == "android":
        from rmaplab.workload.android import AndroidParams, find_smaps, generate_android

        p = AndroidParams(apps=a.apps, fork_fraction=a.fork_fraction, seed=a.seed,
                          max_pages=a.max_pages, touch_pages=a.touch_pages,
                          smaps=find_smaps(a.smaps))
        text = generate_android(p)
    else:
        from rmaplab.workload.forktree import forktree_scenario

        text = forktree_scenario(a.vmas, a.width, a.depth, a.cow, a.remap)
    if a.out:
        write_atomic(a.out, text)
        print(f"wrote {a.out} ({len(text.splitlines())} lines)")
    else:
        sys.stdout.write(text)
    return 0


def cmd_fuzz(a: argparse.Namespace) -> int:
    from rmaplab.designs import make_design
    from rmaplab.fuzz.campaign import Campaign, finding_text, progress_to_stderr

    designs = a.design.split(",")
    for d in designs:
        make_design(d)
    if (a.ops is None) == (a.seconds is None):
        raise UsageError("give exactly one of --ops N or --seconds N")
    if a.out is not None:
        writable_dir(a.out, "--out")
    if a.dask is not None and not re.fullmatch(r"(tcp|tls|inproc|ucx)://[^\s/]+(:[0-9]{1,5})?",
                                               a.dask):
        raise UsageError(f"--dask takes a scheduler address like tcp://HOST:PORT, "
                         f"not {a.dask[:60]!r}")
    if a.dask is not None and a.jobs != 1:
        raise UsageError("--jobs is for local workers; with --dask the cluster's workers run")
    camp = Campaign(designs, seed=a.seed, ops=a.ops, seconds=a.seconds, jobs=a.jobs,
                    out=Path(a.out) if a.out else None, ops_per_scenario=a.ops_per_scenario,
                    dask=a.dask, shrink=not a.no_shrink,
                    progress=None if a.quiet else progress_to_stderr)
    def terminated(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM (kill, a batch system, a background job whose SIGINT is ignored)
    # stops the campaign the way Ctrl-C does: finished shards are checkpointed
    old = signal.signal(signal.SIGTERM, terminated)
    try:
        camp.run()
    except KeyboardInterrupt:
        where = (f"; run the same command to resume from {a.out}" if a.out
                 else " (no --out: nothing kept)")
        print(f"rmaplab: fuzz interrupted after {camp.total_ops():,} ops{where}",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, old)
    for f in sorted(camp.findings.values(), key=lambda f: (f.design, f.signature)):
        print(finding_text(f, designs))
    print("\n".join(camp.summary()))
    return 1 if camp.findings else 0


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an ASCII decimal integer >= ``minimum``."""
    def parse(v: str) -> int:
        if not re.fullmatch(r"-?[0-9]{1,12}", v):
            raise argparse.ArgumentTypeError(f"expected a whole number, not {v[:40]!r}")
        n = int(v)
        if n < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {n}")
        return n
    parse.__name__ = "number"
    return parse


def _duration(v: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {v[:40]!r}") from None
    if not x > 0 or x != x or x == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {v}")
    return x


def _fraction(v: str) -> float:
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], not {v[:40]!r}") from None
    if not 0 <= x <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], not {v}")
    return x


def _bound(v: str) -> int | None:
    if v == "all":
        return None
    if not v.isdigit():
        raise argparse.ArgumentTypeError(f"--bound takes a number of preemptions or 'all', "
                                         f"not {v!r}")
    return int(v)


def cmd_explore(a: argparse.Namespace) -> int:
    from rmaplab.designs import make_design
    from rmaplab.explore.explorer import (
        DEFAULT_DESIGNS,
        explore_files,
        load_litmus,
        render_trace,
        run_schedule,
        table,
    )
    from rmaplab.explore.world import Model

    if not a.files:
        raise UsageError("no litmus file given")
    lits = [load_litmus(f) for f in a.files]
    model = Model(lock_order=not a.no_lock_order, rcu_table_free=not a.no_rcu_table_free)
    designs = a.design.split(",") if a.design else None
    for d in designs or []:
        make_design(d)
    if a.table and (a.random or a.schedule or a.every):
        raise UsageError("--table explores every interleaving of each cell: it takes none of "
                         "--random, --schedule, --every")
    if a.schedule and a.random:
        raise UsageError("--schedule replays one schedule: it takes no --random")
    if a.schedule:
        if len(lits) != 1 or not designs or len(designs) != 1:
            raise UsageError("--schedule replays one litmus file under one --design")
        r = run_schedule(lits[0], designs[0], a.schedule.split(","), model)
        print("\n".join(render_trace(r)))
        return 0 if r.verdict == "PASS" else 1
    if a.table:
        ds = designs or list(DEFAULT_DESIGNS)
        prog = _progress(a, "explore", len(lits) * len(ds), "cells")
        try:
            lines, ok = table(lits, ds, a.bound, model, prog)
        finally:
            prog.close()
        print("\n".join(lines))
        return 0 if ok else 1
    prog = _progress(a, "explore", None, "runs")
    try:
        lines, clean = explore_files(lits, designs, a.bound, a.random, a.seed, a.depth, a.every,
                                     model, prog)
    finally:
        prog.close()
    print("\n".join(lines))
    return 0 if clean else 1


def cmd_draw(a: argparse.Namespace) -> int:
    from rmaplab.designs import make_design
    from rmaplab.fuzz.atomic import write_atomic
    from rmaplab.report.draw import draw

    make_design(a.design)
    (sc,) = _parse_all([a.file])
    out = draw(sc, a.design, a.at, a.format, a.folio)
    if a.out:
        write_atomic(a.out, out)
    else:
        sys.stdout.write(out)
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from rmaplab.designs import make_design
    from rmaplab.report.html import write_reports

    designs = a.designs.split(",")
    for d in designs:
        make_design(d)
    scs = _parse_all(a.files)
    out = writable_dir(a.out, "--out")
    at = [int(x) for x in a.at.split(",")] if a.at else []
    prog = _progress(a, "report")
    try:
        for p in write_reports(scs, designs, out, at, prog):
            print(f"wrote {p}")
    finally:
        prog.close()
    return 0


def cmd_designs(a: argparse.Namespace) -> int:
    from rmaplab.designs import describe_designs

    print("\n".join(describe_designs()))
    return 0


def cmd_export_c(a: argparse.Namespace) -> int:
    from rmaplab.fuzz.export_c import export_c

    (sc,) = _parse_all([a.file])
    sys.stdout.write(export_c(sc))
    return 0


def cmd_generate(a: argparse.Namespace) -> int:
    from rmaplab.fuzz.generate import generate_scenario

    sys.stdout.write(generate_scenario(a.seed, a.ops))
    return 0


def cmd_record(a: argparse.Namespace) -> int:
    from rmaplab.kernel.record import record_files

    lines, ok = record_files(_parse_all(a.files), a.method, a.runs, a.force)
    print("\n".join(lines))
    return 0 if ok else 1


def cmd_trace(a: argparse.Namespace) -> int:
    from rmaplab.trace import record_trace

    cmd = list(a.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UsageError("trace: no command given (rmaplab trace [--out FILE] -- CMD [ARGS...])")
    out = Path(a.out) if a.out else Path(f"{Path(cmd[0]).name}.trace.gz")
    return record_trace(cmd, out, quiet=a.quiet, grace=a.grace)


def cmd_replay(a: argparse.Namespace) -> int:
    import json

    from rmaplab.designs import make_design
    from rmaplab.fuzz.atomic import write_atomic
    from rmaplab.replay import format_result, kernel_vs_model, replay, result_json

    designs = a.designs.split(",")
    for d in designs:
        make_design(d)
    for t in a.traces:
        if not Path(t).is_file():
            raise UsageError(f"replay: no such trace file: {t}")
    if a.json and a.json != "-" and (a.json.endswith(".gz") or a.json in a.traces):
        # '--json TRACE TRACE2' would take the first trace as the output file
        raise UsageError(f"replay: --json {a.json} looks like a trace: refusing to overwrite "
                         "it (write --json=OUT.json, or put --json after the traces)")
    ok, results = True, []
    for t in a.traces:
        prog = _progress(a, f"replay {Path(t).name}", None, "events")
        try:
            r = replay(t, designs, walks=not a.no_walks, allow_incomplete=a.allow_incomplete,
                       progress=prog,
                       check_every=(a.check_every or -1) if a.check else 0)
        finally:
            prog.close()
        if a.json != "-":
            print("\n".join(format_result(r)))
        results.append(result_json(r))
        if "classic" in r.runs and any(k != m for _w, k, m in kernel_vs_model(r)):
            ok = False
        if "classic" in r.runs and r.runs["classic"].divergences:
            ok = False  # the other designs may merge differently by design
        if any(run.violation for run in r.runs.values()):
            ok = False
    doc = results[0] if len(results) == 1 else results
    if a.json == "-":
        print(json.dumps(doc, indent=1, sort_keys=True))
    elif a.json:
        write_atomic(a.json, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return 0 if ok else 1


def cmd_bench(a: argparse.Namespace) -> int:
    from rmaplab.bench import replay_bench, run_bench
    from rmaplab.designs import make_design

    designs = a.design.split(",")
    for d in designs:
        make_design(d)
    if a.replay:
        for t in a.replay:
            if not Path(t).is_file():
                raise UsageError(f"bench: no such trace file: {t}")
        print("\n".join(replay_bench(a.replay, designs, a.repeat)))
        return 0
    for d in designs:
        print("\n".join(run_bench(d, a.vmas, a.children, a.repeat)))
    return 0


DEFAULT_VERDICT_DESIGNS = ("classic,lazy,lazy-single-address,lazy-merge-any,"
                           "lazy-no-upgrade-on-mremap,cowctx,cowctx-poc-shortcut,scalable-cow,"
                           "scalable-cow-no-merge-check")


class _Parser(argparse.ArgumentParser):
    """Bad options: one line naming the problem, exit status 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="rmaplab",
        description="Executable laboratory for Linux anonymous reverse-mapping designs.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run scenarios on the model, print measure/maps/error lines")
    r.add_argument("--design", default="classic")
    r.add_argument("--extra", action="store_true",
                   help="add the design's extra measure fields (vmas=, bytes=, ...)")
    r.add_argument("files", nargs="+", metavar="FILE")
    r.set_defaults(fn=cmd_run)

    k = sub.add_parser("kernel", help="run scenarios on the live kernel (root)")
    k.add_argument("--method", choices=("trace", "slab"), default="trace",
                   help="count by kmem tracepoints (exact, default) or slab shrink+objects")
    k.add_argument("--repeat", type=_count(1), default=None,
                   help="consecutive agreeing runs required (default 1 trace, 2 slab)")
    k.add_argument("files", nargs="+", metavar="FILE")
    k.set_defaults(fn=cmd_kernel)

    v = sub.add_parser("validate", help="run on model and kernel, print the differences")
    v.add_argument("--design", default="classic")
    v.add_argument("--method", choices=("trace", "slab"), default="trace")
    v.add_argument("--repeat", type=_count(1), default=None)
    v.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.set_defaults(fn=cmd_validate)

    c = sub.add_parser("check", help="check rmap_walk against ground truth after every op")
    c.add_argument("--design", default="classic", help="design name (or several, comma-separated)")
    c.add_argument("--random", type=_count(1), default=0, metavar="OPS",
                   help="check this many random ops instead of files")
    c.add_argument("--seed", type=_count(0), default=1)
    c.add_argument("--ops-per-scenario", type=_count(1), default=200)
    c.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    c.add_argument("--explain", action="store_true",
                   help="under each violation, the state after the failing line: every VMA "
                   "and its rmap objects, the walk of the folio, what it found and MISSED")
    c.add_argument("files", nargs="*", metavar="FILE")
    c.set_defaults(fn=cmd_check)

    vd = sub.add_parser("verdicts", help="design x scenario verdict table (Markdown); "
                        "fails if a verdict differs from the scenario's '# expect:' line")
    vd.add_argument("--designs", default=DEFAULT_VERDICT_DESIGNS)
    vd.add_argument("files", nargs="+", metavar="FILE")
    vd.set_defaults(fn=cmd_verdicts)

    cp = sub.add_parser("compare", help="memory per object kind under several designs")
    cp.add_argument("--designs", default="classic,lazy")
    cp.add_argument("--no-walks", action="store_true",
                    help="skip walking every folio at each measure (memory tables only)")
    cp.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    cp.add_argument("files", nargs="+", metavar="FILE")
    cp.set_defaults(fn=cmd_compare)

    wl = sub.add_parser("workload", help="write a workload scenario")
    wl.add_argument("kind", choices=("android", "forktree"))
    wl.add_argument("--vmas", type=_count(1), default=1000, help="forktree: VMAs of the root")
    wl.add_argument("--width", type=_count(1), default=4, help="forktree: children per process")
    wl.add_argument("--depth", type=_count(0), default=3, help="forktree: fork levels")
    wl.add_argument("--cow", type=_count(0), default=10, help="forktree: pages each child COWs")
    wl.add_argument("--remap", type=_count(0), default=50,
                    help="forktree: faulted VMAs moved by mremap before forking")
    wl.add_argument("--apps", type=_count(1), default=24)
    wl.add_argument("--fork-fraction", type=_fraction, default=0.41)
    wl.add_argument("--seed", type=_count(0), default=1)
    wl.add_argument("--max-pages", type=_count(1), default=4)
    wl.add_argument("--touch-pages", type=_count(0), default=2)
    wl.add_argument("--smaps", default=None, help="directory of *.smaps dumps")
    wl.add_argument("--out", default=None, help="write here (atomically) instead of stdout")
    wl.set_defaults(fn=cmd_workload)

    fz = sub.add_parser("fuzz", help="random scenarios, checked and shrunk (campaigns)")
    fz.add_argument("--design", required=True, help="design(s), comma-separated: also differential")
    fz.add_argument("--ops", type=_count(1), default=None,
                    help="stop after this many scenario ops (each checked under every design)")
    fz.add_argument("--seconds", type=_duration, default=None, help="stop after this long")
    fz.add_argument("--seed", type=_count(0), default=1)
    fz.add_argument("--jobs", type=_count(1), default=1, help="local worker processes")
    fz.add_argument("--dask", default=None, metavar="tcp://HOST:PORT",
                    help="run the shards on this Dask scheduler (pip install 'rmaplab[dask]')")
    fz.add_argument("--out", default=None, help="findings directory (resumable checkpoint)")
    fz.add_argument("--ops-per-scenario", type=_count(1), default=200)
    fz.add_argument("--no-shrink", action="store_true")
    fz.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    fz.set_defaults(fn=cmd_fuzz)

    xp = sub.add_parser("explore", help="explore the interleavings of a litmus file's "
                        "racing kernel paths (exit 1 if a violation is found)")
    xp.add_argument("--design", default=None,
                    help="design(s), comma-separated (default: those of the file's "
                         "'# expect:' line)")
    xp.add_argument("--bound", type=_bound, default=3,
                    help="preemption bound of the exhaustive search, or 'all' (default 3)")
    xp.add_argument("--random", type=_count(0), default=0, metavar="RUNS",
                    help="PCT random schedules instead of the exhaustive search")
    xp.add_argument("--depth", type=_count(1), default=3, help="PCT depth (priority changes + 1)")
    xp.add_argument("--seed", type=_count(0), default=1)
    xp.add_argument("--schedule", default=None, metavar="A,B,...",
                    help="replay this schedule (as printed with a violation) and print it")
    xp.add_argument("--no-lock-order", action="store_true",
                    help="do not check the documented lock order (deadlocks are still found)")
    xp.add_argument("--no-rcu-table-free", action="store_true",
                    help="model a kernel without CONFIG_MMU_GATHER_RCU_TABLE_FREE: page "
                         "tables are reused at once, even under RCU")
    xp.add_argument("--every", action="store_true",
                    help="go on after a violation and report one schedule per kind of "
                         "violation")
    xp.add_argument("--table", action="store_true",
                    help="Markdown table litmus x design; exit 1 if a verdict differs "
                         "from a file's '# expect:' line")
    xp.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    xp.add_argument("files", nargs="*", metavar="FILE")
    xp.set_defaults(fn=cmd_explore)

    dr = sub.add_parser("draw", help="a picture of a design's structures after a scenario line")
    dr.add_argument("--design", default="classic")
    dr.add_argument("--at", type=_count(1), default=None, metavar="LINE",
                    help="the state after this line (default: the end)")
    dr.add_argument("--folio", type=_count(1), default=None, metavar="N",
                    help="also this folio: where it is mapped, what its walk visits and misses")
    dr.add_argument("--format", choices=("svg", "dot", "txt"), default="svg")
    dr.add_argument("--out", default=None, help="write here (atomically) instead of stdout")
    dr.add_argument("file", metavar="FILE")
    dr.set_defaults(fn=cmd_draw)

    rp = sub.add_parser("report", help="one self-contained HTML page per scenario: memory, "
                        "live objects over time, walk costs, pictures")
    rp.add_argument("--designs", default="classic,lazy,cowctx")
    rp.add_argument("--out", required=True, help="directory for the pages")
    rp.add_argument("--at", default=None, metavar="LINE,...",
                    help="add pictures of the structures after these lines")
    rp.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    rp.add_argument("files", nargs="+", metavar="FILE")
    rp.set_defaults(fn=cmd_report)

    ds = sub.add_parser("designs", help="list every design, what it is, and its options")
    ds.set_defaults(fn=cmd_designs)

    ex = sub.add_parser("export-c", help="a scenario as a standalone C program (selftest style)")
    ex.add_argument("file", metavar="FILE")
    ex.set_defaults(fn=cmd_export_c)

    g = sub.add_parser("generate", help="print a random scenario")
    g.add_argument("--seed", type=_count(0), default=1)
    g.add_argument("--ops", type=_count(1), default=40)
    g.set_defaults(fn=cmd_generate)

    rec = sub.add_parser("record", help="record kernel output next to scenarios (FILE.out)")
    rec.add_argument("--method", choices=("trace", "slab"), default="trace")
    rec.add_argument("--runs", type=_count(1), default=2, help="independent runs that must agree")
    rec.add_argument("--force", action="store_true", help="overwrite existing recordings")
    rec.add_argument("files", nargs="+", metavar="FILE")
    rec.set_defaults(fn=cmd_record)

    tr = sub.add_parser("trace", help="run CMD on the live kernel and record its process tree's "
                        "anonymous-rmap activity (docs/trace-format.md)")
    tr.add_argument("--out", help="trace file (default: CMD's name + .trace.gz)")
    tr.add_argument("--grace", type=_duration, default=10.0,
                    help="seconds descendants may outlive CMD before they are killed (10)")
    tr.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")
    tr.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    tr.set_defaults(fn=cmd_trace)

    rpl = sub.add_parser("replay", help="replay traces (rmaplab trace) through the designs; "
                         "the classic model against the kernel's own allocations")
    rpl.add_argument("--designs", "--design", dest="designs", default="classic,lazy,cowctx",
                     help="designs to replay through, comma-separated (classic,lazy,cowctx)")
    rpl.add_argument("--json", nargs="?", const="-", metavar="FILE",
                     help="print one JSON object instead of the text (or write it to FILE)")
    rpl.add_argument("--check", action="store_true",
                     help="run rmaplab check's oracle (every mapped folio's walk against the "
                     "page tables, invariants) every --check-every events and at each exit "
                     "snapshot; exit 1 on a violation")
    rpl.add_argument("--check-every", type=_count(0), default=2000, metavar="N",
                     help="events between checks with --check (2000; 0: after every syscall, "
                     "fork, exec, exit and snapshot)")
    rpl.add_argument("--no-walks", action="store_true",
                     help="skip the second pass measuring rmap walks at each design's peak")
    rpl.add_argument("--allow-incomplete", action="store_true",
                     help="replay a trace that lost events (its numbers are then a lower bound)")
    rpl.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    rpl.add_argument("traces", nargs="+", metavar="TRACE")
    rpl.set_defaults(fn=cmd_replay)

    b = sub.add_parser("bench", help="fixed synthetic workload: fault ops/s and fork cost")
    b.add_argument("--design", default="classic")
    b.add_argument("--vmas", type=_count(1), default=3000)
    b.add_argument("--children", type=_count(1), default=50)
    b.add_argument("--repeat", type=_count(1), default=3)
    b.add_argument("--replay", nargs="+", metavar="TRACE",
                   help="instead: replay speed of these traces, per design (events/s)")
    b.set_defaults(fn=cmd_bench)
    return p


def tune_gc() -> None:
    """The model allocates many small objects with reference cycles (a VMA
    and its mm, a root anon_vma and itself): raise the collector's
    thresholds so that young-generation scans do not dominate large runs
    (measured: -20% time per modelled fork), and freeze start-up objects."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


class Terminated(KeyboardInterrupt):
    """SIGTERM: stop like Ctrl-C (cleanups run), exit status 143."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    tune_gc()
    parser = build_parser()
    a = parser.parse_args(argv)
    old = signal.signal(signal.SIGTERM, _terminated)
    try:
        return int(a.fn(a))
    except KernelUnavailable as e:
        print(f"rmaplab: live kernel unavailable: {e}", file=sys.stderr)
        return 3
    except RmaplabError as e:
        print(f"rmaplab: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt as e:
        print("rmaplab: interrupted" + (" (SIGTERM)" if isinstance(e, Terminated) else ""),
              file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
