"""Record a trace of a real program tree on the live kernel (docs/trace-format.md).

Two cooperating parts:

* ``tracer.c`` (compiled on first use) runs the command under ptrace and a
  seccomp filter, so that only memory-management and task syscalls stop.  At
  every stop it writes a record (syscall arguments and result, the VMAs the
  syscall left, exec layouts, exit snapshots of anonymous pages) to a side
  file, then writes ``rmaplab SEQ`` to the private tracefs instance's
  ``trace_marker``.
* this module owns the instance: it records ``kmem:kmem_cache_alloc/free`` of
  anon_vma and anon_vma_chain (call-site sets of :mod:`rmaplab.kernel.counters`),
  ``exceptions:page_fault_user/kernel`` and ``task:task_newtask`` of the traced
  tree only (``set_event_pid`` + ``event-fork``), streams ``trace_pipe`` (so the
  ring buffer drains while the command runs), and writes each kernel event,
  and each tracer record at the place of its marker, to the trace.

Everything lands in the one ring buffer, stamped by one global clock
(``trace_clock=mono``), and comes out of ``trace_pipe`` merged in timestamp
order: that is the order of the trace.
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from rmaplab.errors import KernelUnavailable, RmaplabError, UsageError
from rmaplab.kernel.counters import (
    AVC_ALLOC_SITES,
    AVC_FREE_SITES,
    tracefs_root,
    unavailable_reason,
)
from rmaplab.kernel.runner import _set_subreaper, compile_c, kernel_lock
from rmaplab.trace.format import (
    TRACER_VERSION,
    BodyWriter,
    make_header,
    write_trace,
)

TRACER_SRC = Path(__file__).with_name("tracer.c")
#: Exit status of :func:`record_trace` when the trace was written but is
#: incomplete (events lost, tracer failure): the file says why.
INCOMPLETE = 4
GRACE_S = 10.0
EVENTS = ("kmem/kmem_cache_alloc", "kmem/kmem_cache_free", "exceptions/page_fault_user",
          "exceptions/page_fault_kernel", "task/task_newtask")
USER_TOP = 0x800000000000


def build_tracer() -> Path:
    """Compile tracer.c once per source version; the binary's path."""
    return compile_c("tracer", TRACER_SRC.read_bytes(), f"the trace helper {TRACER_SRC}")


def _chain_cache_names() -> list[str]:
    """Names the kmem events of anon_vma_chain objects can carry: the cache is
    merged (/sys/kernel/slab/anon_vma_chain -> :A-0000064), and its events bear
    the name of whichever alias created it.  [] if that cannot be told."""
    slab = Path("/sys/kernel/slab")
    try:
        target = os.path.realpath(slab / "anon_vma_chain")
        return sorted(p.name for p in slab.iterdir()
                      if p.is_symlink() and os.path.realpath(p) == target) or []
    except OSError:
        return []


def _kmem_filter() -> str:
    """name == "anon_vma", or a chain call site: the site test (a symbol lookup
    per event) only for events of the chain's cache, by name (a string test)."""
    sites = " || ".join(f"call_site.function == {s}"
                        for s in sorted(AVC_ALLOC_SITES | AVC_FREE_SITES))
    names = [n for n in _chain_cache_names() if n.replace("_", "").replace("-", "").isalnum()]
    if not names:
        return f'name == "anon_vma" || {sites}'
    alias = " || ".join(f'name == "{n}"' for n in names)
    # spaces around the parentheses: the parser reads "func)" as a symbol name
    return f'name == "anon_vma" || ( ( {alias} ) && ( {sites} ) )'


