"""Every operation of the scenario language, each defined once.

An operation is an immutable record (a subclass of :class:`Action`) that
knows, in one place:

* its grammar: ``verbs``, ``usage`` and :meth:`Action.parse`;
* its meaning on the model: :meth:`Action.start` (a :class:`Run`, whose
  ``run()`` performs it: the sequential runner calls it straight away, the
  interleaving explorer calls it in a thread of its own) and, for the
  kernel-path walkers, the property a completed run must satisfy
  (:meth:`Run.check`);
* its system-call encoding, shared by the live-kernel worker and the C
  export: :attr:`Action.c_call` (C returning a result or ``-errno``, over
  the six arguments ``x[0..5]``) and :meth:`Action.kernel_args`;
* how the fuzzer draws it (:meth:`Action.draw`) and which of its tokens
  the shrinker may renumber (:meth:`Action.page_tokens`).

Adding an operation means adding its class here (and its line in
docs/scenario-language.md, which a test checks, and its tests).

Pages are 4 KiB pages of the arena (:data:`rmaplab.machine.constants.ARENA_BASE`);
ranges ``A..B`` are inclusive.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rmaplab.machine.constants import ARENA_PAGES, HPAGE_PMD_NR, PAGE_SIZE
from rmaplab.scenario.tokens import LineParser, echo

if TYPE_CHECKING:
    from rmaplab.fuzz.generate import Gen
    from rmaplab.machine.folio import Folio
    from rmaplab.machine.machine import Machine

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4

#: madvise advices accepted by the language (name -> MADV_* value on Linux)
MADVISE = {
    "dontneed": 4,
    "hugepage": 14,
    "nohugepage": 15,
    "dontfork": 10,
    "dofork": 11,
    "wipeonfork": 18,
    "keeponfork": 19,
    "populate_read": 22,
    "populate_write": 23,
}


def parse_prot(tok: str) -> int | None:
    """``rw``/``r``/``none``/``rwx``/... to PROT_* bits, or None if invalid.

    >>> parse_prot("rx"), parse_prot("none"), parse_prot("rr")
    (5, 0, None)
    """
    if tok == "none":
        return 0
    if not tok or len(set(tok)) != len(tok) or any(c not in "rwx" for c in tok):
        return None
    bits = 0
    for c in tok:
        bits |= {"r": PROT_READ, "w": PROT_WRITE, "x": PROT_EXEC}[c]
    return bits


def prot_text(prot: int) -> str:
    """PROT_* bits as the language writes them.

    >>> prot_text(3), prot_text(0)
    ('rw', 'none')
    """
    return "".join(c for c, b in (("r", 1), ("w", 2), ("x", 4)) if prot & b) or "none"


class KernelArgs:
    """What an encoding needs from its runner: page -> virtual address, and
    the index of a scenario file in the runner's table of open files."""

    def __init__(self, addr: Callable[[int], int], file_index: Callable[[str], int]) -> None:
        self.addr = addr
        self.file_index = file_index


class Run:
    """One execution of an action on one machine (see :meth:`Action.start`)."""

    def __init__(self, fn: Callable[[], int]) -> None:
        self.fn = fn

    def run(self) -> int:
        """Perform the operation; 0 or a negative errno."""
        return self.fn()

    def check(self, m: Machine, who: str) -> str | None:
        """A property the completed operation violates (``who``: its thread)."""
        return None


class NotApplicable(Exception):
    """The operation makes no sense in this state (e.g. a walker aimed at a
    page that maps no anonymous folio)."""


