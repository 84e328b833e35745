"""rmaplab trace: the file format (always) and recordings on the live kernel."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import leftovers
from hypothesis import given, settings
from hypothesis import strategies as st

from rmaplab.errors import ScenarioError
from rmaplab.kernel.cleanup import sweep_stale
from rmaplab.kernel.counters import AVC_ALLOC_SITES, AVC_FREE_SITES
from rmaplab.kernel.runner import kernel_lock
from rmaplab.trace import (
    INCOMPLETE,
    Alloc,
    Call,
    End,
    Event,
    Exec,
    Exit,
    Fault,
    Fork,
    Free,
    Lost,
    Ret,
    Snap,
    Start,
    Vma,
    Warn,
    read_header,
    read_trace,
    record_trace,
)
from rmaplab.trace.format import make_header, quote_path, unquote_path, write_events

DATA = Path(__file__).parent / "data" / "traces"
CLONE_VM, CLONE_VFORK, CLONE_THREAD = 0x100, 0x4000, 0x10000

# ----------------------------------------------------------------------------- format


def sample_events() -> list[Event]:
    stack = Vma(0x7FFC0000_0000, 0x7FFC0002_1000, "rw-p", 0, "00:00", 0, None,
                ("rd", "wr", "mr", "mw", "me", "gd", "ac"), ((31, 32, ""),), "[stack]")
    lib = Vma(0x7F0000000000, 0x7F0000002000, "r-xp", 0x26000, "fe:00", 339380, 1926232,
              None, None, "/usr/lib/libc.so.6")
    odd = Vma(0x10000, 0x210000, "rw-p", 0, "00:00", 0, None, None,
              ((0, 511, "h"), (600, 600, "s")), "/tmp/a b%c\n" + os.fsdecode(b"\xff-"))
    anon = Vma(0x20000, 0x21000, "rw-s", 0, "00:01", 7, 4096, None, (), "")
    return [
        Start(100, 0, "/usr/bin/sh", 0),
        Call(100, 5, "execve", (0x7FFD9C2DD9ED, 1, 2, 3, 4, 0xFFFFFFFFFFFFFFFF), 0),
        Alloc(100, 6, "avc", "__anon_vma_prepare", 0xFFFF888120C5FC40, False, 0),
        Alloc(100, 6, "av", "__anon_vma_prepare", 0xFFFF88810AFC0340, True, 0),
        Free(100, 7, "avc", "unlink_anon_vmas", 0xFFFF888120C5F300, False, 0),
        Exec(100, 9, 100, 0x55D0C9B1B000, "/usr/bin/dash", (lib, stack), 0),
        Ret(100, 10, "execve", 0, (), 0),
        Ret(100, 11, "mmap", -12, (odd, anon), 0),
        Fault(100, 12, 0x7F9BCDD2EA10, 3, False, 0),
        Fault(100, 12, 0x7FFF166A49A8, 7, True, 0),
        Fork(100, 13, 101, CLONE_VM | CLONE_THREAD, 0),
        Free(101, 14, "av", "__put_anon_vma", 0xFFFF88810AFC0340, True, 0),
        Warn(101, 15, "unmodelled ia32 syscall 192 args 0 1", 0),
        Lost(100, 16, 1, 42, 0),
        Exit(101, 17, True, 0x100, 0),
        Snap(101, 17, "exit", (stack,), 0),
        Exit(100, 18, False, 9, 0),
        End(100, 19, 0, 0, 17, 0),
    ]


def write(tmp: Path, events: list[Event], complete: bool = True, **header: object) -> Path:
    p = tmp / "t.trace.gz"
    write_events(p, make_header(["sh", "-c", "x"], complete=complete, **header), events)
    return p


def no_lines(events: list[Event]) -> list[Event]:
    return [e._replace(line=0) for e in events]


def test_round_trip(tmp_path: Path) -> None:
    ev = sample_events()
    p = write(tmp_path, ev, kernel_release="6.18.44")
    got = list(read_trace(p))
    assert no_lines(got) == ev
    assert got[0].line == 2 and got[-1].line == 2 + len(ev) - 1 + 2 + 2 + 1  # + v lines
    assert read_header(p)["kernel_release"] == "6.18.44"
    odd = next(e for e in got if isinstance(e, Ret) and e.vmas).vmas[0]
    assert odd.path.startswith("/tmp/a b%c\n") and odd.anon == ((0, 511, "h"), (600, 600, "s"))
    assert next(e for e in got if isinstance(e, Fault) and e.user).write


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_path_quoting(raw: bytes) -> None:
    path = os.fsdecode(raw)
    q = quote_path(path)
    assert " " not in q and "\n" not in q and q.isascii() and q
    assert unquote_path(q) == path


def gz(tmp: Path, text: bytes, name: str = "bad.trace.gz") -> Path:
    p = tmp / name
    p.write_bytes(gzip.compress(text))
    return p


def refused(p: Path, line: int, fragment: str, **kw: bool) -> None:
    with pytest.raises(ScenarioError) as ei:
        list(read_trace(p, **kw))
    e = ei.value
    assert (e.path, e.line) == (str(p), line), str(e)
    assert fragment in e.message, str(e)
    assert "\n" not in str(e)


def good_text(tmp: Path) -> bytes:
    return gzip.decompress(write(tmp, sample_events()).read_bytes())


def test_truncated_gzip(tmp_path: Path) -> None:
    data = write(tmp_path, sample_events()).read_bytes()
    p = tmp_path / "cut.trace.gz"
    p.write_bytes(data[:-30])
    with pytest.raises(ScenarioError) as ei:
        list(read_trace(p))
    assert "truncated" in ei.value.message and ei.value.line > 1


def test_truncated_text(tmp_path: Path) -> None:
    lines = good_text(tmp_path).split(b"\n")
    refused(gz(tmp_path, b"\n".join(lines[:5]) + b"\n"), 6, "no end line")
    refused(gz(tmp_path, b"\n".join(lines[:5])), 5, "last line incomplete")


def test_wrong_version_and_magic(tmp_path: Path) -> None:
    text = good_text(tmp_path)
    refused(gz(tmp_path, text.replace(b"rmaplab-trace 1 ", b"rmaplab-trace 9 ", 1)), 1,
            "unsupported trace version 9")
    refused(gz(tmp_path, b"hello world\n"), 1, "not an rmaplab trace")
    refused(gz(tmp_path, b""), 1, "empty file")


def test_garbage_lines(tmp_path: Path) -> None:
    lines = good_text(tmp_path).split(b"\n")
    for bad, frag in ((b"hello there 1", "unknown event"), (b"F 1 2 zz 3 u", "bad F line"),
                      (b"F 1 2 10 3 q", "bad F line"), (b"A 1 2 xx s 10 n", "bad kind"),
                      (b"call 1 2 mmap 0", "expected 7 fields"),
                      (b"v 1 2 rw-p 0 00:00 0 - - - -", "outside an event")):
        text = b"\n".join(lines[:3] + [bad] + lines[3:])
        refused(gz(tmp_path, text), 4, frag)


def test_non_utf8(tmp_path: Path) -> None:
    lines = good_text(tmp_path).split(b"\n")
    refused(gz(tmp_path, b"\n".join(lines[:3] + [b"warn 1 2 \xff\xfe"] + lines[3:])), 4,
            "not UTF-8")


def test_not_gzip_and_missing(tmp_path: Path) -> None:
    p = tmp_path / "plain.trace.gz"
    p.write_bytes(b"rmaplab-trace 1 {}\n")
    with pytest.raises(ScenarioError) as ei:
        list(read_trace(p))
    assert ei.value.line == 1 and "gzip" in ei.value.message
    refused(tmp_path / "none.trace.gz", 0, "cannot read")


def test_bad_v_lines_and_counts(tmp_path: Path) -> None:
    lines = good_text(tmp_path).split(b"\n")
    i = next(n for n, ln in enumerate(lines) if ln.startswith(b"exec "))
    bad = lines[:i + 1] + [b"v 10 5 rw-p 0 00:00 0 - - - -"] + lines[i + 2:]
    refused(gz(tmp_path, b"\n".join(bad)), i + 2, "bad v line")
    short = lines[:i + 1]  # the exec announces 2 v lines, the file ends
    refused(gz(tmp_path, b"\n".join(short) + b"\n"), i + 2, "v lines missing")
    end = next(n for n, ln in enumerate(lines) if ln.startswith(b"end "))
    lines[end] = lines[end].rsplit(b" ", 1)[0] + b" 99"
    refused(gz(tmp_path, b"\n".join(lines)), end + 1, "end line counts 99 events")


def test_incomplete_refused_by_default(tmp_path: Path) -> None:
    p = write(tmp_path, sample_events(), complete=False,
              incomplete_reasons=["ring buffer lost events: cpu1 overrun 42"], lost_events=42)
    refused(p, 1, "incomplete trace (ring buffer lost events")
    assert len(list(read_trace(p, allow_incomplete=True))) == len(sample_events())


def test_committed_traces() -> None:
    """The example traces (tests/data/traces/README.md) read back whole."""
    files = sorted(DATA.glob("*.trace.gz"))
    assert len(files) >= 2
    for p in files:
        h = read_header(p)
        assert h["complete"] and h["kernel_release"]
        ev = list(read_trace(p))
        assert isinstance(ev[0], Start) and isinstance(ev[-1], End)
        assert any(isinstance(e, Exec) for e in ev)
    ev = list(read_trace(DATA / "mmfork.trace.gz"))
    assert any(isinstance(e, Fork) and e.flags & CLONE_THREAD for e in ev)
    assert any(isinstance(e, Alloc) and e.kind == "av" for e in ev)


def test_sweep_stale_tmp_dirs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Taking the kernel lock sweeps a dead owner's directory (and says so);
    a live owner's stays."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = Path("/tmp") / f"rmaplab-t-{dead.pid}-pytest"
    live = Path("/tmp") / f"rmaplab-t-{os.getpid()}-pytest"
    for d in (stale, live):
        d.mkdir(exist_ok=True)
        (d / "side").write_text("x")
    try:
        with kernel_lock():
            again = sweep_stale()  # the lock swept already: nothing left of ours
        if Path(f"/proc/{dead.pid}").exists():
            pytest.skip("the dead pid was reused")
        assert str(stale) in capsys.readouterr().err and not stale.exists()
        assert not any(str(stale) in d for d in again)
        assert live.exists()
    finally:
        for d in (stale, live):
            shutil.rmtree(d, ignore_errors=True)


# ----------------------------------------------------------------------------- live kernel


def trace(tmp: Path, argv: list[str], name: str = "t.trace.gz") -> tuple[int, list[Event]]:
    out = tmp / name
    rc = record_trace(argv, out, quiet=True)
    assert leftovers() == []
    return rc, list(read_trace(out, allow_incomplete=True))


def check_order(ev: list[Event]) -> None:
    """Per task, time never goes back; a task's first event follows its fork."""
    last: dict[int, int] = {}
    born: set[int] = {ev[0].tid}
    for e in ev:
        assert e.time >= last.get(e.tid, -1), e
        last[e.tid] = e.time
        if isinstance(e, Fork):
            born.add(e.child)
        elif not isinstance(e, (End, Lost)):
            assert e.tid in born or isinstance(e, Exec), e


