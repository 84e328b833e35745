"""The points of a kernel path where another CPU may run.

Every kernel path of the model (``machine/`` and each design's hooks) is
written once, as straight-line Python, and announces through the machine's
:class:`Sync` object the places where the kernel can be preempted or
another CPU can interleave: lock acquisitions and releases, RCU read-side
sections, reads and writes of shared state that no lock orders (``point``),
and the objects it dereferences (``use``: a use after free there is a bug
KASAN would report).

The sequential model runs with the base class, whose methods do nothing: a
path runs straight through.  The interleaving explorer
(:mod:`rmaplab.explore`) installs a subclass that suspends the running
thread (a greenlet) at each point and lets its scheduler decide who runs
next, SimPy style: the scheduler knows nothing of what a path does, a path
knows nothing of the scheduler.

Why greenlets and not generators (measured on the reference machine,
``python3 -m rmaplab bench`` and a loop of 2,000,000 iterations): a no-op
method call costs ~17 ns, a call guarded by ``if sync.active`` ~1 ns, a
``yield`` drained by a loop ~36 ns, and a generator-based path must make
every caller up to the system call a generator too (``yield from`` per
call); a greenlet switch pair costs ~360 ns, paid only by the explorer.
Hot loops (one iteration per PTE) therefore guard their points with
``if sync.active:``; other points are plain calls.

Lock identities are tuples naming the kernel's lock and its object:
``("mmap", mm)``, ``("vma", vma id)``, ``("folio", folio id)``,
``("anon_vma", root anon_vma id)``, ``("ptl", mm, pmd index)``.

>>> s = Sync()
>>> s.lock(("mmap", "P0")); s.point("anything"); s.unlock(("mmap", "P0"))
>>> s.trylock(("mmap", "P0"))
True
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

Lock = tuple[Hashable, ...]


class Sync:
    """Sequential execution: every point is free and every trylock succeeds."""

    #: True when an explorer is watching (guards formatting of labels/notes)
    active = False

    def lock(self, lk: Lock, mode: str = "x") -> None:
        """Acquire ``lk`` (mode 'x' exclusive or 'r' shared); may block."""

    def unlock(self, lk: Lock) -> None:
        """Release ``lk``."""

    def trylock(self, lk: Lock, mode: str = "x") -> bool:
        """Try to acquire ``lk`` without blocking; True if taken."""
        return True

    def rcu_read_lock(self) -> None:
        """Enter an RCU read-side section (must not sleep until unlock)."""

    def rcu_read_unlock(self) -> None:
        """Leave the RCU read-side section."""

    def point(self, label: str) -> None:
        """A read or write of shared state another CPU may interleave with."""

    def may_sleep(self, label: str) -> None:
        """A point that may sleep (a bug inside an RCU read-side section)."""

    def note(self, text: str) -> None:
        """A detail of the last point (a value read, a decision) for traces;
        callers format it only when :attr:`active`."""

    def use(self, obj: Any, what: str) -> None:
        """``obj`` (which has a ``freed`` flag) is dereferenced here."""

    def use_pgtable(self, mm: Any, pmd: int) -> None:
        """The page table of ``mm`` at PMD index ``pmd`` is read here."""

    def free_pgtable(self, mm: Any, pmd: int) -> None:
        """free_pgd_range() (or PT reclaim) freed that page table."""

    def use_mm_mt(self, mm: Any) -> None:
        """``mm``'s maple tree (mm_mt) is walked here."""

    def destroy_mm_mt(self, mm: Any) -> None:
        """``__mt_destroy(&mm->mm_mt)``: its nodes are freed at once."""