def _buffer_kb() -> int:
    """Per-CPU ring buffer size: 64 MiB, less on small machines, or $RMAPLAB_TRACE_BUFFER_KB."""
    env = os.environ.get("RMAPLAB_TRACE_BUFFER_KB")
    if env:
        return max(4, int(env))
    kb = 65536
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1])
                kb = min(kb, max(4096, avail // (16 * (os.cpu_count() or 1))))
    except (OSError, ValueError):
        pass
    return kb


class _Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class TraceFailure(Exception):
    """The recording cannot go on (the trace is kept, marked incomplete)."""


class Instance:
    """A private tracefs instance ``rmaplab_<pid>_<n>`` set up for tracing."""

    def __init__(self, root: Path) -> None:
        n = 1
        while (root / "instances" / f"rmaplab_{os.getpid()}_{n}").exists():
            n += 1
        self.dir = root / "instances" / f"rmaplab_{os.getpid()}_{n}"
        self.buffer_kb = _buffer_kb()
        self.created = False

    def w(self, rel: str, value: str) -> None:
        (self.dir / rel).write_text(value)

    def setup(self) -> None:
        try:
            self._setup()
        except OSError as e:
            raise KernelUnavailable(f"cannot set up tracefs instance {self.dir}: "
                                    f"{e.filename or ''}: {e.strerror or e}") from None

    def _setup(self) -> None:
        self.dir.mkdir()
        self.created = True
        self.w("tracing_on", "0")
        self.w("buffer_size_kb", str(self.buffer_kb))
        self.w("trace_clock", "mono")
        for opt, v in (("event-fork", "1"), ("irq-info", "0"), ("record-tgid", "0"),
                       ("hash-ptr", "0"), ("overwrite", "1")):
            with contextlib.suppress(OSError):
                self.w(f"options/{opt}", v)
        self.w("events/kmem/kmem_cache_alloc/filter", _kmem_filter())
        self.w("events/kmem/kmem_cache_free/filter", _kmem_filter())
        self.w("events/exceptions/page_fault_kernel/filter", f"address < {USER_TOP:#x}")
        for ev in EVENTS:
            self.w(f"events/{ev}/enable", "1")
        # tracing_on stays 0: the tracer turns it on once set_event_pid holds
        # the command's pid (an empty pid list would let every task through)

    def losses(self) -> dict[str, int]:
        """Overrun and dropped-event counts per CPU (non-zero ones only)."""
        out: dict[str, int] = {}
        for stats in sorted(self.dir.glob("per_cpu/cpu*/stats")):
            cpu = stats.parent.name
            for line in stats.read_text().splitlines():
                key, _, val = line.partition(":")
                if key.strip() in ("overrun", "commit overrun", "dropped events"):
                    with contextlib.suppress(ValueError):
                        if int(val) > 0:
                            out[f"{cpu} {key.strip()}"] = int(val)
        return out

    def remove(self) -> None:
        if not self.created or not self.dir.exists():
            return
        for rel, v in (("tracing_on", "0"), *((f"events/{e}/enable", "0") for e in EVENTS),
                       ("set_event_pid", "")):
            with contextlib.suppress(OSError):
                self.w(rel, v)
        for _ in range(50):
            try:
                self.dir.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)  # busy while a reader is closing
        self.dir.rmdir()


class _SideFile:
    """The tracer's records (``#SEQ N`` + N lines), read as their markers arrive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self.buf = b""
        self.pos = 0  # start of the first unread record in buf
        self.next_seq = 1

    def take(self, seq: int) -> list[str]:
        if seq != self.next_seq:
            raise TraceFailure(f"tracer record {seq} announced, {self.next_seq} expected "
                               "(a marker was lost)")
        deadline = time.monotonic() + 5.0
        while True:
            rec = self._parse()
            if rec is not None:
                self.next_seq += 1
                return rec
            chunk = os.read(self.fd, 1 << 20)
            if chunk:
                self.buf = self.buf[self.pos:] + chunk
                self.pos = 0
            elif time.monotonic() > deadline:
                raise TraceFailure(f"tracer record {seq} missing from the side file")
            else:
                time.sleep(0.001)

    def _parse(self) -> list[str] | None:
        buf = self.buf
        nl = buf.find(b"\n", self.pos)
        if nl < 0:
            return None
        head = buf[self.pos:nl].split()
        if len(head) != 2 or head[0] != b"#%d" % self.next_seq:
            raise TraceFailure(f"side file out of step at record {self.next_seq}: {head!r}")
        n = int(head[1])
        first = pos = nl + 1
        for _ in range(n):
            nl = buf.find(b"\n", pos)
            if nl < 0:
                return None
            pos = nl + 1
        self.pos = pos
        return buf[first:pos].decode("utf-8", "surrogateescape").split("\n")[:-1]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class _Kmem:
    """Per-kind live pointers allocated in the trace: marks foreign frees and
    allocations of a pointer whose free was never seen."""

    def __init__(self) -> None:
        self.live: dict[str, set[int]] = {"av": set(), "avc": set()}
        self.stats = {k: {"alloc": 0, "free": 0, "foreign_free": 0, "missed_free": 0}
                      for k in ("av", "avc")}

    def alloc(self, kind: str, ptr: int) -> bool:
        live = self.live[kind]
        st = self.stats[kind]
        st["alloc"] += 1
        if ptr in live:
            st["missed_free"] += 1
            return True
        live.add(ptr)
        return False

    def free(self, kind: str, ptr: int) -> bool:
        st = self.stats[kind]
        st["free"] += 1
        try:
            self.live[kind].remove(ptr)
            return True
        except KeyError:
            st["foreign_free"] += 1
            return False

    def summary(self) -> dict[str, dict[str, int]]:
        return {("anon_vma" if k == "av" else "anon_vma_chain"):
                {**v, "live_at_end": len(self.live[k])} for k, v in self.stats.items()}


class _Recording:
    def __init__(self, argv: list[str], exe: str, out: Path, quiet: bool, grace: float,
                 tracer: Path, root: Path) -> None:
        self.argv = argv
        self.exe = exe
        self.out = out
        self.quiet = quiet
        self.grace = grace
        self.tracer_bin = tracer
        self.inst = Instance(root)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"rmaplab-t-{os.getpid()}-"))
        self.body = BodyWriter(self.tmp / "body.gz")
        self.side_path = self.tmp / "side"
        self.side: _SideFile | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.pipe_fd = -1
        self.kmem = _Kmem()
        self.t0: int | None = None
        self.events = 0
        self.counts: dict[str, int] = {}
        self.lost = 0
        self.reasons: list[str] = []
        self.warnings = 0
        self.end: tuple[int, int, int] | None = None  # root pid, status, killed
        self.end_time = 0
        self.pids: set[int] = set()
        self.tracer_pid = -1
        self.root_pid = 0
        self.odd_lines = 0
        self.partial = ""
        self.signum = 0

    # -- life cycle --------------------------------------------------------------

    def run(self) -> int:
        start_wall = time.time()
        t_start = time.monotonic()
        status = 0
        interrupted = 0
        old = self._signals()
        try:
            try:
                self._start()
                self._loop()
            except _Interrupted as e:
                interrupted = e.signum
                self.reasons.append("interrupted by " + signal.Signals(e.signum).name)
                self._stop_tracer()
                self._drain(0.3)
            except TraceFailure as e:
                self.reasons.append(str(e))
                self._stop_tracer()
                self._drain(0.3)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self._finish_tracer()
            self.reap()
            losses = self.inst.losses() if self.inst.created else {}
            if losses:
                total = sum(losses.values())
                self.lost = max(self.lost, total)
                self.reasons.append("ring buffer lost events: " + ", ".join(
                    f"{k} {v}" for k, v in losses.items()))
            elif self.lost:
                self.reasons.append(f"{self.lost} events lost (LOST lines in trace_pipe)")
            if self.odd_lines:
                self.reasons.append(f"{self.odd_lines} unparsable trace_pipe lines")
            if self.end is None and not interrupted and not self.reasons:
                self.reasons.append("the tracer ended without its end record")
            root, st, killed = self.end if self.end else (self.root_pid, -1, 0)
            self.body.line(f"end {root} {self.end_time} {st} {killed} {self.events}")
            self.body.close()
            header = self._header(start_wall, time.monotonic() - t_start, st, killed)
            try:
                write_trace(self.out, header, self.body.path)
            except OSError as e:
                raise RmaplabError(f"trace: cannot write {self.out}: {e.strerror or e}") from None
            if interrupted:
                print(f"rmaplab: trace interrupted; partial trace (marked incomplete) in "
                      f"{self.out}", file=sys.stderr)
                return 128 + interrupted
            if self.reasons:
                print(f"rmaplab: trace {self.out} is INCOMPLETE: {'; '.join(self.reasons)}",
                      file=sys.stderr)
                return INCOMPLETE
            if not self.quiet:
                mb = self.out.stat().st_size / 1e6
                print(f"rmaplab: trace: {self.events:,} events, {mb:.2f} MB, "
                      f"{time.monotonic() - t_start:.2f} s -> {self.out}", file=sys.stderr)
            status = st
            if st < 0:
                return INCOMPLETE
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)
        finally:
            self._cleanup()
            self._restore(old)

    def _signals(self) -> dict[int, object]:
        old: dict[int, object] = {}

        def handler(signum: int, frame: FrameType | None) -> None:
            # only a flag: raising here could cut a gzip write in half
            if not self.signum:
                self.signum = signum

        try:
            for s in (signal.SIGINT, signal.SIGTERM):
                old[s] = signal.signal(s, handler)
        except ValueError:  # not the main thread: no handlers
            pass
        return old

    @staticmethod
    def _restore(old: dict[int, object]) -> None:
        for s, h in old.items():
            signal.signal(s, h)  # type: ignore[arg-type]

    def _start(self) -> None:
        self.inst.setup()
        self.pipe_fd = os.open(self.inst.dir / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        self.side_path.touch()
        self.side = _SideFile(self.side_path)
        cmd = [str(self.tracer_bin), "--ppid", str(os.getpid()), "--grace", str(self.grace),
               str(self.inst.dir), str(self.side_path), self.exe, *self.argv]
        self.proc = subprocess.Popen(cmd, close_fds=True)
        self.tracer_pid = self.proc.pid

    def _stop_tracer(self) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()  # EXITKILL: every tracee dies with it

    def _finish_tracer(self) -> None:
        if not self.proc:
            return
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        if rc != 0 and not any("interrupted" in r for r in self.reasons):
            if self.end is None:
                self.reasons.append(f"the tracer failed (status {rc})")

    def reap(self) -> None:
        """Reap tracees that were re-parented to us (we are a subreaper)."""
        deadline = time.monotonic() + 2.0
        left = set(self.pids)
        while left and time.monotonic() < deadline:
            for pid in list(left):
                try:
                    got, _ = os.waitpid(pid, os.WNOHANG)
                    if got == pid:
                        left.discard(pid)
                except ChildProcessError:
                    if not Path(f"/proc/{pid}").exists():
                        left.discard(pid)
                    else:
                        try:
                            ppid = int(Path(f"/proc/{pid}/stat").read_text()
                                       .rsplit(")", 1)[1].split()[1])
                        except (OSError, ValueError, IndexError):
                            ppid = -1
                        if ppid != os.getpid():
                            left.discard(pid)  # someone else's child now
            if left:
                time.sleep(0.01)

    def _cleanup(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.pipe_fd >= 0:
            os.close(self.pipe_fd)
            self.pipe_fd = -1
        if self.side:
            self.side.close()
        self.body.close()
        try:
            self.inst.remove()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the stream ---------------------------------------------------------------

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self.pipe_fd, select.POLLIN)
        idle_after_exit = 0.0
        while self.end is None:
            if self.signum:
                raise _Interrupted(self.signum)
            chunk = self._read()
            if chunk:
                self._feed(chunk)  # trace_pipe gives at most a page per read
                continue
            if self.proc and self.proc.poll() is not None:
                # the tracer is gone without its end record: drain, then fail
                if idle_after_exit == 0.0:
                    idle_after_exit = time.monotonic()
                elif time.monotonic() - idle_after_exit > 0.5:
                    raise TraceFailure(f"the tracer died (status {self.proc.returncode}) "
                                       "before the end of the trace")
            poller.poll(50)

    def _read(self) -> bytes:
        try:
            return os.read(self.pipe_fd, 1 << 20)
        except BlockingIOError:
            return b""
        except OSError as e:
            if e.errno == errno.EINTR:
                return b""
            raise

    def _drain(self, seconds: float) -> None:
        """Read what is left after the tracer stopped (best effort)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.pipe_fd >= 0:
            chunk = self._read()
            if chunk:
                try:
                    self._feed(chunk)
                except TraceFailure as e:
                    self.reasons.append(str(e))
                    return
                if self.end is not None:
                    return
            else:
                time.sleep(0.02)

    def _feed(self, chunk: bytes) -> None:
        text = self.partial + chunk.decode("utf-8", "surrogateescape")
        lines = text.split("\n")
        self.partial = lines.pop()
        for line in lines:
            if self.end is not None:
                return
            if line:
                self._line(line)

    def _line(self, line: str) -> None:
        # "<comm:16, right-aligned>-<pid> [<cpu>] <secs>.<usecs>: <event>: <body>"
        if line[16:17] == "-" and line[17:18].isdigit():
            rest = line[17:]
        else:
            dash = line.find("-", 0, 40)
            if line.startswith("CPU:") and "[LOST" in line:
                self._lost(line)
                return
            if dash < 0:
                self._odd(line)
                return
            rest = line[dash + 1:]
        try:
            sp = rest.index(" ")
            pid = rest[:sp]
            j = rest.index("] ", sp) + 2
            ts_s, name, body = rest[j:].lstrip(" ").split(": ", 2)
            secs, usecs = ts_s.split(".")
            ts = int(secs) * 1_000_000 + int(usecs)
        except ValueError:
            self._odd(line)
            return
        if self.t0 is None:
            self.t0 = ts
        t = ts - self.t0
        emit = self.body.line
        try:
            if name == "page_fault_user" or name == "page_fault_kernel":
                # address=0x7f0... ip=... error_code=0x7
                addr = int(body[8:body.index(" ")], 16)
                err = int(body[body.rindex("=") + 1:], 16)
                emit(f"F {pid} {t} {addr:x} {err:x} {'u' if name[11] == 'u' else 'k'}")
                self._count("F")
            elif name == "kmem_cache_alloc" or name == "kmem_cache_free":
                cs, ptr_s, cname = body.split(" ", 3)[:3]
                site = cs[10:].split("+", 1)[0]
                ptr = int(ptr_s[4:], 16)
                alloc = name == "kmem_cache_alloc"
                if cname == "name=anon_vma":
                    kind = "av"
                elif site in (AVC_ALLOC_SITES if alloc else AVC_FREE_SITES):
                    kind = "avc"
                else:
                    # another cache's object at a chain site: not a chain (as in
                    # rmaplab.kernel.counters); counted in the header
                    self._count("kmem_not_rmap")
                    return
                if alloc:
                    flag = "m" if self.kmem.alloc(kind, ptr) else "n"
                    emit(f"A {pid} {t} {kind} {site} {ptr:x} {flag}")
                    self._count("A")
                else:
                    flag = "t" if self.kmem.free(kind, ptr) else "x"
                    emit(f"D {pid} {t} {kind} {site} {ptr:x} {flag}")
                    self._count("D")
            elif name == "task_newtask":
                child = int(body[4:body.index(" ")])
                i = body.rindex(" clone_flags=")
                flags = int(body[i + 13:body.index(" ", i + 13)], 16)
                self.pids.add(child)
                emit(f"fork {pid} {t} {child} {flags:x}")
                self._count("fork")
            elif name == "tracing_mark_write":
                self._marker(int(pid), t, body)
                return
            else:
                self._odd(line)
                return
        except (ValueError, IndexError):
            self._odd(line)
            return
        self.events += 1

    def _count(self, k: str) -> None:
        self.counts[k] = self.counts.get(k, 0) + 1

    def _odd(self, line: str) -> None:
        self.odd_lines += 1
        if self.odd_lines <= 3:
            print(f"rmaplab: trace: unexpected trace_pipe line: {line[:120]!r}",
                  file=sys.stderr)

    def _lost(self, line: str) -> None:
        # "CPU:1 [LOST 123 EVENTS]"
        try:
            cpu = int(line[4:line.index(" ")])
            n = int(line.split("[LOST", 1)[1].split()[0])
        except (ValueError, IndexError):
            cpu, n = -1, 1
        self.lost += n
        self.body.line(f"lost {self.root_pid} {self.end_time} {cpu} {n}")
        self.events += 1

    def _marker(self, pid: int, t: int, body: str) -> None:
        if pid != self.tracer_pid or not body.startswith("rmaplab "):
            self._odd(f"marker from pid {pid}: {body[:60]}")
            return
        assert self.side is not None
        rec = self.side.take(int(body[8:]))
        if not rec:
            raise TraceFailure("empty tracer record")
        verb, tid, rest = (rec[0].split(" ", 2) + [""])[:3]
        self.end_time = t
        if verb == "end":
            st, killed = rest.split(" ")
            self.end = (int(tid), int(st), int(killed))
            return
        self.body.line(f"{verb} {tid} {t} {rest}")
        for v in rec[1:]:
            self.body.line(v)
        self.events += 1
        self._count(verb)
        if verb == "warn":
            self.warnings += 1
        elif verb == "start":
            self.root_pid = int(tid)
            self.pids.add(int(tid))

    def _header(self, wall: float, duration: float, status: int, killed: int) -> dict[str, object]:
        u = platform.uname()
        try:
            thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
        except OSError:
            thp = "unknown"
        return make_header(
            self.argv,
            complete=not self.reasons,
            incomplete_reasons=self.reasons,
            lost_events=self.lost,
            kernel_release=u.release,
            kernel_version=u.version,
            machine=u.machine,
            page_size=os.sysconf("SC_PAGE_SIZE"),
            thp=thp,
            exe=self.exe,
            cwd=os.getcwd(),
            start_time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall)),
            start_unix=round(wall, 6),
            duration_s=round(duration, 3),
            clock="mono",
            time_unit="us",
            buffer_size_kb=self.inst.buffer_kb,
            exit_status=status,
            killed_after_root_exit=killed,
            warnings=self.warnings,
            events=self.events,
            counts=dict(sorted(self.counts.items())),
            kmem=self.kmem.summary(),
            avc_alloc_sites=sorted(AVC_ALLOC_SITES),
            avc_free_sites=sorted(AVC_FREE_SITES),
            tracer_version=TRACER_VERSION,
        )


