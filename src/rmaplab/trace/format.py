"""The rmaplab trace file: writer and streaming reader (docs/trace-format.md).

A trace is gzip-compressed UTF-8 text.  Line 1 is the header::

    rmaplab-trace 1 {"kernel_release": "6.18.44", "argv": [...], ...}

then one event per line, ``VERB TID TIME FIELDS...`` (TIME in microseconds
since the trace started), VMA lines ``v ...`` right after the event that
announces them, and last ``end ...``.  Every field is documented in
docs/trace-format.md.

The file is written in two gzip members: the body is streamed to a temporary
file while the recording runs, and the header (which says whether the trace
is complete, known only at the end) is written first when the file is put
together; gzip readers see one stream.

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> w = BodyWriter(os.path.join(d, "body.gz"))
>>> w.line("start 7 0 /bin/true")
>>> w.line("F 7 12 7f0000001000 6 u")
>>> w.line("end 7 20 0 0 2")
>>> w.close()
>>> p = os.path.join(d, "t.trace.gz")
>>> write_trace(p, make_header(["/bin/true"], complete=True), w.path)
>>> [type(e).__name__ for e in read_trace(p)]
['Start', 'Fault', 'End']
>>> next(e for e in read_trace(p) if isinstance(e, Fault)).write
True
>>> import shutil; shutil.rmtree(d)
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

from rmaplab.errors import ScenarioError

MAGIC = "rmaplab-trace"
VERSION = 1
TRACER_VERSION = "1"


# --------------------------------------------------------------------------- events


class Vma(NamedTuple):
    """One VMA as the kernel showed it (a ``v`` line)."""

    start: int
    end: int
    perms: str  # "rw-p": r/w/x and s(hared) or p(rivate)
    pgoff: int  # file offset in bytes (0 for anonymous VMAs, as /proc/PID/maps)
    dev: str  # "fe:00" (major:minor, hex)
    inode: int
    file_size: int | None  # size of the file behind the VMA (None: no file)
    vmflags: tuple[str, ...] | None  # smaps VmFlags, never empty (None: not read here)
    anon: tuple[tuple[int, int, str], ...] | None  # present anonymous pages, see AnonRange
    path: str  # "" for an anonymous VMA, "[heap]", "[stack]", "/usr/lib/...", ...

    @property
    def pages(self) -> int:
        return (self.end - self.start) // 4096


class Start(NamedTuple):
    """The root task, before its first execve (its mm is a copy of the tracer's)."""

    tid: int
    time: int
    exe: str
    line: int


class Call(NamedTuple):
    """Entry of a traced syscall: the six argument registers, raw."""

    tid: int
    time: int
    name: str
    args: tuple[int, int, int, int, int, int]
    line: int


class Ret(NamedTuple):
    """Exit of a traced syscall; ``vmas``: the VMAs now in its range."""

    tid: int
    time: int
    name: str
    ret: int  # signed: -errno on failure
    vmas: tuple[Vma, ...]
    line: int


class Exec(NamedTuple):
    """A successful execve, before the new program runs; ``vmas``: the new mm."""

    tid: int
    time: int
    old_tid: int  # differs from tid when a non-leader thread exec'd
    start_brk: int  # mm->start_brk (= mm->brk at this point)
    exe: str
    vmas: tuple[Vma, ...]
    line: int


class Exit(NamedTuple):
    """A task exits.  ``stopped``: seen at its exit stop, before it releases its mm
    (the kernel's frees of the mm's teardown follow); otherwise it died without
    one (SIGKILL) and they may precede this event."""

    tid: int
    time: int
    stopped: bool
    status: int  # wait status (exit code << 8 | signal)
    line: int


class Snap(NamedTuple):
    """A quiescent mm's whole layout with its present anonymous pages."""

    tid: int
    time: int
    reason: str  # "exit", "execve", "mlockall", ...
    vmas: tuple[Vma, ...]
    line: int


class Warn(NamedTuple):
    tid: int
    time: int
    text: str
    line: int


class Fork(NamedTuple):
    """task:task_newtask, in the parent's context (after the mm was copied)."""

    tid: int
    time: int
    child: int
    flags: int  # clone flags (CLONE_VM 0x100, CLONE_VFORK 0x4000, CLONE_THREAD 0x10000)
    line: int


class Fault(NamedTuple):
    """exceptions:page_fault_user (user=True) or page_fault_kernel."""

    tid: int
    time: int
    addr: int
    error_code: int  # x86: 1 protection, 2 write, 4 user, 0x10 instruction fetch
    user: bool
    line: int

    @property
    def write(self) -> bool:
        return bool(self.error_code & 2)


class Alloc(NamedTuple):
    """kmem_cache_alloc of an anon_vma ("av") or anon_vma_chain ("avc")."""

    tid: int
    time: int
    kind: str
    site: str
    ptr: int
    reused: bool  # the pointer was still live in the trace: a free was not seen
    line: int


class Free(NamedTuple):
    """kmem_cache_free of an anon_vma or anon_vma_chain."""

    tid: int
    time: int
    kind: str
    site: str
    ptr: int
    traced: bool  # allocated earlier in this trace (False: before it, or unseen)
    line: int


class Lost(NamedTuple):
    """tracefs reported lost events on a CPU here (the trace is incomplete)."""

    tid: int
    time: int
    cpu: int
    lost: int
    line: int


class End(NamedTuple):
    tid: int  # the root
    time: int
    status: int  # the root's wait status (-1: unknown)
    killed: int  # tasks killed because they outlived the root by the grace period
    events: int  # event lines before this one
    line: int


Event = Start | Call | Ret | Exec | Exit | Snap | Warn | Fork | Fault | Alloc | Free | Lost | End


# --------------------------------------------------------------------------- header


def make_header(argv: list[str], *, complete: bool, **fields: object) -> dict[str, object]:
    """The header's JSON object (see docs/trace-format.md)."""
    h: dict[str, object] = {
        "format": MAGIC,
        "version": VERSION,
        "tracer_version": TRACER_VERSION,
        "argv": list(argv),
        "complete": complete,
        "incomplete_reasons": [],
        "lost_events": 0,
    }
    h.update(fields)
    return h


def header_line(header: dict[str, object]) -> str:
    return f"{MAGIC} {VERSION} {json.dumps(header, sort_keys=True, separators=(',', ':'))}"


# --------------------------------------------------------------------------- writing


def quote_path(path: str) -> str:
    """A path as one field: bytes <= 0x20, >= 0x7f and '%' as %XX; "" as "-".

    >>> quote_path("/tmp/a b%"), quote_path(""), quote_path("-"), quote_path("[heap]")
    ('/tmp/a%20b%25', '-', '%2D', '[heap]')
    """
    if not path:
        return "-"
    if path == "-":
        return "%2D"
    raw = os.fsencode(path)
    if all(0x20 < c < 0x7F and c != 0x25 for c in raw):
        return path
    return "".join(chr(c) if 0x20 < c < 0x7F and c != 0x25 else f"%{c:02X}" for c in raw)


def unquote_path(field: str) -> str:
    """Inverse of :func:`quote_path` (undecodable bytes as surrogate escapes)."""
    if field == "-":
        return ""
    if "%" not in field:
        return field
    return os.fsdecode(unquote_to_bytes(field))


def _hex(v: int) -> str:
    return f"{v & 0xFFFFFFFFFFFFFFFF:x}"


def _anon_field(anon: tuple[tuple[int, int, str], ...] | None) -> str:
    if anon is None:
        return "?"
    if not anon:
        return "-"
    return ",".join(f"{a}{k}" if a == b else f"{a}-{b}{k}" for a, b, k in anon)


def format_vma(v: Vma) -> str:
    size = "-" if v.file_size is None else str(v.file_size)
    flags = "-" if v.vmflags is None else (",".join(v.vmflags) or "-")
    return (f"v {v.start:x} {v.end:x} {v.perms} {v.pgoff:x} {v.dev} {v.inode} {size} {flags} "
            f"{_anon_field(v.anon)} {quote_path(v.path)}")


def format_event(e: Event) -> list[str]:
    """The line(s) of one event (an event with VMAs is followed by its v lines)."""
    head = f"{e.tid} {e.time}"
    if isinstance(e, Fault):
        return [f"F {head} {e.addr:x} {e.error_code:x} {'u' if e.user else 'k'}"]
    if isinstance(e, Alloc):
        return [f"A {head} {e.kind} {e.site} {e.ptr:x} {'m' if e.reused else 'n'}"]
    if isinstance(e, Free):
        return [f"D {head} {e.kind} {e.site} {e.ptr:x} {'t' if e.traced else 'x'}"]
    if isinstance(e, Fork):
        return [f"fork {head} {e.child} {e.flags:x}"]
    if isinstance(e, Call):
        return [f"call {head} {e.name} " + " ".join(_hex(a) for a in e.args)]
    if isinstance(e, Ret):
        return [f"ret {head} {e.name} {_hex(e.ret)} {len(e.vmas)}", *map(format_vma, e.vmas)]
    if isinstance(e, Exec):
        return [f"exec {head} {e.old_tid} {e.start_brk:x} {len(e.vmas)} {quote_path(e.exe)}",
                *map(format_vma, e.vmas)]
    if isinstance(e, Snap):
        return [f"snap {head} {e.reason} {len(e.vmas)}", *map(format_vma, e.vmas)]
    if isinstance(e, Exit):
        return [f"exit {head} {'e' if e.stopped else 'k'} {e.status}"]
    if isinstance(e, Start):
        return [f"start {head} {quote_path(e.exe)}"]
    if isinstance(e, Warn):
        return [f"warn {head} {e.text}"]
    if isinstance(e, Lost):
        return [f"lost {head} {e.cpu} {e.lost}"]
    if isinstance(e, End):
        return [f"end {head} {e.status} {e.killed} {e.events}"]
    raise TypeError(e)


class BodyWriter:
    """Streams body lines to a gzip file (never holds the trace in memory)."""

    CHUNK = 2048

    def __init__(self, path: str | Path, level: int = 6) -> None:
        self.path = Path(path)
        self._raw = open(self.path, "wb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=level,
                                            mtime=0)
        self._pending: list[str] = []
        self.lines = 0

    def line(self, text: str) -> None:
        self._pending.append(text)
        if len(self._pending) >= self.CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._gz.write(("\n".join(self._pending) + "\n").encode())
            self.lines += len(self._pending)
            self._pending.clear()

    def close(self) -> None:
        if self._raw.closed:
            return
        self.flush()
        self._gz.close()
        self._raw.close()


def write_trace(out: str | Path, header: dict[str, object], body: str | Path) -> None:
    """Put a trace together: a gzip member with the header line, then the body's
    gzip member(s) copied as they are."""
    with open(out, "wb") as f:
        f.write(gzip.compress((header_line(header) + "\n").encode(), mtime=0))
        with open(body, "rb") as b:
            shutil.copyfileobj(b, f, 1 << 20)


def write_events(out: str | Path, header: dict[str, object], events: list[Event]) -> None:
    """Write a whole trace from events (tests, small traces)."""
    tmp = Path(str(out) + ".body")
    w = BodyWriter(tmp)
    try:
        for e in events:
            for ln in format_event(e):
                w.line(ln)
        w.close()
        write_trace(out, header, tmp)
    finally:
        w.close()
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- reading


class _Bad(Exception):
    """A malformed line (message only; the reader adds path and line)."""


def _int16(s: str) -> int:
    if s[:1] in "+-" or s[:2] in ("0x", "0X") or "_" in s:
        raise ValueError(s)
    return int(s, 16)


def _int10(s: str) -> int:
    if "_" in s or s[:1] == "+":
        raise ValueError(s)
    return int(s)


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _anon(field: str) -> tuple[tuple[int, int, str], ...] | None:
    if field == "?":
        return None
    if field == "-":
        return ()
    out = []
    for part in field.split(","):
        kind = ""
        if part[-1:] in ("h", "s"):
            part, kind = part[:-1], part[-1]
        a, sep, b = part.partition("-")
        first = _int10(a)
        last = _int10(b) if sep else first
        if last < first or first < 0:
            raise ValueError(part)
        out.append((first, last, kind))
    return tuple(out)


def _vma(text: str) -> Vma:
    f = text.split(" ")
    if len(f) != 11 or f[0] != "v":
        raise _Bad(f"expected a v line (11 fields), got {text[:60]!r}")
    try:
        start, end = _int16(f[1]), _int16(f[2])
        if end <= start or len(f[3]) != 4:
            raise ValueError
        size = None if f[7] == "-" else _int10(f[7])
        flags = None if f[8] == "-" else tuple(f[8].split(","))
        return Vma(start, end, f[3], _int16(f[4]), f[5], _int10(f[6]), size, flags,
                   _anon(f[9]), unquote_path(f[10]))
    except ValueError:
        raise _Bad(f"bad v line {text[:60]!r}") from None


class TraceReader:
    """Streams the events of a trace file; ``header`` is read on opening.

    Raises :class:`ScenarioError` (path, line, message) for anything malformed:
    not gzip, truncated, wrong magic or version, unknown verb, bad field,
    non-UTF-8 text, a missing ``end`` line, or (unless ``allow_incomplete``) a
    trace whose header says it is incomplete.
    """

    def __init__(self, path: str | Path, *, allow_incomplete: bool = False) -> None:
        self.path = str(path)
        self.allow_incomplete = allow_incomplete
        self.lineno = 0
        try:
            self._raw = open(self.path, "rb")
        except OSError as e:
            raise ScenarioError(self.path, 0, f"cannot read: {e.strerror or e}") from None
        self._it = self._lines()
        try:
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._raw.close()

    def _err(self, msg: str, line: int | None = None) -> ScenarioError:
        return ScenarioError(self.path, self.lineno if line is None else line, msg)

    def _lines(self) -> Iterator[str]:
        """The decompressed lines (without their newline), gzip members chained;
        an error names the first line that could not be read whole."""
        raw = self._raw
        d = zlib.decompressobj(31)
        fed = False  # the current member has received input
        pending = b""
        while True:
            try:
                data = raw.read(1 << 18)
            except OSError as e:
                raise self._err(f"cannot read: {e}", self.lineno + 1) from None
            if not data:
                break
            parts = []
            while data:
                fed = True
                try:
                    parts.append(d.decompress(data))
                except zlib.error as e:
                    what = "not a gzip file" if self.lineno == 0 and not pending else "corrupt"
                    raise self._err(f"{what} ({e})", self.lineno + 1) from None
                if d.eof:
                    data = d.unused_data
                    d = zlib.decompressobj(31)
                    fed = False
                else:
                    data = b""
            buf = pending + b"".join(parts)
            lines = buf.split(b"\n")
            pending = lines.pop()
            for b in lines:
                self.lineno += 1
                try:
                    yield b.decode("utf-8")
                except UnicodeDecodeError:
                    raise self._err("not UTF-8 text") from None
        if fed:
            raise self._err("truncated trace (gzip stream ends early)", self.lineno + 1)
        if pending:
            self.lineno += 1
            raise self._err("truncated trace (last line incomplete)")

    def _read_header(self) -> dict[str, object]:
        try:
            text = next(self._it)
        except StopIteration:
            raise self._err("empty file (not an rmaplab trace)", 1) from None
        except ScenarioError as e:
            if "UTF-8" in e.message:
                raise self._err("not an rmaplab trace (not UTF-8 text)") from None
            raise
        parts = text.split(" ", 2)
        if parts[0] != MAGIC:
            raise self._err(f"not an rmaplab trace (first line starts {text[:20]!r})")
        if len(parts) < 3 or not parts[1].isdigit():
            raise self._err("bad header line")
        if int(parts[1]) != VERSION:
            raise self._err(f"unsupported trace version {parts[1]} (this rmaplab reads "
                            f"version {VERSION})")
        try:
            header = json.loads(parts[2])
        except ValueError as e:
            raise self._err(f"bad header JSON: {e}") from None
        if not isinstance(header, dict):
            raise self._err("bad header JSON: not an object")
        if not header.get("complete", False) and not self.allow_incomplete:
            why = "; ".join(str(r) for r in header.get("incomplete_reasons") or []) or "unknown"
            raise self._err(f"incomplete trace ({why}); refused (allow_incomplete to read it)")
        return header

    def __iter__(self) -> Iterator[Event]:
        try:
            yield from self._events()
        finally:
            self.close()

    def _events(self) -> Iterator[Event]:
        parsers = _PARSERS
        events = 0
        it = self._it
        for text in it:
            # the hot path: faults are most of a trace
            fs = text.split(" ")
            verb = fs[0]
            line = self.lineno
            try:
                ev: Event
                if verb == "F" and len(fs) == 6:
                    m = fs[5]
                    addr, err = int(fs[3], 16), int(fs[4], 16)
                    if m != "u" and m != "k" or addr < 0 or err < 0:
                        raise ValueError
                    ev = Fault(int(fs[1]), int(fs[2]), addr, err, m == "u", line)
                else:
                    p = parsers.get(verb)
                    if p is None:
                        if verb == "v":
                            raise self._err("v line outside an event with VMAs")
                        raise self._err(f"unknown event {verb[:20]!r}")
                    if len(fs) < 3:
                        raise ValueError
                    ev = p(self, fs, line)
            except _Bad as e:
                raise self._err(str(e), line) from None
            except (ValueError, IndexError):
                raise self._err(f"bad {verb[:20]} line {text[:60]!r}", line) from None
            if type(ev) is End:
                if ev.events != events:
                    raise self._err(f"end line counts {ev.events} events, the trace has "
                                    f"{events}", line)
                yield ev
                if next(it, None) is not None:
                    raise self._err("text after the end line")
                return
            events += 1
            yield ev
        raise self._err("truncated trace (no end line)", self.lineno + 1)

    def vmas(self, n: int) -> tuple[Vma, ...]:
        """The n v lines that follow an event (errors name the v line)."""
        out = []
        for _ in range(n):
            text = next(self._it, None)
            if text is None:
                raise self._err("truncated trace (v lines missing)", self.lineno + 1)
            try:
                out.append(_vma(text))
            except _Bad as e:
                raise self._err(str(e)) from None
        return tuple(out)


def _n(fs: list[str], n: int) -> None:
    if len(fs) != n:
        raise _Bad(f"{fs[0]}: expected {n - 3} fields after the time, got {len(fs) - 3}")


def _p_fault(r: TraceReader, fs: list[str], line: int) -> Event:
    _n(fs, 6)
    raise ValueError  # well-formed F lines take the fast path


_KINDS = ("av", "avc")


def _p_alloc(r: TraceReader, fs: list[str], line: int) -> Event:
    _n(fs, 7)
    if fs[3] not in _KINDS or fs[6] not in ("n", "m"):
        raise _Bad(f"A: bad kind or flag {fs[3]!r} {fs[6]!r}")
    return Alloc(_int10(fs[1]), _int10(fs[2]), fs[3], fs[4], _int16(fs[5]), fs[6] == "m", line)


def _p_free(r: TraceReader, fs: list[str], line: int) -> Event:
    _n(fs, 7)
    if fs[3] not in _KINDS or fs[6] not in ("t", "x"):
        raise _Bad(f"D: bad kind or flag {fs[3]!r} {fs[6]!r}")
    return Free(_int10(fs[1]), _int10(fs[2]), fs[3], fs[4], _int16(fs[5]), fs[6] == "t", line)


def _p_fork(r: TraceReader, fs: list[str], line: int) -> Event:
    _n(fs, 5)
    return Fork(_int10(fs[1]), _int10(fs[2]), _int10(fs[3]), _int16(fs[4]), line)


def _p_call(r: TraceReader, fs: list[str], line: int) -> Event:
    _n(fs, 10)
    a = [_int16(x) for x in fs[4:]]
    return Call(_int10(fs[1]), _int10(fs[2]), fs[3], (a[0], a[1], a[2], a[3], a[4], a[5]), line)


def _p_ret(r: TraceReader, fs: list[str], line: int) -> Event:
    _n(fs, 6)
    return Ret(_int10(fs[1]), _int10(fs[2]), fs[3], _signed64(_int16(fs[4])),
               r.vmas(_int10(fs[5])), line)


def _p_exec(r: TraceReader, fs: list[str], line: int) -> Event:
    _n(fs, 7)
    return Exec(_int10(fs[1]), _int10(fs[2]), _int10(fs[3]), _int16(fs[4]),
                unquote_path(fs[6]), r.vmas(_int10(fs[5])), line)


def _p_snap(r: TraceReader, fs: list[str], line: int) -> Event:
    _n(fs, 5)
    return Snap(_int10(fs[1]), _int10(fs[2]), fs[3], r.vmas(_int10(fs[4])), line)


def _p_exit(r: TraceReader, fs: list[str], line: int) -> Event:
    _n(fs, 5)
    if fs[3] not in ("e", "k"):
        raise _Bad(f"exit: kind must be e or k, got {fs[3]!r}")
    return Exit(_int10(fs[1]), _int10(fs[2]), fs[3] == "e", _int10(fs[4]), line)


def _p_start(r: TraceReader, fs: list[str], line: int) -> Event:
    _n(fs, 4)
    return Start(_int10(fs[1]), _int10(fs[2]), unquote_path(fs[3]), line)


def _p_warn(r: TraceReader, fs: list[str], line: int) -> Event:
    return Warn(_int10(fs[1]), _int10(fs[2]), " ".join(fs[3:]), line)


def _p_lost(r: TraceReader, fs: list[str], line: int) -> Event:
    _n(fs, 5)
    return Lost(_int10(fs[1]), _int10(fs[2]), _int10(fs[3]), _int10(fs[4]), line)


def _p_end(r: TraceReader, fs: list[str], line: int) -> Event:
    _n(fs, 6)
    return End(_int10(fs[1]), _int10(fs[2]), _int10(fs[3]), _int10(fs[4]), _int10(fs[5]), line)


_PARSERS: dict[str, Callable[[TraceReader, list[str], int], Event]] = {
    "F": _p_fault, "A": _p_alloc, "D": _p_free, "fork": _p_fork, "call": _p_call,
    "ret": _p_ret, "exec": _p_exec, "snap": _p_snap, "exit": _p_exit, "start": _p_start,
    "warn": _p_warn, "lost": _p_lost, "end": _p_end,
}


def read_header(path: str | Path, *, allow_incomplete: bool = True) -> dict[str, object]:
    """The header of a trace (incomplete traces allowed by default)."""
    r = TraceReader(path, allow_incomplete=allow_incomplete)
    r.close()
    return r.header


def read_trace(path: str | Path, *, allow_incomplete: bool = False) -> Iterator[Event]:
    """The events of a trace file, streamed (see :class:`TraceReader`).

    The header is checked when the iterator is created, not when first used.
    """
    return iter(TraceReader(path, allow_incomplete=allow_incomplete))
