"""Address spaces (``struct mm_struct``) and processes."""

from __future__ import annotations

from typing import Any

from rmaplab.machine.pagetable import PageTables
from rmaplab.machine.vma import VmaTree


class Mm:
    """One address space: its VMA tree and its page tables.

    ``design`` is a free slot for the rmap design's per-mm state (the CoW
    context keeps its context there).
    """

    __slots__ = ("id", "name", "vmas", "pt", "alive", "design", "parent")

    def __init__(self, mid: int, name: str, parent: Mm | None = None) -> None:
        self.id = mid
        self.name = name
        self.vmas = VmaTree()
        self.pt = PageTables()
        self.alive = True
        self.design: Any = None
        #: the mm this one was forked from (None for the first process)
        self.parent = parent

    def __repr__(self) -> str:
        return f"<mm {self.name}>"

    def __hash__(self) -> int:
        return self.id

    def __eq__(self, other: object) -> bool:
        return self is other