def record_trace(argv: list[str], out: Path, *, quiet: bool = False,
                 grace: float = GRACE_S) -> int:
    """Run ``argv`` on the live kernel and record its trace in ``out``.

    Returns the command's exit status (128 + signal if it was killed), 130/143
    if interrupted by SIGINT/SIGTERM (a partial trace, marked incomplete, is
    kept), or :data:`INCOMPLETE` if the trace lost events or the recording
    failed (the header says why; readers refuse it by default).  Tasks still
    running ``grace`` seconds after the command itself exited are killed.
    Raises :class:`KernelUnavailable` if the kernel cannot be traced here and
    :class:`UsageError` for a bad command.
    """
    if not argv:
        raise UsageError("trace: no command given")
    why = unavailable_reason("trace")
    if why:
        raise KernelUnavailable(why)
    exe = shutil.which(argv[0])
    if exe is None:
        raise UsageError(f"trace: command not found: {argv[0]}")
    exe = os.path.abspath(exe)
    root = tracefs_root()
    if root is None:
        raise KernelUnavailable("tracefs is not available")
    out = Path(out)
    if out.parent and not out.parent.is_dir():
        raise UsageError(f"trace: no such directory: {out.parent}")
    tracer = build_tracer()
    _set_subreaper()
    with kernel_lock(announce=not quiet):  # sweeps what killed runs left, first
        return _Recording(list(argv), exe, out, quiet, grace, tracer, root).run()

