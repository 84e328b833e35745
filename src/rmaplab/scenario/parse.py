"""Parser of the scenario language.

Grammar (one operation per line; ``#`` starts a comment; blank lines are
ignored; page numbers are decimal 4 KiB arena pages, ranges ``A..B``
inclusive)::

    Pn mmap @START NPAGES [rw|r|none|rwx|...] [shared] [file=NAME] [off=PGOFF]
    Pn write A..B            Pn read A..B
    Pn mprotect A..B PROT    Pn munmap A..B
    Pn mremap OLDSTART OLDLEN NEWLEN [@NEWSTART] [dontunmap] [nomove]
    Pn madvise A..B dontfork|dofork|wipeonfork|keeponfork|dontneed|hugepage|nohugepage
    Pn fork Pm               Pn exit
    measure                  maps Pn

``P0`` exists when the scenario starts; every other process comes from a
``fork``.  Errors are reported as :class:`rmaplab.errors.ScenarioError`
naming the file and line, before anything runs.

>>> s = parse_text("P0 mmap @0 4 rw\\nP0 write 0..3\\nmeasure\\n", "ex.scn")
>>> [type(op.action).__name__ for op in s.ops]
['Mmap', 'Touch', 'Measure']
"""

from __future__ import annotations

import re
from pathlib import Path

from rmaplab.errors import ScenarioError
from rmaplab.machine.constants import ARENA_PAGES
from rmaplab.scenario.ast import (
    MADVISE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    Exit,
    Fork,
    Madvise,
    Maps,
    Measure,
    Mmap,
    Mprotect,
    Mremap,
    Munmap,
    Op,
    Scenario,
    Touch,
)

_PROC = re.compile(r"P\d+\Z")
_NUM = re.compile(r"\d+\Z")
_FILE = re.compile(r"[A-Za-z0-9_.-]+\Z")
VERBS = ("mmap", "write", "read", "mprotect", "munmap", "mremap", "madvise", "fork", "exit")


def parse_prot(tok: str) -> int | None:
    """``rw``/``r``/``none``/``rwx``/... to PROT_* bits, or None if invalid."""
    if tok == "none":
        return 0
    if not tok or len(set(tok)) != len(tok) or any(c not in "rwx" for c in tok):
        return None
    bits = 0
    for c in tok:
        bits |= {"r": PROT_READ, "w": PROT_WRITE, "x": PROT_EXEC}[c]
    return bits


class _LineParser:
    def __init__(self, path: str, line: int, toks: list[str]) -> None:
        self.path = path
        self.line = line
        self.toks = toks

    def fail(self, msg: str) -> ScenarioError:
        return ScenarioError(self.path, self.line, msg)

    def page(self, tok: str, what: str) -> int:
        if not _NUM.match(tok):
            raise self.fail(f"bad {what} {tok!r}: expected a page number (decimal)")
        v = int(tok)
        if v >= ARENA_PAGES:
            raise self.fail(f"bad {what} {v}: the arena has pages 0..{ARENA_PAGES - 1}")
        return v

    def count(self, tok: str, what: str, minimum: int) -> int:
        if not _NUM.match(tok):
            raise self.fail(f"bad {what} {tok!r}: expected a number of pages")
        v = int(tok)
        if v < minimum:
            raise self.fail(f"bad {what} {v}: must be at least {minimum}")
        if v > ARENA_PAGES:
            raise self.fail(f"bad {what} {v}: larger than the arena ({ARENA_PAGES} pages)")
        return v

    def range_(self, tok: str) -> tuple[int, int]:
        if ".." not in tok:
            raise self.fail(f"bad range {tok!r}: expected A..B (inclusive page numbers)")
        a, _, b = tok.partition("..")
        first, last = self.page(a, "range start"), self.page(b, "range end")
        if first > last:
            raise self.fail(f"bad range {tok!r}: start is after end")
        return first, last

    def nargs(self, verb: str, lo: int, hi: int, usage: str) -> list[str]:
        args = self.toks[2:]
        if not lo <= len(args) <= hi:
            raise self.fail(f"{verb} takes {usage}")
        return args