class Action:
    """Base of every operation (see the module docstring)."""

    #: the verbs that introduce it (``Pn VERB ...``; a directive has no Pn)
    verbs: ClassVar[tuple[str, ...]] = ()
    usage: ClassVar[str] = ""
    #: what it does, for docs and ``--help``
    doc: ClassVar[str] = ""
    #: a line with no process (measure)
    directive: ClassVar[bool] = False
    #: the model has it, the kernel runner cannot run it
    model_only: ClassVar[bool] = False
    #: C code over ``x[0..5]`` returning the result or -errno (None: the
    #: runner handles it itself)
    c_call: ClassVar[str | None] = None

    @classmethod
    def parse(cls, p: LineParser, verb: str) -> Action:
        raise NotImplementedError

    def text(self, proc: str | None) -> str:
        """The line that parses back into this action."""
        raise NotImplementedError

    def start(self, m: Machine, proc: str) -> Run:
        """Prepare one execution on ``m`` (may raise :class:`NotApplicable`)."""
        return Run(lambda: self.run(m, proc))

    def run(self, m: Machine, proc: str) -> int:
        raise NotImplementedError

    def kernel_args(self, k: KernelArgs) -> list[int]:
        """The six syscall arguments ``x[0..5]`` of :attr:`c_call`."""
        raise NotImplementedError(f"{type(self).__name__} has no kernel encoding")

    @classmethod
    def draw(cls, g: Gen, proc: str, verb: str) -> str | None:
        """A random line of this action for ``proc`` (None: not drawn)."""
        return None

    #: the first argument (token 2 of ``Pn VERB ARG``) is a page or a range
    first_arg_is_page: ClassVar[bool] = True

    @classmethod
    def page_tokens(cls, toks: list[str]) -> list[int]:
        """Indexes of the tokens of a line that hold page numbers."""
        return [2] if cls.first_arg_is_page and not cls.directive and len(toks) > 2 else []


def _range_text(a: int, b: int) -> str:
    return f"{a}..{b}"


def _span(k: KernelArgs, first: int, last: int) -> tuple[int, int]:
    """(address, length in bytes) of pages [first, last]."""
    return k.addr(first), (last - first + 1) * PAGE_SIZE


# ------------------------------------------------------------------- syscalls
@dataclass(frozen=True, slots=True)
class Mmap(Action):
    """``Pn mmap @START NPAGES [PROT] [shared] [file=NAME] [off=PGOFF] [populate]``."""

    start_page: int
    npages: int
    prot: int = PROT_READ | PROT_WRITE
    shared: bool = False
    file: str | None = None
    off: int = 0
    populate: bool = False

    verbs = ("mmap",)
    usage = "@START NPAGES [PROT] [shared] [file=NAME] [off=PGOFF] [populate]"
    doc = ("mmap(MAP_FIXED_NOREPLACE); private anonymous unless shared/file=; PROT is r, w, x "
           "or none (default rw); off is the file offset in pages; populate adds MAP_POPULATE")
    c_call = ("{ long fd = (long)x[4] >= 0 ? FD(x[4]) : -1; "
              "if (fd >= 0 && grow(fd, x[5] + x[1])) return -errno; "
              "return sys(syscall(SYS_mmap, x[0], x[1], x[2], x[3], fd, x[5])); }")

    @classmethod
    def parse(cls, p: LineParser, verb: str) -> Action:
        import re

        args = p.nargs("mmap", 2, 7, cls.usage)
        if not args[0].startswith("@"):
            raise p.fail(f"mmap needs @START (the fixed start page), got {echo(args[0])}")
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
                if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", file):
                    raise p.fail(f"bad file name {echo(file)}: use up to 64 letters, digits, "
                                 "'_', '.', '-'")
            elif a.startswith("off="):
                off = p.count(a[4:], "off", 0)
            else:
                pr = parse_prot(a)
                if pr is None:
                    raise p.fail(f"unknown mmap option {echo(a)}: expected a protection (rw, r, "
                                 "none, rwx...), shared, file=NAME, off=PGOFF or populate")
                prot = pr
        if off is not None and file is None:
            raise p.fail("off=PGOFF needs file=NAME")
        return cls(start, npages, prot, shared, file, off or 0, populate)

    def text(self, proc: str | None) -> str:
        opts = [prot_text(self.prot)] + (["shared"] if self.shared else [])
        if self.file is not None:
            opts.append(f"file={self.file}")
            if self.off:
                opts.append(f"off={self.off}")
        if self.populate:
            opts.append("populate")
        return f"{proc} mmap @{self.start_page} {self.npages} {' '.join(opts)}"

    def run(self, m: Machine, proc: str) -> int:
        return m.mmap(proc, self.start_page, self.npages, self.prot, self.shared, self.file,
                      self.off, self.populate)

    def kernel_args(self, k: KernelArgs) -> list[int]:
        from rmaplab.machine.flags import (
            MAP_ANONYMOUS,
            MAP_FIXED_NOREPLACE,
            MAP_POPULATE,
            MAP_PRIVATE,
            MAP_SHARED,
        )

        flags = MAP_FIXED_NOREPLACE | (MAP_SHARED if self.shared else MAP_PRIVATE)
        if self.populate:
            flags |= MAP_POPULATE
        if self.file is None:
            flags |= MAP_ANONYMOUS
        fd = k.file_index(self.file) if self.file is not None else -1
        return [k.addr(self.start_page), self.npages * PAGE_SIZE, self.prot, flags, fd,
                self.off * PAGE_SIZE]

    @classmethod
    def draw(cls, g: Gen, proc: str, verb: str) -> str:
        r = g.r
        n = r.choice([1, 2, 4, 8, 16, 32, 64, HPAGE_PMD_NR, 2 * HPAGE_PMD_NR])
        s = g.free_start(proc, n)
        n = min(n, g.p.window - s)
        opts = [r.choice(PROTS)]
        if r.random() < 0.2 and g.p.files:
            opts.append(f"file=F{r.randrange(g.p.files)}")
            if r.random() < 0.5:
                opts.append(f"off={r.randrange(64)}")
        if r.random() < 0.12:
            opts.append("shared")
        if r.random() < 0.05:
            opts.append("populate")
        return f"{proc} mmap @{s} {n} {' '.join(opts)}"


