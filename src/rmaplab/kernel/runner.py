"""Run a scenario on the live kernel and print what the model prints.

Each scenario process is a worker (``worker.c``, compiled on first use with
the system C compiler, statically linked) driven over two FIFOs.  ``Pn fork
Pm`` makes worker Pn call fork(); the child opens the FIFOs of Pm.  Files of
the scenario are created (1 page) in a temporary directory and opened by the
runner before P0 starts, so every worker inherits the same descriptors.

Counting (see :mod:`rmaplab.kernel.counters`) starts once P0 is ready.  The
workers' own stacks, data and heap have anon_vmas too, and a fork copies
them; so the runner also executes a *control run* made of the scenario's
fork, exit and measure lines only, and subtracts its counts measure by
measure.

Counts are machine-wide state, so kernel runs are serialised with a lock
file (:data:`LOCK_PATH`): two runs never overlap, in tests or elsewhere.

The runner makes itself a child subreaper (PR_SET_CHILD_SUBREAPER) because
PID 1 on these machines does not reap orphans; a worker whose parent exited
is reparented to the runner.  An exited worker is recognised as a zombie
(its mm is gone by then: exit_mm() runs before exit_notify()) or as gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import os
import resource
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rmaplab.errors import KernelUnavailable, ScenarioError
from rmaplab.kernel.counters import Counter, make_counter
from rmaplab.machine.constants import ARENA_BASE, ARENA_PAGES, PAGE_SIZE
from rmaplab.scenario.ast import Op, Scenario
from rmaplab.scenario.ops import Exit, Fork, KernelArgs, Maps, Measure, c_do_op, kernel_kind
from rmaplab.scenario.output import format_error, format_maps, format_measure

LOCK_PATH = Path(os.environ.get("RMAPLAB_KERNEL_LOCK", "/tmp/rmaplab-kernel.lock"))
WORKER_SRC = Path(__file__).with_name("worker.c")
#: the C helpers of the operations' encodings, shared with the C export
RUNTIME_SRC = Path(__file__).with_name("ops_runtime.c")

PR_SET_CHILD_SUBREAPER = 36
REPLY_TIMEOUT = 60.0


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rmaplab"


def worker_source() -> str:
    """worker.c with the operations' ``do_op`` (generated from
    :mod:`rmaplab.scenario.ops`) in place of its marker."""
    return (WORKER_SRC.read_text().replace("/* @RUNTIME@ */", RUNTIME_SRC.read_text())
            .replace("/* @DO_OP@ */", c_do_op()))


def compile_c(name: str, src: bytes, what: str,
              flag_sets: tuple[list[str], ...] = ([],)) -> Path:
    """Compile C source ``src`` once per source version into the cache
    (``NAME-<sha256 prefix>``), trying each of ``flag_sets`` in turn; the
    binary's path.  ``what`` names it in errors (KernelUnavailable: no
    compiler, a compiler that cannot run, or every attempt failing)."""
    out = cache_dir() / f"{name}-{hashlib.sha256(src).hexdigest()[:16]}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise KernelUnavailable(f"no C compiler (cc/gcc) to build {what}")
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    csrc = out.with_suffix(f".c.tmp{os.getpid()}")
    csrc.write_bytes(src)
    try:
        for flags in flag_sets:
            try:
                r = subprocess.run([cc, "-O2", "-Wall", *flags, "-x", "c", "-o", str(tmp),
                                    str(csrc)], capture_output=True, text=True)
            except OSError as e:
                raise KernelUnavailable(f"cannot run the C compiler {cc!r} "
                                        f"({e.strerror or e}): set CC") from None
            if r.returncode == 0:
                os.replace(tmp, out)
                return out
    finally:
        csrc.unlink()
        tmp.unlink(missing_ok=True)
    raise KernelUnavailable(f"cannot compile {what}: {r.stderr.strip().splitlines()[-1:]}")


def build_worker() -> Path:
    """Compile the worker once per source version; returns the binary's path."""
    return compile_c("worker", worker_source().encode(), f"the kernel worker {WORKER_SRC}",
                     (["-static"], []))