def test_live_true(clean_kernel: None, tmp_path: Path) -> None:
    rc, ev = trace(tmp_path, ["/bin/true"])
    assert rc == 0
    h = read_header(tmp_path / "t.trace.gz")
    assert h["complete"] and h["lost_events"] == 0 and h["exit_status"] == 0
    kinds = [type(e).__name__ for e in ev]
    assert kinds[0] == "Start" and "Exec" in kinds and kinds[-1] == "End"
    # the root's first traced syscall is its execve (faults of its pre-exec mm may precede)
    assert next(e for e in ev if isinstance(e, Call)).name == "execve"
    ex = next(e for e in ev if isinstance(e, Exec))
    stack = next(v for v in ex.vmas if v.path == "[stack]")
    assert stack.anon and stack.vmflags and "gd" in stack.vmflags  # filled by execve
    assert ex.start_brk > 0 and any(v.path == ex.exe and v.file_size for v in ex.vmas)
    assert any(isinstance(e, Exit) and e.stopped for e in ev)
    assert any(isinstance(e, Snap) and e.reason == "exit" for e in ev)
    allocs = [e for e in ev if isinstance(e, Alloc)]
    assert allocs and {e.site for e in allocs if e.kind == "avc"} <= AVC_ALLOC_SITES
    assert {e.site for e in ev if isinstance(e, Free) and e.kind == "avc"} <= AVC_FREE_SITES
    assert any(isinstance(e, Fault) and e.user and e.write for e in ev)
    km = h["kmem"]
    assert isinstance(km, dict)
    assert km["anon_vma"]["live_at_end"] == 0 and km["anon_vma"]["missed_free"] == 0
    check_order(ev)