@dataclass(frozen=True, slots=True)
class Touch(Action):
    """``Pn write A..B`` / ``Pn read A..B``: one byte per page, in order."""

    write: bool
    first: int
    last: int

    verbs = ("write", "read")
    usage = "A..B"
    doc = "loads/stores, one byte per page, in order; SIGSEGV/SIGBUS stops the op with EFAULT"
    c_call = "return touch(x[0], x[1], (int)x[2]);"

    @classmethod
    def parse(cls, p: LineParser, verb: str) -> Action:
        (rng,) = p.nargs(verb, 1, 1, "one range A..B")
        return cls(verb == "write", *p.range_(rng))

    def text(self, proc: str | None) -> str:
        return f"{proc} {'write' if self.write else 'read'} {_range_text(self.first, self.last)}"

    def run(self, m: Machine, proc: str) -> int:
        return m.touch(proc, self.first, self.last, self.write)

    def kernel_args(self, k: KernelArgs) -> list[int]:
        return [k.addr(self.first), self.last - self.first + 1, int(self.write), 0, 0, 0]

    @classmethod
    def draw(cls, g: Gen, proc: str, verb: str) -> str:
        a, b = g.some_range(proc)
        return f"{proc} {verb} {a}..{b}"


@dataclass(frozen=True, slots=True)
class Mprotect(Action):
    first: int
    last: int
    prot: int

    verbs = ("mprotect",)
    usage = "A..B PROT"
    doc = "mprotect"
    c_call = "return sys(syscall(SYS_mprotect, x[0], x[1], x[2]));"

    @classmethod
    def parse(cls, p: LineParser, verb: str) -> Action:
        rng, prot_s = p.nargs("mprotect", 2, 2, cls.usage)
        first, last = p.range_(rng)
        prot = parse_prot(prot_s)
        if prot is None:
            raise p.fail(f"bad protection {echo(prot_s)}: expected rw, r, none, rwx...")
        return cls(first, last, prot)

    def text(self, proc: str | None) -> str:
        return f"{proc} mprotect {_range_text(self.first, self.last)} {prot_text(self.prot)}"

    def run(self, m: Machine, proc: str) -> int:
        return m.mprotect(proc, self.first, self.last, self.prot)

    def kernel_args(self, k: KernelArgs) -> list[int]:
        return [*_span(k, self.first, self.last), self.prot, 0, 0, 0]

    @classmethod
    def draw(cls, g: Gen, proc: str, verb: str) -> str:
        a, b = g.some_range(proc)
        return f"{proc} mprotect {a}..{b} {g.r.choice(PROTS)}"


