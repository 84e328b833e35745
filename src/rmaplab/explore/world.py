"""The explorer's side of the machine's concurrency points.

The machine and the designs announce every point where another CPU may run
through their :class:`~rmaplab.machine.sync.Sync` (see that module).  During
an explored execution the machine's ``sync`` is an :class:`ExploreSync`:
each racing thread runs in a greenlet, and at every point it switches back
to the scheduler with a :class:`Step` describing what it is about to do;
the scheduler performs the step's effect (acquiring a lock, entering RCU)
when it decides the thread runs, then switches back into it.  Everything a
thread does between two points is atomic.

The annotations of :class:`Sync` (``use``, ``use_pgtable``, ``use_mm_mt``,
``may_sleep``) become checks here: a use after free, a walk of a freed page
table outside the protection of RCU table freeing, a sleep inside an RCU
read-side section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from greenlet import greenlet

from rmaplab.explore.locks import Lock, LockTable, lock_name
from rmaplab.machine.constants import short_page
from rmaplab.machine.sync import Sync

if TYPE_CHECKING:
    from rmaplab.machine.mm import Mm


@dataclass
class Step:
    kind: str  # lock | unlock | trylock | rcu_lock | rcu_unlock | do
    label: str
    lock: Lock | None = None
    mode: str = "x"
    #: the step may sleep (illegal inside an RCU read-side section)
    sleeps: bool = False


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
    """What the scheduler and the checks share in one execution."""

    model: Model = field(default_factory=Model)
    locks: LockTable = field(default_factory=LockTable)
    violations: list[str] = field(default_factory=list)
    #: page tables freed by free_pgtables: (mm id, pmd index)
    freed_tables: set[tuple[int, int]] = field(default_factory=set)
    #: mms whose maple tree __mt_destroy freed
    mt_destroyed: set[int] = field(default_factory=set)
    #: trace entries [thread, text], appended by the scheduler and by notes
    trace: list[list[str]] = field(default_factory=list)
    #: the thread running now (its greenlet executes)
    current: str = ""

    def note(self, thread: str, text: str) -> None:
        """Add a detail (a value read, a decision) to the thread's last step."""
        for e in reversed(self.trace):
            if e[0] == thread:
                e[1] = f"{e[1]} {text}"
                return

    def violate(self, thread: str, what: str) -> None:
        if what not in self.violations:
            self.violations.append(what)
            self.trace.append([thread, f"!! {what}"])


class ExploreSync(Sync):
    """The machine's ``sync`` during an explored execution: every point
    suspends the running thread's greenlet and hands the step to the
    scheduler (the parent greenlet)."""

    active = True

    def __init__(self, world: World, scheduler: greenlet) -> None:
        self.w = world
        self.scheduler = scheduler
        #: the execution is being discarded: unwind threads without stopping
        self.closing = False

    def _yield(self, step: Step) -> Any:
        if self.closing:  # a ``finally`` of a thread being killed: keep unwinding
            raise greenlet.GreenletExit
        return self.scheduler.switch(step)

    def lock(self, lk: Lock, mode: str = "x") -> None:
        self._yield(Step("lock", f"{'down_read' if mode == 'r' else 'lock'}({lock_name(lk)})",
                         lk, mode))

    def unlock(self, lk: Lock) -> None:
        self._yield(Step("unlock", f"unlock({lock_name(lk)})", lk))

    def trylock(self, lk: Lock, mode: str = "x") -> bool:
        return bool(self._yield(Step(
            "trylock", f"trylock({lock_name(lk)}{', read' if mode == 'r' else ''})", lk, mode)))

    def rcu_read_lock(self) -> None:
        self._yield(Step("rcu_lock", "rcu_read_lock"))

    def rcu_read_unlock(self) -> None:
        self._yield(Step("rcu_unlock", "rcu_read_unlock"))

    def point(self, label: str) -> None:
        self._yield(Step("do", label))

    def may_sleep(self, label: str) -> None:
        self._yield(Step("do", label, sleeps=True))

    def note(self, text: str) -> None:
        self.w.note(self.w.current, text)

    def use(self, obj: Any, what: str) -> None:
        if getattr(obj, "freed", False):
            t = self.w.current
            self.w.violate(t, f"{t} uses freed {what} (use after free)")

    def use_pgtable(self, mm: Mm, pmd: int) -> None:
        w = self.w
        t = w.current
        protected = w.model.rcu_table_free and w.locks.rcu.get(t, 0) > 0
        if (mm.id, pmd) in w.freed_tables and pmd not in mm.pt.pmd and not protected:
            w.violate(t, f"{t} walks the page table of {mm.name} at {short_page(pmd << 9)} "
                         "after free_pgtables freed it (use after free)")

    def free_pgtable(self, mm: Mm, pmd: int) -> None:
        self.w.freed_tables.add((mm.id, pmd))

    def use_mm_mt(self, mm: Mm) -> None:
        if mm.id in self.w.mt_destroyed:
            t = self.w.current
            self.w.violate(t, f"{t} looks up the mm_mt of {mm.name}, whose nodes exit_mmap freed "
                              "(mt_clear_in_rcu, then __mt_destroy: RCU does not protect them)")

    def destroy_mm_mt(self, mm: Mm) -> None:
        self.w.mt_destroyed.add(mm.id)
