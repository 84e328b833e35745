"""rmaplab replay: real programs' traces through the designs, the classic
model checked, call site by call site, against the kernel's own anon_vma and
anon_vma_chain allocations recorded in the same run.

Expected result first: on every committed trace (a fork-and-thread C
program, a shell pipeline, a gcc step, a CPython multiprocessing pool) the
classic model allocates and frees exactly what the kernel did at every call
site, reaches the same peak, and leaves the VMAs the kernel left after every
syscall."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rmaplab.cli import main
from rmaplab.replay import kernel_vs_model, replay
from rmaplab.trace.format import (
    Call,
    End,
    Exec,
    Fault,
    Fork,
    Ret,
    Start,
    Vma,
    make_header,
    write_events,
)

DATA = Path(__file__).resolve().parent / "data" / "traces"
TRACES = sorted(DATA.glob("*.trace.gz"))


def test_committed_traces_exist() -> None:
    assert {p.name for p in TRACES} >= {"mmfork.trace.gz", "sh-pipe.trace.gz", "cc-c.trace.gz",
                                        "pool.trace.gz"}


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name.split(".")[0])
def test_classic_model_is_the_kernel(path: Path) -> None:
    r = replay(path, ["classic"], walks=False)
    rows = kernel_vs_model(r)
    assert [w for w, k, m in rows if k != m] == []
    sites = {w: k for w, k, _m in rows}
    assert sites["A av __anon_vma_prepare"] > 0 and sites["D avc unlink_anon_vmas"] > 0
    run = r.runs["classic"]
    assert run.divergences == 0, run.first
    assert run.refused_faults == 0
    # at every exit snapshot the model's anonymous pages are the kernel's
    assert run.agreeing_pages > 0 and run.model_only_pages == 0 and run.synced_pages == 0
    # and the recording closed: everything allocated was freed, in both
    assert all(v == 0 for v in r.kernel.live.values())
    assert run.machine.design.memory()["anon_vma"][0] == 0


def test_every_design_replays_the_pool() -> None:
    """Same program, three designs: the lazy and cowctx anon_vma counts are
    below classic's at their peaks (what the series claims), and the walk
    pass measured every mapped folio at each peak."""
    r = replay(DATA / "pool.trace.gz", ["classic", "lazy", "cowctx"])
    c, lz, cw = (r.runs[d] for d in ("classic", "lazy", "cowctx"))
    assert lz.peak["anon_vma"][0] < c.peak["anon_vma"][0]
    assert cw.peak.get("anon_vma", (0, 0))[0] == 0 and cw.peak["cow_context"][0] > 0
    for run in (c, lz, cw):
        assert run.walks and min(run.walks) >= 1
        assert run.agreeing_pages == c.agreeing_pages


def _vma(start: int, end: int, perms: str = "rw-p", flags: str = "rd,wr,mr,mw,me,ac",
         anon: tuple[tuple[int, int, str], ...] | None = None, path: str = "") -> Vma:
    return Vma(start, end, perms, 0, "00:00", 0, None, tuple(flags.split(",")), anon, path)


def _started() -> list:
    """A root task that has exec'd /bin/x: a stack with one page, nothing else."""
    stack = _vma(0x7FFF00000000, 0x7FFF00021000, flags="rd,wr,mr,mw,me,gd,ac",
                 anon=((0x20, 0x20, ""),), path="[stack]")
    return [Start(1, 0, "/bin/x", 0), Call(1, 1, "execve", (0,) * 6, 0),
            Exec(1, 2, 1, 0x600000000, "/bin/x", (stack,), 0), Ret(1, 3, "execve", 0, (), 0)]


def _synthetic(tmp: Path, events: list) -> Path:
    out = tmp / "t.trace.gz"
    header = make_header(["synthetic"], complete=True, thp="always [madvise] never")
    write_events(out, header, [*events, End(1, 99, 0, 0, len(events), 0)])
    return out