@dataclass(frozen=True, slots=True)
class Munmap(Action):
    first: int
    last: int

    verbs = ("munmap",)
    usage = "A..B"
    doc = "munmap"
    c_call = "return sys(syscall(SYS_munmap, x[0], x[1]));"

    @classmethod
    def parse(cls, p: LineParser, verb: str) -> Action:
        (rng,) = p.nargs("munmap", 1, 1, "one range A..B")
        return cls(*p.range_(rng))

    def text(self, proc: str | None) -> str:
        return f"{proc} munmap {_range_text(self.first, self.last)}"

    def run(self, m: Machine, proc: str) -> int:
        return m.munmap(proc, self.first, self.last)

    def kernel_args(self, k: KernelArgs) -> list[int]:
        return [*_span(k, self.first, self.last), 0, 0, 0, 0]

    @classmethod
    def draw(cls, g: Gen, proc: str, verb: str) -> str:
        a, b = g.some_range(proc)
        return f"{proc} munmap {a}..{b}"


@dataclass(frozen=True, slots=True)
class Mremap(Action):
    """``Pn mremap OLDSTART OLDLEN NEWLEN [@NEWSTART] [dontunmap] [nomove]``.

    ``new_start`` set means MREMAP_FIXED; ``maymove`` is MREMAP_MAYMOVE
    (cleared by ``nomove``)."""

    old_start: int
    old_len: int
    new_len: int
    new_start: int | None = None
    dontunmap: bool = False
    maymove: bool = True

    verbs = ("mremap",)
    usage = "OLDSTART OLDLEN NEWLEN [@NEWSTART] [dontunmap] [nomove]"
    doc = ("mremap; lengths in pages; MREMAP_MAYMOVE unless nomove; @ means MREMAP_FIXED; "
           "without @ a moved mapping lands outside the arena")
    c_call = "return sys(syscall(SYS_mremap, x[0], x[1], x[2], x[3], x[4]));"

    @classmethod
    def parse(cls, p: LineParser, verb: str) -> Action:
        args = p.nargs("mremap", 3, 6, cls.usage)
        old = p.page(args[0], "OLDSTART")
        old_len = p.count(args[1], "OLDLEN", 0)
        new_len = p.count(args[2], "NEWLEN", 1)
        new_start, dontunmap, maymove, seen = None, False, True, set()
        for a in args[3:]:
            key = "@" if a.startswith("@") else a
            if key in seen:
                raise p.fail(f"mremap option {echo(a)} given twice")
            seen.add(key)
            if a.startswith("@"):
                new_start = p.page(a[1:], "NEWSTART")
                if new_start + new_len > ARENA_PAGES:
                    raise p.fail("mremap destination ends beyond the arena")
            elif a == "dontunmap":
                dontunmap = True
            elif a == "nomove":
                maymove = False
            else:
                raise p.fail(f"unknown mremap option {echo(a)}: "
                             "expected @NEWSTART, dontunmap or nomove")
        if old + max(old_len, new_len) > ARENA_PAGES:
            raise p.fail("mremap range ends beyond the arena")
        return cls(old, old_len, new_len, new_start, dontunmap, maymove)

    def text(self, proc: str | None) -> str:
        opts = ([f"@{self.new_start}"] if self.new_start is not None else []) + (
            ["dontunmap"] if self.dontunmap else []) + ([] if self.maymove else ["nomove"])
        return " ".join([f"{proc} mremap {self.old_start} {self.old_len} {self.new_len}", *opts])

    def run(self, m: Machine, proc: str) -> int:
        return m.mremap(proc, self.old_start, self.old_len, self.new_len, self.new_start,
                        self.dontunmap, self.maymove)

    def kernel_args(self, k: KernelArgs) -> list[int]:
        from rmaplab.machine.mremap import MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE

        flags = (MREMAP_MAYMOVE if self.maymove else 0) | (
            MREMAP_DONTUNMAP if self.dontunmap else 0)
        new = 0
        if self.new_start is not None:
            flags |= MREMAP_FIXED
            new = k.addr(self.new_start)
        return [k.addr(self.old_start), self.old_len * PAGE_SIZE, self.new_len * PAGE_SIZE,
                flags, new, 0]

    @classmethod
    def draw(cls, g: Gen, proc: str, verb: str) -> str:
        r = g.r
        a, b = g.some_range(proc)
        old = b - a + 1
        form = r.random()
        if form < 0.35:
            dest = g.free_start(proc, old)
            extra = " dontunmap" if r.random() < 0.25 else ""
            return f"{proc} mremap {a} {old} {old} @{dest}{extra}"
        if form < 0.55:
            new = max(1, old + r.choice([-3, -1, 1, 2, 8]))
            return f"{proc} mremap {a} {old} {new}" + (" nomove" if r.random() < 0.3 else "")
        if form < 0.7:
            new = old + r.choice([0, 2, 16])
            dest = g.free_start(proc, new)
            return f"{proc} mremap {a} {old} {new} @{dest}"
        if form < 0.8:
            return f"{proc} mremap {a} {old} {old} dontunmap"
        new = old + r.choice([1, 4, 64])
        return f"{proc} mremap {a} {old} {new}"

    @classmethod
    def page_tokens(cls, toks: list[str]) -> list[int]:
        return [2] + [i for i in range(5, len(toks)) if toks[i].startswith("@")]