def _parse_action(p: _LineParser, verb: str):  # noqa: C901 - one branch per verb
    if verb == "mmap":
        args = p.nargs("mmap", 2, 7, "@START NPAGES [rw|r|none|rwx] [shared] [file=NAME] "
                       "[off=PGOFF] [populate]")
        if not args[0].startswith("@"):
            raise p.fail(f"mmap needs @START (the fixed start page), got {args[0]!r}")
        start = p.page(args[0][1:], "start page")
        npages = p.count(args[1], "NPAGES", 1)
        if start + npages > ARENA_PAGES:
            raise p.fail(f"mmap @{start} {npages} ends beyond the arena ({ARENA_PAGES} pages)")
        prot, shared, file, off, seen = PROT_READ | PROT_WRITE, False, None, None, set()
        populate = False
        for a in args[2:]:
            key = a.split("=", 1)[0] if "=" in a else (a if a in ("shared", "populate") else "prot")
            if key in seen:
                raise p.fail(f"mmap option {key} given twice")
            seen.add(key)
            if a == "shared":
                shared = True
            elif a == "populate":
                populate = True
            elif a.startswith("file="):
                file = a[5:]
                if not _FILE.match(file):
                    raise p.fail(f"bad file name {file!r}: use letters, digits, '_', '.', '-'")
            elif a.startswith("off="):
                off = p.count(a[4:], "off", 0)
            else:
                pr = parse_prot(a)
                if pr is None:
                    raise p.fail(f"unknown mmap option {a!r}: expected a protection (rw, r, "
                                 "none, rwx...), shared, file=NAME, off=PGOFF or populate")
                prot = pr
        if off is not None and file is None:
            raise p.fail("off=PGOFF needs file=NAME")
        return Mmap(start, npages, prot, shared, file, off or 0, populate)
    if verb in ("write", "read"):
        (rng,) = p.nargs(verb, 1, 1, "one range A..B")
        first, last = p.range_(rng)
        return Touch(verb == "write", first, last)
    if verb == "mprotect":
        rng, prot_s = p.nargs("mprotect", 2, 2, "A..B PROT")
        first, last = p.range_(rng)
        mprot = parse_prot(prot_s)
        if mprot is None:
            raise p.fail(f"bad protection {prot_s!r}: expected rw, r, none, rwx...")
        prot = mprot
        return Mprotect(first, last, prot)
    if verb == "munmap":
        (rng,) = p.nargs("munmap", 1, 1, "one range A..B")
        return Munmap(*p.range_(rng))
    if verb == "mremap":
        args = p.nargs("mremap", 3, 6, "OLDSTART OLDLEN NEWLEN [@NEWSTART] [dontunmap] [nomove]")
        old = p.page(args[0], "OLDSTART")
        old_len = p.count(args[1], "OLDLEN", 0)
        new_len = p.count(args[2], "NEWLEN", 1)
        new_start, dontunmap, maymove, seen = None, False, True, set()
        for a in args[3:]:
            if a in seen:
                raise p.fail(f"mremap option {a} given twice")
            seen.add(a if not a.startswith("@") else "@")
            if a.startswith("@"):
                if new_start is not None:
                    raise p.fail("mremap takes one @NEWSTART")
                new_start = p.page(a[1:], "NEWSTART")
                if new_start + new_len > ARENA_PAGES:
                    raise p.fail("mremap destination ends beyond the arena")
            elif a == "dontunmap":
                dontunmap = True
            elif a == "nomove":
                maymove = False
            else:
                raise p.fail(f"unknown mremap option {a!r}: "
                             "expected @NEWSTART, dontunmap or nomove")
        if old + max(old_len, new_len) > ARENA_PAGES:
            raise p.fail("mremap range ends beyond the arena")
        return Mremap(old, old_len, new_len, new_start, dontunmap, maymove)
    if verb == "madvise":
        rng, adv = p.nargs("madvise", 2, 2, "A..B ADVICE")
        first, last = p.range_(rng)
        if adv not in MADVISE:
            raise p.fail(f"unknown madvise advice {adv!r}: expected one of {', '.join(MADVISE)}")
        return Madvise(first, last, adv)
    if verb == "fork":
        (child,) = p.nargs("fork", 1, 1, "the new process name, e.g. P1")
        if not _PROC.match(child):
            raise p.fail(f"bad process name {child!r}: expected P<number>")
        return Fork(child)
    if verb == "exit":
        p.nargs("exit", 0, 0, "no arguments")
        return Exit()
    raise p.fail(f"unknown op {verb!r}: expected one of {', '.join(VERBS)}, measure, maps")


