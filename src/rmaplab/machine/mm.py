"""Address spaces (``struct mm_struct``) and the tasks using them."""

from __future__ import annotations

from typing import Any

from rmaplab.machine.pagetable import PageTables
from rmaplab.machine.vma import Vma, VmaTree


class Mm:
    """One address space: its VMA tree, its page tables and its users.

    ``users`` is ``mm_users``: the tasks sharing it (threads, a vfork child
    until it execs or exits); ``exit_mmap`` runs when it drops to zero.
    ``design`` is a free slot for the rmap design's per-mm state (the CoW
    context keeps its context there).  ``brk``/``start_brk`` are the heap's
    bounds (vpn), ``None`` until a trace or an exec sets them.
    """

    __slots__ = ("id", "name", "vmas", "pt", "alive", "design", "parent", "users",
                 "write_locked", "start_brk", "brk", "def_flags")

    def __init__(self, mid: int, name: str, parent: Mm | None = None) -> None:
        self.id = mid
        self.name = name
        self.vmas = VmaTree()
        self.pt = PageTables()
        self.alive = True
        self.design: Any = None
        #: the mm this one was forked from (None for the first process)
        self.parent = parent
        self.users = 1
        #: VMAs write-locked (vma_start_write) under the current mmap write
        #: lock; mmap_write_unlock() releases them all (vm_lock_seq)
        self.write_locked: list[Vma] = []
        self.start_brk: int | None = None
        self.brk: int | None = None
        #: mm->def_flags (VM_LOCKED|VM_LOCKONFAULT after mlockall(MCL_FUTURE))
        self.def_flags = 0

    def __repr__(self) -> str:
        return f"<mm {self.name}>"

    def __hash__(self) -> int:
        return self.id

    def __eq__(self, other: object) -> bool:
        return self is other


class Task:
    """A task (a process or a thread) and the mm it runs on."""

    __slots__ = ("name", "mm")

    def __init__(self, name: str, mm: Mm) -> None:
        self.name = name
        self.mm = mm

    def __repr__(self) -> str:
        return f"<task {self.name} on {self.mm.name}>"
