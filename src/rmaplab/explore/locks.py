"""Locks as the kernel has them, with the lock order of mm/rmap.c.

The documented order (mm/rmap.c, "Lock ordering in mm"), outermost first::

    mm->mmap_lock
      folio_lock
        vma_start_write (the per-VMA lock)
          mapping->i_mmap_rwsem
            anon_vma->rwsem
              mm->page_table_lock or pte_lock

A thread that blocks on a lock ranked *outside* one it holds breaks the
order (a trylock cannot deadlock and is exempt).  RCU read-side sections
are tracked separately: a thread must not sleep inside one.

>>> t = LockTable()
>>> t.acquire("A", ("ptl", "P0", (0x6F0000000000 >> 12 >> 9)), "x")
>>> t.order_violation("A", ("folio", 7))
'takes folio 7 while holding ptl P0 pmd 0 (order: folio before ptl)'
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

#: rank of each lock class in the documented order (lower = taken first)
RANK = {"mmap": 1, "folio": 2, "vma": 3, "i_mmap": 4, "anon_vma": 5, "ptl": 6}

Lock = tuple[Hashable, ...]  # (class, identity...)


def lock_name(lock: Lock) -> str:
    """How a trace names a lock: ``mmap P0``, ``vma 3``, ``ptl P0 pmd 0``
    (the PMD counted from the arena's first), ``anon_vma 1``, ``folio 7``.

    >>> lock_name(("ptl", "P0", (0x6F0000000000 >> 12 >> 9) + 2))
    'ptl P0 pmd 2'
    """
    if lock and lock[0] == "ptl" and len(lock) == 3:
        from rmaplab.machine.constants import ARENA_VPN

        return f"ptl {lock[1]} pmd {int(lock[2]) - (ARENA_VPN >> 9)}"  # type: ignore[call-overload]
    return " ".join(str(x) for x in lock)


@dataclass
class LockState:
    writer: str | None = None
    readers: list[str] = field(default_factory=list)


class LockTable:
    """Holders of every lock; shared ('r') and exclusive ('x') modes."""

    def __init__(self) -> None:
        self.locks: dict[Lock, LockState] = {}
        self.held: dict[str, list[Lock]] = {}
        self.rcu: dict[str, int] = {}

    def available(self, lock: Lock, mode: str) -> bool:
        s = self.locks.get(lock)
        if s is None:
            return True
        if mode == "r":
            return s.writer is None
        return s.writer is None and not s.readers

    def acquire(self, thread: str, lock: Lock, mode: str) -> None:
        s = self.locks.setdefault(lock, LockState())
        if mode == "r":
            s.readers.append(thread)
        else:
            s.writer = thread
        self.held.setdefault(thread, []).append(lock)

    def release(self, thread: str, lock: Lock) -> None:
        s = self.locks[lock]
        if s.writer == thread:
            s.writer = None
        else:
            s.readers.remove(thread)
        self.held[thread].remove(lock)

    def order_violation(self, thread: str, lock: Lock) -> str | None:
        """Why blocking on ``lock`` now breaks the documented order, or None."""
        r = RANK.get(str(lock[0]))
        if r is None:
            return None
        for h in self.held.get(thread, []):
            hr = RANK.get(str(h[0]))
            if hr is not None and hr > r:
                return (f"takes {lock_name(lock)} while holding {lock_name(h)} "
                        f"(order: {lock[0]} before {h[0]})")
        return None

    def snapshot(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple(sorted((t, tuple(lock_name(x) for x in ls)) for t, ls in self.held.items()))