@dataclass(frozen=True, slots=True)
class Madvise(Action):
    first: int
    last: int
    advice: str

    verbs = ("madvise",)
    usage = "A..B ADVICE"
    doc = "madvise: " + " ".join(MADVISE)
    c_call = "return sys(syscall(SYS_madvise, x[0], x[1], x[2]));"

    @classmethod
    def parse(cls, p: LineParser, verb: str) -> Action:
        rng, adv = p.nargs("madvise", 2, 2, cls.usage)
        first, last = p.range_(rng)
        if adv not in MADVISE:
            raise p.fail(f"unknown madvise advice {echo(adv)}: expected one of "
                         f"{', '.join(MADVISE)}")
        return cls(first, last, adv)

    def text(self, proc: str | None) -> str:
        return f"{proc} madvise {_range_text(self.first, self.last)} {self.advice}"

    def run(self, m: Machine, proc: str) -> int:
        return m.madvise(proc, self.first, self.last, self.advice)

    def kernel_args(self, k: KernelArgs) -> list[int]:
        return [*_span(k, self.first, self.last), MADVISE[self.advice], 0, 0, 0]

    @classmethod
    def draw(cls, g: Gen, proc: str, verb: str) -> str:
        a, b = g.some_range(proc)
        return f"{proc} madvise {a}..{b} {g.r.choice(ADVICE)}"


@dataclass(frozen=True, slots=True)
class Fork(Action):
    child: str

    first_arg_is_page = False
    verbs = ("fork",)
    usage = "Pm"
    doc = "fork; Pm must be a new name"

    @classmethod
    def parse(cls, p: LineParser, verb: str) -> Action:
        from rmaplab.scenario.parse import PROC

        (child,) = p.nargs("fork", 1, 1, "the new process name, e.g. P1")
        if not PROC.match(child):
            raise p.fail(f"bad process name {echo(child)}: expected P<number>")
        return cls(child)

    def text(self, proc: str | None) -> str:
        return f"{proc} fork {self.child}"

    def run(self, m: Machine, proc: str) -> int:
        return m.fork(proc, self.child)

    @classmethod
    def draw(cls, g: Gen, proc: str, verb: str) -> str:
        if len(g.alive) >= g.p.max_procs:
            return Touch.draw(g, proc, "write")
        child = f"P{g.next_proc}"
        g.next_proc += 1
        return f"{proc} fork {child}"