def test_munmap_in_flight_is_ordered_before_the_mmap_that_reused_it(tmp_path: Path) -> None:
    """Thread 2's munmap of X is in flight when thread 1's mmap returns X:
    the kernel did the munmap first.  The replay must too (no divergence),
    and say it reordered one munmap."""
    X, L = 0x7F0000000000, 0x4000
    ev = [
        *_started(),
        Call(1, 4, "mmap", (X, L, 3, 0x32, 0xFFFFFFFF, 0), 0),
        Ret(1, 5, "mmap", X, (_vma(X, X + L),), 0),
        Call(1, 6, "clone3", (0,) * 6, 0),
        Fork(1, 7, 2, 0x10100 | 0x100, 0),
        Ret(1, 8, "clone3", 2, (), 0),
        Call(2, 9, "munmap", (X, L, 0, 0, 0, 0), 0),
        Call(1, 10, "mmap", (0, L, 3, 0x22, 0xFFFFFFFF, 0), 0),
        Ret(1, 11, "mmap", X, (_vma(X, X + L),), 0),
        # read at the munmap's exit: the range holds thread 1's new mapping
        Ret(2, 12, "munmap", 0, (_vma(X, X + L),), 0),
    ]
    r = replay(_synthetic(tmp_path, ev), ["classic"], walks=False)
    run = r.runs["classic"]
    assert run.divergences == 0, run.first
    assert run.reordered == 1
    assert [(v.start, v.end) for v in run.tasks[1].mm.vmas if v.start == X >> 12] == \
        [(X >> 12, (X + L) >> 12)]


def test_a_wrong_model_shows_as_a_divergence(tmp_path: Path) -> None:
    """The layout check can fail: a trace whose kernel kept a VMA the model
    unmaps is reported, with its line, and the command exits 1."""
    X, L = 0x7F0000000000, 0x4000
    ev = [
        *_started(),
        Call(1, 4, "mmap", (X, L, 3, 0x32, 0xFFFFFFFF, 0), 0),
        Ret(1, 5, "mmap", X, (_vma(X, X + L),), 0),
        Call(1, 6, "munmap", (X, L, 0, 0, 0, 0), 0),
        Ret(1, 7, "munmap", 0, (_vma(X, X + L),), 0),  # the kernel says it is still there
    ]
    path = _synthetic(tmp_path, ev)
    r = replay(path, ["classic"], walks=False)
    assert r.runs["classic"].divergences == 1
    assert "after munmap" in r.runs["classic"].first[0]
    assert main(["replay", "--quiet", "--designs", "classic", str(path)]) == 1


def test_json_holds_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main(["replay", "--quiet", "--no-walks", "--json", str(out),
                 str(DATA / "mmfork.trace.gz")]) == 0
    doc = json.loads(out.read_text())
    rows = {row["what"]: row for row in doc["kernel_vs_classic"]}
    assert rows["A av anon_vma_fork"]["kernel"] == rows["A av anon_vma_fork"]["model"] > 0
    assert set(doc["designs"]) == {"classic", "lazy", "cowctx"}
    assert "all equal" in capsys.readouterr().out


def _rewrite(src: Path, dst: Path, fn) -> None:
    lines = gzip.decompress(src.read_bytes()).decode().splitlines(keepends=True)
    dst.write_bytes(gzip.compress("".join(fn(lines)).encode()))


@pytest.mark.parametrize("case", ["truncated", "incomplete", "garbage-line", "not-gzip",
                                  "wrong-version"])