def lock_holders(path: Path) -> list[int]:
    """Pids holding a flock on ``path`` (from /proc/locks)."""
    try:
        st = path.stat()
        text = Path("/proc/locks").read_text()
    except OSError:
        return []
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6 and f[1] == "FLOCK" and f[5] == dev and f[4].isdigit():
            out.append(int(f[4]))
    return out


def ancestors() -> set[int]:
    """The pids of this process's ancestors."""
    out: set[int] = set()
    pid = os.getppid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


@contextmanager
def kernel_lock(announce: bool = True) -> Iterator[None]:
    """Serialise live-kernel runs machine-wide: an exclusive flock on
    :data:`LOCK_PATH` (``/tmp/rmaplab-kernel.lock``, or the file named by
    ``RMAPLAB_KERNEL_LOCK``).  When another process holds it, say so on
    stderr (with its pid) and wait.  When an ancestor of this process holds
    it (``flock /tmp/rmaplab-kernel.lock python3 -m pytest``: the caller
    serialises for us), run under that lock instead of waiting forever.
    The file is removed when its holder is done (a waiter then finds its
    lock on a stale inode and starts over), so nothing stays in /tmp."""
    import sys

    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    announced = False
    while True:
        f = open(LOCK_PATH, "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holders = lock_holders(LOCK_PATH)
            mine = ancestors()
            if holders and all(h in mine for h in holders):
                try:
                    _sweep(announce)
                    yield  # our caller holds it for us (and owns the file)
                finally:
                    f.close()
                return
            if announce and not announced:
                who = ", ".join(f"pid {h}" for h in holders) or "another process"
                print(f"rmaplab: waiting for the kernel lock {LOCK_PATH} (held by {who})",
                      file=sys.stderr, flush=True)
                announced = True
            fcntl.flock(f, fcntl.LOCK_EX)
        # the holder before us removed the file when it was done: our lock
        # is on a file nobody else can open any more; take the new one
        try:
            same = os.fstat(f.fileno()).st_ino == os.stat(LOCK_PATH).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()
    try:
        _sweep(announce)
        yield
    finally:
        # leave /tmp as found: remove the file while still holding the lock
        # (a waiter then sees its inode is stale and starts over), then unlock
        with contextlib.suppress(FileNotFoundError):
            os.unlink(LOCK_PATH)
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def _sweep(announce: bool) -> None:
    """What killed runs left (tracefs instances, temp dirs) goes first, under
    the lock (:func:`rmaplab.kernel.cleanup.sweep_stale`), said on stderr."""
    import sys

    from rmaplab.kernel.cleanup import sweep_stale

    for what in sweep_stale():
        if announce:
            print(f"rmaplab: removed stale {what}", file=sys.stderr, flush=True)


def _set_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _proc_state(pid: int) -> str | None:
    """State letter of /proc/PID/stat, or None if the process is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return data[data.rindex(")") + 2]


def read_maps(pid: int) -> list[tuple[int, int, str]]:
    """The VMAs of ``pid`` inside the arena as (first page, last page, 'rwx')."""
    out = []
    lo, hi = ARENA_BASE, ARENA_BASE + ARENA_PAGES * PAGE_SIZE
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        rng, perms = line.split()[:2]
        s, e = (int(x, 16) for x in rng.split("-"))
        if s >= lo and e <= hi:
            out.append(((s - lo) // PAGE_SIZE, (e - lo) // PAGE_SIZE - 1, perms[:3]))
    return out


class Worker:
    """One scenario process on the live kernel."""

    def __init__(self, name: str, fifo_dir: Path) -> None:
        self.name = name
        self.pid = 0
        for suffix in ("in", "out"):
            p = fifo_dir / f"{name}.{suffix}"
            if not p.exists():
                os.mkfifo(p, 0o600)
        # O_RDWR never blocks on a FIFO, whatever the other side does.
        self.wfd = os.open(fifo_dir / f"{name}.in", os.O_RDWR)
        self.rfd = os.open(fifo_dir / f"{name}.out", os.O_RDWR)
        self.buf = b""

    def send(self, cmd: str) -> None:
        os.write(self.wfd, (cmd + "\n").encode())

    def recv(self) -> str:
        deadline = time.monotonic() + REPLY_TIMEOUT
        poller = select.poll()
        poller.register(self.rfd, select.POLLIN)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            r = poller.poll(int(max(0.0, min(left, 0.5)) * 1000))
            if r:
                self.buf += os.read(self.rfd, 4096)
            elif self.pid and _proc_state(self.pid) in (None, "Z", "X"):
                raise KernelUnavailable(f"kernel worker {self.name} (pid {self.pid}) died")
            elif left <= 0:
                raise KernelUnavailable(f"kernel worker {self.name} does not answer")
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()

    def call(self, cmd: str) -> tuple[bool, int]:
        """Send a command; (True, value) on success, (False, errno) on failure."""
        self.send(cmd)
        words = self.recv().split()
        if words[0] == "ok":
            return True, int(words[1]) if len(words) > 1 else 0
        if words[0] == "err":
            return False, int(words[1])
        raise KernelUnavailable(f"unexpected reply from worker {self.name}: {words}")

    def close(self) -> None:
        for fd in (self.wfd, self.rfd):
            try:
                os.close(fd)
            except OSError:
                pass


@dataclass
class RunResult:
    """Output lines of one execution plus the raw counts at each measure."""

    lines: list[str]
    measures: list[tuple[int, int, int]]  # (line, anon_vma, avc)


class _Execution:
    def __init__(self, sc: Scenario, worker_bin: Path, counter: Counter) -> None:
        self.sc = sc
        self.bin = worker_bin
        self.counter = counter
        # the owner's pid in the name: a later run removes it if we die
        self.tmp = Path(tempfile.mkdtemp(prefix=f"rmaplab-k-{os.getpid()}-"))
        self.workers: dict[str, Worker] = {}
        self.pids: set[int] = set()
        self.fds: dict[str, int] = {}
        self.popen: subprocess.Popen[bytes] | None = None

    def run(self) -> RunResult:
        try:
            return self._run()
        finally:
            self._cleanup()

    def _run(self) -> RunResult:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = len(self.sc.files) + 2 * len(self.sc.process_names()) + 64
        if need > soft:
            if need > hard:
                raise KernelUnavailable(f"{self.sc.path}: needs {need} open files, "
                                        f"RLIMIT_NOFILE allows {hard}")
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        for name in self.sc.files:
            path = self.tmp / f"file-{name}"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            os.ftruncate(fd, PAGE_SIZE)
            self.fds[name] = fd
        p0 = Worker("P0", self.tmp)
        self.workers["P0"] = p0
        fds = [str(self.fds[name]) for name in self.sc.files]
        self.popen = subprocess.Popen([str(self.bin), str(self.tmp), "P0", *fds],
                                      pass_fds=tuple(self.fds.values()), close_fds=True)
        p0.pid = self.popen.pid
        self.pids.add(p0.pid)
        if p0.recv() != "ready":
            raise KernelUnavailable("kernel worker P0 did not start")
        self.counter.start(p0.pid)
        lines: list[str] = []
        measures: list[tuple[int, int, int]] = []
        try:
            for op in self.sc.ops:
                self._op(op, lines, measures)
        finally:
            self.counter.stop()
        return RunResult(lines, measures)

    def _op(self, op: Op, lines: list[str], measures: list[tuple[int, int, int]]) -> None:
        a = op.action
        if isinstance(a, Measure):
            av, avc = self.counter.read()
            measures.append((op.line, av, avc))
            lines.append(format_measure(op.line, {"anon_vma": av, "avc": avc}))
            return
        assert op.proc is not None
        w = self.workers[op.proc]
        if isinstance(a, Maps):
            lines.append(format_maps(op.proc, read_maps(w.pid)))
            return
        if isinstance(a, Fork):
            child = Worker(a.child, self.tmp)
            ok, v = w.call(f"fork {a.child}")
            if not ok:
                lines.append(format_error(op.line, v))
                child.close()
                return
            child.pid = v
            self.pids.add(v)
            if child.recv() != "ready":
                raise KernelUnavailable(f"kernel worker {a.child} did not start")
            self.workers[a.child] = child
            return
        if isinstance(a, Exit):
            w.send("exit")
            self._wait_exit(w.pid)
            w.close()
            del self.workers[op.proc]
            return
        ok, v = w.call(self._command(a))
        if not ok:
            lines.append(format_error(op.line, v))

    def _command(self, a: object) -> str:
        """``op KIND X0..X5``: the operation's encoding (:mod:`rmaplab.scenario.ops`)."""
        files = {name: i for i, name in enumerate(self.sc.files)}
        k = KernelArgs(lambda page: ARENA_BASE + page * PAGE_SIZE, files.__getitem__)
        args = a.kernel_args(k)  # type: ignore[attr-defined]
        return f"op {kernel_kind(a)} " + " ".join(str(v) for v in args)  # type: ignore[arg-type]

    def _wait_exit(self, pid: int) -> None:
        deadline = time.monotonic() + REPLY_TIMEOUT
        while _proc_state(pid) not in (None, "Z", "X"):
            if time.monotonic() > deadline:
                raise KernelUnavailable(f"worker pid {pid} does not exit")
            time.sleep(0.0005)
        self._reap()

    def _reap(self) -> None:
        for pid in list(self.pids):
            try:
                got, _ = os.waitpid(pid, os.WNOHANG)
                if got == pid:
                    self.pids.discard(pid)
            except ChildProcessError:
                if _proc_state(pid) is None:
                    self.pids.discard(pid)

    def _cleanup(self) -> None:
        for w in self.workers.values():
            w.close()
        for pid in list(self.pids):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while self.pids and time.monotonic() < deadline:
            self._reap()
            if self.pids:
                time.sleep(0.002)
        for fd in self.fds.values():
            os.close(fd)
        shutil.rmtree(self.tmp, ignore_errors=True)


def control_scenario(sc: Scenario) -> Scenario:
    """The scenario's fork, exit and measure lines only (see module doc)."""
    ops = [op for op in sc.ops if isinstance(op.action, (Fork, Exit, Measure))]
    return Scenario(sc.path, ops, [], list(sc.header))


def check_runnable(sc: Scenario) -> None:
    """Refuse a scenario with an operation only the model has."""
    for op in sc.ops:
        if op.action.model_only:
            raise ScenarioError(sc.path, op.line, f"'{op.text}' exists only in the model: "
                                "the kernel runner cannot run it")


def run_on_kernel(sc: Scenario, method: str = "trace", repeat: int | None = None) -> list[str]:
    """Run ``sc`` on the live kernel; output lines as ``rmaplab run`` prints them.

    The scenario and its control run are executed until ``repeat`` consecutive
    results agree (default: 1 for ``trace``, which is exact; 2 for ``slab``).
    """
    check_runnable(sc)
    counter = make_counter(method)
    bin_ = build_worker()
    _set_subreaper()
    need = repeat if repeat is not None else (1 if method == "trace" else 2)
    ctrl = control_scenario(sc)
    results: list[list[str]] = []
    with kernel_lock():
        for _attempt in range(max(need, 1) * 4):
            main = _Execution(sc, bin_, counter).run()
            base = _Execution(ctrl, bin_, counter).run()
            results.append(_subtract(main, base))
            if len(results) >= need and all(r == results[-1] for r in results[-need:]):
                return results[-1]
    raise KernelUnavailable(
        f"{sc.path}: kernel readings did not agree in {len(results)} runs (machine too busy?)")


def _subtract(main: RunResult, base: RunResult) -> list[str]:
    deltas = {line: (av, avc) for line, av, avc in base.measures}
    out = []
    for text in main.lines:
        if text.startswith("measure "):
            line = int(text.split()[1].rstrip(":"))
            av, avc = next((a, c) for ln, a, c in main.measures if ln == line)
            bav, bavc = deltas[line]
            text = format_measure(line, {"anon_vma": av - bav, "avc": avc - bavc})
        out.append(text)
    return out