@dataclass(frozen=True, slots=True)
class Exit(Action):
    first_arg_is_page = False
    verbs = ("exit",)
    usage = ""
    doc = "exit; the process's mm is torn down before the next line"

    @classmethod
    def parse(cls, p: LineParser, verb: str) -> Action:
        p.nargs("exit", 0, 0, "no arguments")
        return cls()

    def text(self, proc: str | None) -> str:
        return f"{proc} exit"

    def run(self, m: Machine, proc: str) -> int:
        return m.exit(proc)

    @classmethod
    def draw(cls, g: Gen, proc: str, verb: str) -> str:
        if len(g.alive) <= 1:
            return "measure"
        return f"{proc} exit"


# ----------------------------------------------------------------- directives
@dataclass(frozen=True, slots=True)
class Measure(Action):
    verbs = ("measure",)
    usage = ""
    doc = "prints measure L: anon_vma=A avc=C (live objects after line L)"
    directive = True

    @classmethod
    def parse(cls, p: LineParser, verb: str) -> Action:
        if len(p.toks) != 1:
            raise p.fail("measure takes no arguments")
        return cls()

    def text(self, proc: str | None) -> str:
        return "measure"

    @classmethod
    def draw(cls, g: Gen, proc: str, verb: str) -> str:
        return "measure"


@dataclass(frozen=True, slots=True)
class Maps(Action):
    verbs = ("maps",)
    usage = "Pn"
    doc = "prints the VMAs of Pn inside the arena (/proc/PID/maps)"
    directive = True

    @classmethod
    def parse(cls, p: LineParser, verb: str) -> Action:
        if len(p.toks) != 2:
            raise p.fail("maps takes one process name, e.g. maps P0")
        return cls()

    def text(self, proc: str | None) -> str:
        return f"maps {proc}"

    @classmethod
    def draw(cls, g: Gen, proc: str, verb: str) -> str:
        return f"maps {proc}"


# -------------------------------------------------- kernel paths (model only)
class _WalkerRun(Run):
    """A walker's run: the folio is chosen and pinned (isolated from the LRU,
    as reclaim and migration do) when the operation starts."""

    def __init__(self, m: Machine, folio: Folio, fn: Callable[[Folio], Any], verb: str) -> None:
        super().__init__(self._go)
        self.m = m
        self.folio = folio
        self.walk = fn
        self.verb = verb
        self.result: Any = None
        self.start: set[tuple[int, int]] = set()
        self.end: set[tuple[int, int]] = set()
        folio.pins += 1

    def _go(self) -> int:
        m, f = self.m, self.folio
        self.start = m.mappings_of(f)
        self.result = self.walk(f)
        self.end = m.mappings_of(f)
        f.pins -= 1
        m.folio_put(f)
        return 0

    def check(self, m: Machine, who: str) -> str | None:
        r, f = self.result, self.folio
        if r is None or r.status != "done":
            return None
        names = {mm.id: mm.name for mm in m.mms.values()}
        if self.verb == "try_to_unmap":
            for mm_id, vpn in sorted(m.mappings_of(f))[:1]:
                return (f"try_to_unmap ({who}) completed but {names[mm_id]} still maps folio "
                        f"{f.id} at {_page(vpn)} (missed mapping)")
        elif self.verb == "migrate":
            for mm, vpn in m.migration_entries(f)[:1]:
                return (f"migration ({who}) finished but {mm.name} keeps a migration entry "
                        f"at {_page(vpn)} (stale: the process would wait forever)")
        elif self.verb == "referenced":
            for mm_id, vpn in sorted((self.start & self.end) - r.visited)[:1]:
                return (f"folio_referenced ({who}) missed {names.get(mm_id, mm_id)} "
                        f"{_page(vpn)}, mapped throughout its walk")
        return None


def _page(vpn: int) -> str:
    from rmaplab.machine.constants import short_page

    return short_page(vpn)