class ScenarioParser:
    """Incremental parser: feed lines one by one (keeps which processes live).

    >>> sp = ScenarioParser("x.scn")
    >>> sp.feed(1, "P0 fork P1").action
    Fork(child='P1')
    >>> sp.feed(2, "P1 exit").proc
    'P1'
    """

    def __init__(self, path: str = "<string>") -> None:
        self.sc = Scenario(path)
        self.live = {"P0"}
        self.ever = {"P0"}
        self.files: dict[str, None] = {}
        self.in_header = True

    def feed(self, lineno: int, raw: str) -> Op | None:
        """Parse one line; the Op, or None for a blank/comment line."""
        path, sc, live, ever = self.sc.path, self.sc, self.live, self.ever
        body, _, comment = raw.partition("#")
        toks = body.split()
        if not toks:
            if self.in_header and comment:
                sc.header.append(comment.strip())
            return None
        self.in_header = False
        p = _LineParser(path, lineno, toks)
        if toks[0] == "measure":
            if len(toks) != 1:
                raise p.fail("measure takes no arguments")
            op = Op(lineno, None, Measure(), body.strip())
        elif toks[0] == "maps":
            if len(toks) != 2:
                raise p.fail("maps takes one process name, e.g. maps P0")
            _check_live(p, toks[1], live, ever)
            op = Op(lineno, toks[1], Maps(), body.strip())
        else:
            proc = toks[0]
            if not _PROC.match(proc):
                if proc in VERBS:
                    raise p.fail(f"{proc} needs a process first, e.g. 'P0 {proc} ...'")
                raise p.fail(f"unknown op {proc!r}: expected 'Pn VERB ...', measure or maps")
            if len(toks) < 2:
                raise p.fail(f"{proc} needs a verb: one of {', '.join(VERBS)}")
            _check_live(p, proc, live, ever)
            action = _parse_action(p, toks[1])
            if isinstance(action, Fork):
                if action.child in ever:
                    raise p.fail(f"fork to an existing name {action.child}: "
                                 "each process name is used once")
                ever.add(action.child)
                live.add(action.child)
            elif isinstance(action, Exit):
                live.discard(proc)
            elif isinstance(action, Mmap) and action.file is not None:
                self.files.setdefault(action.file, None)
            op = Op(lineno, proc, action, body.strip())
        sc.ops.append(op)
        sc.files = list(self.files)
        return op


def parse_text(text: str, path: str = "<string>") -> Scenario:
    """Parse scenario text; raise :class:`ScenarioError` on the first bad line."""
    sp = ScenarioParser(path)
    for lineno, raw in enumerate(text.splitlines(), 1):
        sp.feed(lineno, raw)
    return sp.sc


def _check_live(p: _LineParser, proc: str, live: set[str], ever: set[str]) -> None:
    if not _PROC.match(proc):
        raise p.fail(f"bad process name {proc!r}: expected P<number>")
    if proc not in ever:
        raise p.fail(f"undefined process {proc}: create it with 'Px fork {proc}' first")
    if proc not in live:
        raise p.fail(f"process {proc} has exited")


def parse_file(path: str | Path) -> Scenario:
    """Read and parse a scenario file (errors name the file and line)."""
    p = str(path)
    try:
        text = Path(p).read_text()
    except OSError as e:
        raise ScenarioError(p, 0, f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ScenarioError(p, 0, "not a text file (UTF-8 expected)") from None
    return parse_text(text, p)
