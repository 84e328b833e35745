"""Virtual memory areas and the ordered VMA tree of an mm.

Addresses are virtual page numbers (vpn = address >> 12) throughout the
model: a VMA covers pages ``[start, end)``.  ``pgoff`` is the kernel's
``vm_pgoff``: the file page offset of ``start``, or for private anonymous
memory the vpn the VMA's first page had when it was created (do_mmap).

``anon_vma`` mirrors ``vma->anon_vma``: it is owned by the rmap design, and
is non-None exactly when the VMA has anonymous rmap state ("faulted"); the
machine only tests it for None, as mm/ does.  ``rmap`` is a free slot for the
design's other per-VMA state (the classic design keeps the anon_vma_chain
list there).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedDict

from rmaplab.machine.flags import VM_SHARED

if TYPE_CHECKING:
    from rmaplab.machine.folio import File
    from rmaplab.machine.mm import Mm


class Vma:
    """One VMA (``struct vm_area_struct``)."""

    __slots__ = ("id", "mm", "start", "end", "pgoff", "flags", "file", "anon_vma", "rmap",
                 "detached", "design")

    def __init__(self, vid: int, mm: Mm, start: int, end: int, pgoff: int, flags: int,
                 file: File | None) -> None:
        self.id = vid
        self.mm = mm
        self.start = start
        self.end = end
        self.pgoff = pgoff
        self.flags = flags
        self.file = file
        self.anon_vma: Any = None
        self.rmap: Any = None
        #: True once removed from its mm (munmap, merge, exit)
        self.detached = False
        #: free slot for a design's extra per-VMA state
        self.design: Any = None

    @property
    def pages(self) -> int:
        return self.end - self.start

    def is_anonymous(self) -> bool:
        """``vma_is_anonymous()``: private anonymous memory (no vm_ops/file)."""
        return self.file is None

    def is_shared(self) -> bool:
        return bool(self.flags & VM_SHARED)

    def linear_page_index(self, vpn: int) -> int:
        """``linear_page_index()``: the page offset that ``vpn`` maps."""
        return self.pgoff + (vpn - self.start)

    def mapping_base(self) -> int:
        """``vm_start - vm_pgoff`` in pages (ANON_VMA_LAZY's vma_mapping_base,
        the CoW context's offset)."""
        return self.start - self.pgoff

    def __repr__(self) -> str:
        from rmaplab.machine.flags import vmflags_str

        return (f"<vma {self.id} [{self.start:#x},{self.end:#x}) pgoff={self.pgoff:#x} "
                f"{vmflags_str(self.flags)}{' file=' + self.file.name if self.file else ''}"
                f"{' anon' if self.anon_vma is not None else ''}>")


class VmaTree:
    """VMAs of one mm ordered by start (the kernel's maple tree ``mm_mt``).

    Backed by a :class:`sortedcontainers.SortedDict` keyed by start page.
    find/prev/next: O(log n); insert/remove: O(log n); iterating the k VMAs
    overlapping a range: O(log n + k).
    """

    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d: SortedDict = SortedDict()

    def __len__(self) -> int:
        return len(self._d)

    def __iter__(self) -> Iterator[Vma]:
        return iter(self._d.values())

    def load(self, vmas: list[Vma]) -> None:
        """Replace the contents by ``vmas`` (ascending, disjoint): O(n)."""
        self._d = SortedDict((v.start, v) for v in vmas)

    def clear(self) -> None:
        self._d.clear()

    def insert(self, vma: Vma) -> None:
        self._d[vma.start] = vma

    def remove(self, vma: Vma) -> None:
        del self._d[vma.start]

    def rekey(self, vma: Vma, old_start: int) -> None:
        """Call after changing ``vma.start`` (was ``old_start``)."""
        if old_start != vma.start:
            del self._d[old_start]
            self._d[vma.start] = vma

    def find(self, vpn: int) -> Vma | None:
        """The VMA containing page ``vpn`` (``vma_lookup``)."""
        d = self._d
        i = d.bisect_right(vpn) - 1
        if i < 0:
            return None
        vma = d.peekitem(i)[1]
        return vma if vpn < vma.end else None

    def find_vma(self, vpn: int) -> Vma | None:
        """The first VMA ending after ``vpn`` (``find_vma``)."""
        d = self._d
        i = d.bisect_right(vpn) - 1
        if i >= 0:
            vma = d.peekitem(i)[1]
            if vpn < vma.end:
                return vma
        i += 1
        return d.peekitem(i)[1] if i < len(d) else None

    def prev(self, vma: Vma) -> Vma | None:
        """The VMA before ``vma`` in address order (adjacent or not)."""
        i = self._d.index(vma.start)
        return self._d.peekitem(i - 1)[1] if i > 0 else None

    def next(self, vma: Vma) -> Vma | None:
        d = self._d
        i = d.index(vma.start) + 1
        return d.peekitem(i)[1] if i < len(d) else None

    def prev_of(self, vpn: int) -> Vma | None:
        """The last VMA starting before page ``vpn``."""
        i = self._d.bisect_left(vpn) - 1
        return self._d.peekitem(i)[1] if i >= 0 else None

    def overlapping(self, lo: int, hi: int) -> list[Vma]:
        """VMAs overlapping pages [lo, hi), ascending."""
        d = self._d
        i = d.bisect_right(lo) - 1
        if i < 0 or d.peekitem(i)[1].end <= lo:
            i += 1
        out = []
        n = len(d)
        while i < n:
            vma = d.peekitem(i)[1]
            if vma.start >= hi:
                break
            out.append(vma)
            i += 1
        return out

    def check(self) -> None:
        """Assert the tree's invariants: keys match, VMAs ordered, disjoint."""
        last_end = None
        for k, vma in self._d.items():
            assert k == vma.start, (k, vma)
            assert vma.start < vma.end, vma
            assert not vma.detached, vma
            if last_end is not None:
                assert last_end <= vma.start, vma
            last_end = vma.end
