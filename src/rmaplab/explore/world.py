"""The shared state of one explored execution, and the steps threads yield.

A thread is a generator that yields a :class:`Step` describing what it does
next; the scheduler decides when it runs, and the thread performs the step's
effect when it is resumed (everything between two yields is atomic).  Steps
are lock acquisitions and releases (which may block), RCU section
boundaries, and reads or writes of shared state (``do``).  A ``trylock``
step never blocks: the scheduler sends its outcome back into the generator.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from rmaplab.explore.locks import Lock, LockTable, lock_name
from rmaplab.machine.folio import Folio
from rmaplab.machine.machine import Machine
from rmaplab.machine.mm import Mm


@dataclass
class Step:
    kind: str  # lock | unlock | trylock | rcu_lock | rcu_unlock | do
    label: str
    lock: Lock | None = None
    mode: str = "x"
    #: the step may sleep (illegal inside an RCU read-side section)
    sleeps: bool = False


Thread = Generator[Step, Any, Any]


def lock(lk: Lock, mode: str = "x") -> Step:
    return Step("lock", f"{'down_read' if mode == 'r' else 'lock'}({lock_name(lk)})", lk, mode)


def unlock(lk: Lock) -> Step:
    return Step("unlock", f"unlock({lock_name(lk)})", lk)


def trylock(lk: Lock, mode: str = "x") -> Step:
    return Step("trylock", f"trylock({lock_name(lk)}{', read' if mode == 'r' else ''})", lk, mode)


def do(label: str, sleeps: bool = False) -> Step:
    return Step("do", label, sleeps=sleeps)


class SwapEntry:
    """A non-present PTE left by try_to_unmap (the page went to swap)."""

    __slots__ = ("folio", "idx", "write")

    def __init__(self, folio: Folio, idx: int) -> None:
        self.folio = folio
        self.idx = idx
        self.write = False

    def __repr__(self) -> str:
        return f"<swap entry of folio {self.folio.id}[{self.idx}]>"


class MigrationEntry(SwapEntry):
    """A migration entry installed by try_to_migrate."""

    def __repr__(self) -> str:
        return f"<migration entry of folio {self.folio.id}[{self.idx}]>"


@dataclass(frozen=True)
class Model:
    """Choices about the kernel being modelled that reasonable people may
    set differently (each one a visible option of ``rmaplab explore``).

    ``rcu_table_free``: page tables are freed after an RCU grace period
    (``CONFIG_MMU_GATHER_RCU_TABLE_FREE``, unconditional on x86 since 6.15
    and set on the reference 6.18.44 kernel), so a walker inside an RCU
    read-side section may still read a page table that ``free_pgtables``
    freed; outside one it may not.  ``lock_order``: check the documented
    lock order (off: only deadlocks are found)."""

    lock_order: bool = True
    rcu_table_free: bool = True


@dataclass
class World:
    """Machine + lock table + what the properties need, for one execution."""

    m: Machine
    model: Model = field(default_factory=Model)
    locks: LockTable = field(default_factory=LockTable)
    violations: list[str] = field(default_factory=list)
    #: page tables freed by free_pgtables: (mm id, pmd index)
    freed_tables: set[tuple[int, int]] = field(default_factory=set)
    #: per thread: what it reports, and what its walks visited
    results: dict[str, Any] = field(default_factory=dict)
    visited: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    #: trace entries (thread, text), appended by the scheduler and by note()
    trace: list[list[str]] = field(default_factory=list)
    named: dict[str, Any] = field(default_factory=dict)

    @property
    def d(self) -> Any:
        return self.m.design

    def note(self, thread: str, text: str) -> None:
        """Add a detail (a value read, a decision) to the thread's last step."""
        for e in reversed(self.trace):
            if e[0] == thread:
                e[1] = f"{e[1]} {text}"
                return

    def violate(self, thread: str, what: str) -> None:
        self.violations.append(what)
        self.trace.append([thread, f"!! {what}"])

    def all_mms(self) -> list[Mm]:
        return list(self.m.procs.values()) + [v for v in self.named.get("new_mms", [])
                                              if v not in self.m.procs.values()]