def test_bad_traces_one_line_exit_2(tmp_path: Path, case: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    src, bad = DATA / "mmfork.trace.gz", tmp_path / "bad.trace.gz"
    if case == "truncated":
        _rewrite(src, bad, lambda ls: ls[: len(ls) // 2])
    elif case == "incomplete":
        _rewrite(src, bad, lambda ls: [ls[0].replace('"complete":true', '"complete":false'),
                                       *ls[1:]])
    elif case == "garbage-line":
        _rewrite(src, bad, lambda ls: [*ls[:40], "F 1 2 zz 2 u\n", *ls[40:]])
    elif case == "wrong-version":
        _rewrite(src, bad, lambda ls: [ls[0].replace("rmaplab-trace 1 ", "rmaplab-trace 2 "),
                                       *ls[1:]])
    else:
        bad.write_bytes(b"not a trace at all\n")
    out = tmp_path / "r.json"
    assert main(["replay", "--quiet", "--json", str(out), str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0], err
    assert not out.exists()  # nothing written half-way
    if case == "incomplete":
        assert "--allow-incomplete" in err[0]
        assert main(["replay", "--quiet", "--allow-incomplete", str(bad)]) == 0
    if case == "garbage-line":
        assert ":41:" in err[0]  # the 41st line of the file
    if case == "wrong-version":
        assert ":1:" in err[0] and "version" in err[0]


POOL = DATA / "pool.py"


def test_live_record_and_replay(clean_kernel: None, tmp_path: Path) -> None:
    """On this machine: trace a fork+thread+mremap workload now, replay it;
    the classic model must allocate exactly what the kernel did."""
    out = tmp_path / "live.trace.gz"
    assert main(["trace", "--quiet", "--out", str(out), "--", shutil.which("python3") or
                 "python3", str(POOL)]) == 0
    r = replay(out, ["classic"], walks=False)
    assert [w for w, k, m in kernel_vs_model(r) if k != m] == []
    assert r.runs["classic"].divergences == 0, r.runs["classic"].first
    assert subprocess.run(["true"]).returncode == 0


def test_check_after_every_syscall_finds_nothing_on_real_traces() -> None:
    """``replay --check --check-every 0``: the full oracle after every
    syscall, fork, exec, exit and snapshot, for every design."""
    path = DATA / "sh-pipe.trace.gz"
    r = replay(path, ["classic", "lazy", "cowctx", "scalable-cow"], walks=False,
               check_every=-1)
    non_faults = sum(v for k, v in r.applied.items() if not k.startswith("fault"))
    for run in r.runs.values():
        assert run.violation is None, run.violation
        assert run.checks >= non_faults


def test_check_reports_a_flawed_designs_violation(tmp_path: Path) -> None:
    """The replay's oracle is the real one: a design known to miss mappings
    after an mremap of a faulted VMA is caught on a trace that does that."""
    X = 0x7F0000000000
    moved = X + 0x100000
    ev = [
        *_started(),
        Call(1, 4, "mmap", (X, 0x4000, 3, 0x32, 0xFFFFFFFF, 0), 0),
        Ret(1, 5, "mmap", X, (_vma(X, X + 0x4000),), 0),
        Fault(1, 6, X, 6, True, 0),
        Call(1, 7, "mremap", (X, 0x4000, 0x4000, 3, moved, 0), 0),
        Ret(1, 8, "mremap", moved, (_vma(moved, moved + 0x4000),), 0),
        Call(1, 9, "clone", (0x1200011, 0, 0, 0, 0, 0), 0),
        Fork(1, 10, 2, 0x1200000, 0),
        Ret(1, 11, "clone", 2, (), 0),
    ]
    path = _synthetic(tmp_path, ev)
    r = replay(path, ["classic", "lazy-no-upgrade-on-mremap"], walks=False, check_every=-1)
    assert r.runs["classic"].violation is None
    bad = r.runs["lazy-no-upgrade-on-mremap"].violation
    assert bad is not None and "misses" in bad


def test_json_never_overwrites_a_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--json`` takes an optional FILE: ``--json A.trace.gz B.trace.gz``
    must not write JSON over trace A."""
    a = tmp_path / "a.trace.gz"
    a.write_bytes((DATA / "mmfork.trace.gz").read_bytes())
    before = a.read_bytes()
    assert main(["replay", "--quiet", "--json", str(a), str(DATA / "sh-pipe.trace.gz")]) == 2
    assert a.read_bytes() == before
    assert "refusing to overwrite" in capsys.readouterr().err