def test_live_fork_exec(clean_kernel: None, tmp_path: Path) -> None:
    rc, ev = trace(tmp_path, ["sh", "-c", "ls / | wc -l >/dev/null"])
    assert rc == 0
    forks = [e for e in ev if isinstance(e, Fork)]
    assert len(forks) >= 2 and all(not e.flags & CLONE_VM for e in forks)
    execs = [e for e in ev if isinstance(e, Exec)]
    assert {Path(e.exe).name for e in execs} >= {"ls", "wc"}
    # a forked child is alone in its mm: its execve entry snapshots the old mm
    assert sum(isinstance(e, Snap) and e.reason == "execve" for e in ev) >= 2
    exits = [e for e in ev if isinstance(e, Exit)]
    assert len(exits) == 1 + len(forks)
    check_order(ev)


MMFORK = DATA / "mmfork.c"


def test_live_mmfork(clean_kernel: None, tmp_path: Path) -> None:
    prog = tmp_path / "mmfork"
    cc = shutil.which("cc") or "gcc"
    subprocess.run([cc, "-O2", "-pthread", "-o", str(prog), str(MMFORK)], check=True)
    rc, ev = trace(tmp_path, [str(prog)])
    assert rc == 0
    check_order(ev)
    me = ev[0].tid
    calls = [e for e in ev if isinstance(e, Call) and e.tid == me]
    rets = {e.line: e for e in ev if isinstance(e, Ret)}
    # the 16-page mmap, its 16 write faults, the mprotect split
    big = next(e for e in calls if e.name == "mmap" and e.args[1] == 16 * 4096)
    ret = next(r for r in rets.values() if r.tid == me and r.line > big.line and r.name == "mmap")
    lo = ret.ret
    writes = {e.addr >> 12 for e in ev if isinstance(e, Fault) and e.tid == me and e.write
              and lo <= e.addr < lo + 16 * 4096}
    assert len(writes) == 16
    mp = next(e for e in calls if e.name == "mprotect" and e.args[0] == lo + 4 * 4096)
    r = next(r for r in rets.values() if r.line > mp.line and r.name == "mprotect")
    assert r.ret == 0 and [(v.start, v.perms) for v in r.vmas] == [(lo + 4 * 4096, "r--p")]
    # MAP_POPULATE: no fault, the pages are in the ret's VMA line
    pop = next(e for e in calls if e.name == "mmap" and e.args[3] & 0x8000)
    r = next(r for r in rets.values() if r.line > pop.line and r.name == "mmap")
    v = next(v for v in r.vmas if v.start <= r.ret < v.end)
    first = (r.ret - v.start) >> 12
    assert v.anon and sum(b - a + 1 for a, b, _ in v.anon if a >= first) >= 8
    # a thread (shares the mm) and a forked child (copies it, with anon_vma_fork)
    assert any(isinstance(e, Fork) and e.flags & CLONE_THREAD and e.flags & CLONE_VM for e in ev)
    assert any(isinstance(e, Fork) and not e.flags & CLONE_VM for e in ev)
    sites = Counter(e.site for e in ev if isinstance(e, Alloc))
    assert sites["anon_vma_fork"] > 0 and sites["__anon_vma_prepare"] > 0
    # each process's last task leaves a snapshot; the exit_group with a live
    # thread is waited for, not skipped
    snaps = [e for e in ev if isinstance(e, Snap) and e.reason == "exit"]
    assert len(snaps) == 2
    assert not any(isinstance(e, Warn) for e in ev)
    h = read_header(tmp_path / "t.trace.gz")
    assert h["complete"]
    assert h["kmem"]["anon_vma"]["live_at_end"] == 0  # type: ignore[index]
    assert h["kmem"]["anon_vma_chain"]["live_at_end"] == 0  # type: ignore[index]