@dataclass(frozen=True, slots=True)
class Walker(Action):
    """``Pn try_to_unmap PAGE`` / ``Pn migrate PAGE`` / ``Pn referenced PAGE``:
    a kernel rmap walker (reclaim's ``try_to_unmap`` then pageout, migration
    with ``try_to_migrate`` + ``remove_migration_ptes``, LRU aging's
    ``folio_referenced``) on the anonymous folio that PAGE of Pn maps when
    the operation starts (pinned until it ends)."""

    verb: str
    page: int

    verbs = ("try_to_unmap", "migrate", "referenced")
    usage = "PAGE"
    doc = ("model only: reclaim (try_to_unmap, then pageout), migration, or folio_referenced "
           "of the anonymous folio PAGE maps; the explorer checks the walk found every mapping")
    model_only = True

    @classmethod
    def parse(cls, p: LineParser, verb: str) -> Action:
        (pg,) = p.nargs(verb, 1, 1, "one page number")
        return cls(verb, p.page(pg, "page"))

    def text(self, proc: str | None) -> str:
        return f"{proc} {self.verb} {self.page}"

    def start(self, m: Machine, proc: str) -> Run:
        folio = m.folio_at(proc, self.page)
        if folio is None:
            raise NotApplicable(f"{proc} maps no anonymous folio at page {self.page}")
        fn = {"try_to_unmap": m.try_to_unmap, "migrate": m.migrate_folio,
              "referenced": m.folio_referenced}[self.verb]
        return _WalkerRun(m, folio, fn, self.verb)

    def run(self, m: Machine, proc: str) -> int:
        try:
            return self.start(m, proc).run()
        except NotApplicable:
            return -errno.ENOENT


@dataclass(frozen=True, slots=True)
class SplitHugePmd(Action):
    """``Pn split_huge_pmd PAGE``: ``split_huge_pmd`` of the PMD mapping PAGE
    (as a partial zap or mprotect would), under the PMD lock."""

    page: int

    verbs = ("split_huge_pmd",)
    usage = "PAGE"
    doc = "model only: split the PMD mapping PAGE into PTEs (the folio stays large)"
    model_only = True

    @classmethod
    def parse(cls, p: LineParser, verb: str) -> Action:
        (pg,) = p.nargs(verb, 1, 1, "one page number")
        return cls(p.page(pg, "page"))

    def text(self, proc: str | None) -> str:
        return f"{proc} split_huge_pmd {self.page}"

    def run(self, m: Machine, proc: str) -> int:
        from rmaplab.machine.constants import ARENA_VPN

        return m.split_huge_pmd(m.mm(proc), ARENA_VPN + self.page)


# ------------------------------------------------------------------- registry
#: every action class, in the order of their kernel kind numbers
ACTIONS: tuple[type[Action], ...] = (Mmap, Touch, Mprotect, Munmap, Mremap, Madvise, Fork,
                                     Exit, Measure, Maps, Walker, SplitHugePmd)
#: verb -> action class
VERBS: dict[str, type[Action]] = {v: a for a in ACTIONS for v in a.verbs}
#: verbs of lines that start with a process name
PROC_VERBS = tuple(v for v, a in VERBS.items() if not a.directive)

PROTS = ["rw"] * 6 + ["r"] * 2 + ["none", "rwx", "rx"]
ADVICE = ["dontfork", "dofork", "wipeonfork", "keeponfork", "dontneed", "hugepage",
          "nohugepage", "populate_read", "populate_write"]


def kernel_kind(action: Action) -> int:
    """The number of an action's case in the generated C ``do_op`` switch."""
    return ACTIONS.index(type(action)) + 1


def c_do_op() -> str:
    """The C function ``do_op(kind, x)`` that the live-kernel worker and the
    C export both compile: one case per action with a :attr:`Action.c_call`.
    It relies on helpers the including program defines: ``sys()``,
    ``touch()``, ``grow()`` and ``FD()``."""
    lines = ["static long do_op(int kind, const unsigned long *x)", "{", "\tswitch (kind) {"]
    for i, a in enumerate(ACTIONS, 1):
        if a.c_call is not None:
            lines.append(f"\tcase {i}: /* {a.verbs[0]} */")
            lines.append(f"\t\t{a.c_call}")
    lines += ["\t}", "\treturn -EINVAL;", "}"]
    return "\n".join(lines)
