"""The operations of the scenario language, as typed, immutable records.

A scenario is a list of operations, one per line of the file.  Page numbers
are 4 KiB pages relative to the arena (``rmaplab.machine.constants.ARENA_BASE``);
ranges ``A..B`` are inclusive.  See ``docs/scenario-language.md`` for the
grammar and :mod:`rmaplab.scenario.parse` for the parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Protection strings accepted by mmap/mprotect, mapped to PROT_* bits.
PROT_READ = 1
PROT_WRITE = 2
PROT_EXEC = 4

# madvise advices accepted by the language (name -> MADV_* value on Linux).
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


@dataclass(frozen=True, slots=True)
class Mmap:
    """``Pn mmap @START NPAGES [PROT] [shared] [file=NAME] [off=PGOFF] [populate]``."""

    start: int
    npages: int
    prot: int = PROT_READ | PROT_WRITE
    shared: bool = False
    file: str | None = None
    off: int = 0
    populate: bool = False


@dataclass(frozen=True, slots=True)
class Touch:
    """``Pn write A..B`` / ``Pn read A..B``: one byte per page, in order."""

    write: bool
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Mprotect:
    first: int
    last: int
    prot: int


@dataclass(frozen=True, slots=True)
class Munmap:
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Mremap:
    """``Pn mremap OLDSTART OLDLEN NEWLEN [@NEWSTART] [dontunmap] [nomove]``.

    ``new_start`` set means MREMAP_FIXED; ``maymove`` is MREMAP_MAYMOVE
    (cleared by ``nomove``).
    """

    old_start: int
    old_len: int
    new_len: int
    new_start: int | None = None
    dontunmap: bool = False
    maymove: bool = True


@dataclass(frozen=True, slots=True)
class Madvise:
    first: int
    last: int
    advice: str


@dataclass(frozen=True, slots=True)
class Fork:
    child: str


@dataclass(frozen=True, slots=True)
class Exit:
    pass


@dataclass(frozen=True, slots=True)
class Measure:
    pass


@dataclass(frozen=True, slots=True)
class Maps:
    pass


Action = Mmap | Touch | Mprotect | Munmap | Mremap | Madvise | Fork | Exit | Measure | Maps


@dataclass(frozen=True, slots=True)
class Op:
    """One scenario line: ``proc`` is the process name (``None`` for measure)."""

    line: int
    proc: str | None
    action: Action
    text: str = ""


@dataclass(slots=True)
class Scenario:
    """A parsed scenario: its operations and the files it maps."""

    path: str
    ops: list[Op] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)

    def process_names(self) -> list[str]:
        names = ["P0"]
        for op in self.ops:
            if isinstance(op.action, Fork):
                names.append(op.action.child)
        return names


def prot_string(prot: int) -> str:
    """``PROT_*`` bits as the three characters /proc/PID/maps shows."""
    return (
        ("r" if prot & PROT_READ else "-")
        + ("w" if prot & PROT_WRITE else "-")
        + ("x" if prot & PROT_EXEC else "-")
    )