RECORDER = """
import sys
from pathlib import Path
from rmaplab.trace import record_trace
sys.exit(record_trace(sys.argv[2:], Path(sys.argv[1]), quiet=True))
"""


def recorder(out: Path, argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", RECORDER, str(out), *argv],
                            stderr=subprocess.PIPE)


def wait_started(p: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while not leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)


def gone(marker: str) -> bool:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:
                pass
    return True


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_live_interrupted(clean_kernel: None, tmp_path: Path, sig: int, status: int) -> None:
    out = tmp_path / "int.trace.gz"
    marker = f"{27 + sig}.123"
    p = recorder(out, ["sh", "-c", f"sleep {marker}"])
    wait_started(p)
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    assert p.returncode == status, err
    assert b"interrupted" in err and len(err.strip().splitlines()) == 1
    assert leftovers() == []
    assert gone(marker)
    refused(out, 1, "interrupted by")
    ev = list(read_trace(out, allow_incomplete=True))
    assert isinstance(ev[0], Start) and isinstance(ev[-1], End)


def test_live_sigkill_then_sweep(clean_kernel: None, tmp_path: Path) -> None:
    """kill -9 of the recorder: its helper and the tree die with it, its instance
    and temporary directory stay; the next recording's sweep removes them."""
    marker = "33.456"
    p = recorder(tmp_path / "k.trace.gz", ["sleep", marker])
    wait_started(p)
    p.kill()
    p.wait()
    left = leftovers()
    assert any(x.startswith(f"rmaplab_{p.pid}_") for x in left)
    assert any(x.startswith(f"rmaplab-t-{p.pid}-") for x in left)
    deadline = time.monotonic() + 5
    while not gone(marker) and time.monotonic() < deadline:  # PDEATHSIG, then EXITKILL
        time.sleep(0.05)
    assert gone(marker)
    rc, ev = trace(tmp_path, ["/bin/true"])  # the next run sweeps first
    assert rc == 0 and isinstance(ev[-1], End)
    assert leftovers() == []


def children(pid: int) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(proc.name))
            except (OSError, ValueError):
                pass
    return out


def test_live_helper_killed(clean_kernel: None, tmp_path: Path) -> None:
    """kill -9 of the C helper: the recording fails loudly, the trace is kept
    and marked incomplete, the machine is clean."""
    marker = "31.789"
    out = tmp_path / "h.trace.gz"
    p = recorder(out, ["sleep", marker])
    wait_started(p)
    helper = [c for c in children(p.pid)
              if b"tracer-" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert len(helper) == 1
    os.kill(helper[0], signal.SIGKILL)
    _, err = p.communicate(timeout=30)
    assert p.returncode == INCOMPLETE, err
    assert b"INCOMPLETE" in err and b"tracer died" in err and len(err.strip().splitlines()) == 1
    assert leftovers() == [] and gone(marker)
    refused(out, 1, "tracer died")


def test_live_lost_events_fail_loudly(clean_kernel: None, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A ring buffer too small to keep up: the trace is kept, marked incomplete,
    refused by the reader, and the status says so."""
    monkeypatch.setenv("RMAPLAB_TRACE_BUFFER_KB", "8")
    out = tmp_path / "lost.trace.gz"
    code = ("import mmap\nm = mmap.mmap(-1, 1 << 30)\n"
            "for i in range(0, 1 << 30, 4096):\n    m[i] = 1\n")
    rc = record_trace([sys.executable, "-c", code], out, quiet=True)
    assert leftovers() == []
    h = read_header(out)
    assert rc == INCOMPLETE and not h["complete"]
    assert isinstance(h["lost_events"], int) and h["lost_events"] > 0
    refused(out, 1, "lost events")
