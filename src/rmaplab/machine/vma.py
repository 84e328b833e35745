"""Virtual memory areas (``struct vm_area_struct``) and an mm's VMA tree.

Addresses are virtual page numbers (vpn = address >> 12) throughout the
model: a VMA covers pages ``[start, end)``.  ``pgoff`` is the kernel's
``vm_pgoff``: the file page offset of ``start``, or for private anonymous
memory the vpn the VMA's first page had when it was created (do_mmap).

``anon_vma`` mirrors ``vma->anon_vma``: it is owned by the rmap design, and
is non-None exactly when the VMA has anonymous rmap state ("faulted"); the
machine only tests it for None, as mm/ does.  ``rmap`` and ``design`` are
free slots for the design's other per-VMA state (the classic design keeps
the anon_vma_chain list in ``rmap``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rmaplab.machine.flags import VM_SHARED

if TYPE_CHECKING:
    from rmaplab.machine.folio import File
    from rmaplab.machine.mm import Mm


class Vma:
    """One VMA."""

    __slots__ = ("id", "mm", "start", "end", "pgoff", "flags", "file", "anon_vma", "rmap",
                 "detached", "freed", "design", "name", "anon_off")

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
        #: removed from its mm's tree (munmap, merge, exit): vma_mark_detached()
        self.detached = False
        #: the object itself was freed (vm_area_free(); a design may defer it)
        self.freed = False
        #: free slot for a design's extra per-VMA state
        self.design: Any = None
        #: anon_vma_name / special name ([stack], [vdso]...), for traces
        self.name: str | None = None
        #: the "scalable CoW" series' second offset (v5 ``__vm_anon_pgoff``):
        #: ``vm_anon_pgoff = vm_start - anon_off``.  It is ``vm_start`` when a
        #: VMA is made (mmap, brk, insert_vm_struct: anon_off 0), moves with
        #: the VMA's start on split, merge and stack growth (anon_off is
        #: constant), is copied at fork, and changes only when mremap moves
        #: a faulted VMA (the anonymous folios keep their index) or resets
        #: (unfaulted move, MREMAP_DONTUNMAP source).  Only designs with
        #: ``uses_anon_pgoff`` read it; today's kernel has no such field.
        self.anon_off = 0

    @property
    def pages(self) -> int:
        return self.end - self.start

    def is_anonymous(self) -> bool:
        """``vma_is_anonymous()``: no file (private or shared-anon before
        shmem_zero_setup)."""
        return self.file is None

    def is_shared(self) -> bool:
        return bool(self.flags & VM_SHARED)

    @property
    def anon_pgoff(self) -> int:
        """``vma->vm_anon_pgoff`` of the scalable-CoW series (see anon_off)."""
        return self.start - self.anon_off

    def linear_page_index(self, vpn: int) -> int:
        """``linear_page_index()``: the page offset that ``vpn`` maps."""
        return self.pgoff + (vpn - self.start)

    def __repr__(self) -> str:
        from rmaplab.machine.flags import vmflags_str

        return (f"<vma {self.id} [{self.start:#x},{self.end:#x}) pgoff={self.pgoff:#x} "
                f"{vmflags_str(self.flags)}{' file=' + self.file.name if self.file else ''}"
                f"{' anon' if self.anon_vma is not None else ''}>")


class VmaTree:
    """VMAs of one mm ordered by start (the kernel's maple tree ``mm_mt``).

    Two parallel Python lists, starts and VMAs, searched with ``bisect``:
    find/prev/next O(log n); insert/remove O(log n) to find plus an O(n)
    memmove (a few ns per thousand entries); iterating the k VMAs
    overlapping a range O(log n + k); a range change that keeps the order
    (split, merge, expand) O(log n).  Iteration is over the live list: a
    caller that changes the tree while iterating iterates a copy.
    """

    __slots__ = ("_starts", "_vmas")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._vmas: list[Vma] = []

    def __len__(self) -> int:
        return len(self._vmas)

    def __iter__(self) -> Iterator[Vma]:
        return iter(self._vmas)

    def snapshot(self) -> list[Vma]:
        """A copy of the VMAs, ascending: O(n)."""
        return list(self._vmas)

    def load(self, vmas: list[Vma]) -> None:
        """Replace the contents by ``vmas`` (ascending, disjoint): O(n)."""
        self._vmas = list(vmas)
        self._starts = [v.start for v in vmas]

    def clear(self) -> None:
        self._starts.clear()
        self._vmas.clear()

    def _index(self, vma: Vma, start: int | None = None) -> int:
        s = vma.start if start is None else start
        i = bisect_left(self._starts, s)
        if i >= len(self._vmas) or self._vmas[i] is not vma:
            raise KeyError(f"{vma!r} is not in the tree")
        return i

    def insert(self, vma: Vma) -> None:
        i = bisect_left(self._starts, vma.start)
        self._starts.insert(i, vma.start)
        self._vmas.insert(i, vma)

    def remove(self, vma: Vma) -> None:
        i = self._index(vma)
        del self._starts[i]
        del self._vmas[i]

    def replace(self, old: Vma, new: Vma) -> None:
        """Store ``new`` where ``old`` is (same start): fork's
        ``vma_iter_bulk_store`` over the entries ``__mt_dup`` copied."""
        i = self._index(old)
        assert new.start == old.start
        self._vmas[i] = new

    def replace_at(self, i: int, new: Vma) -> None:
        """Store ``new`` at position ``i`` (the caller guarantees the same
        start as the VMA there; :meth:`check` verifies keys): O(1)."""
        self._vmas[i] = new

    def remove_at(self, i: int) -> None:
        """Remove the VMA at position ``i``: O(n) memmove."""
        del self._starts[i]
        del self._vmas[i]

    def rekey(self, vma: Vma, old_start: int) -> None:
        """Call after changing ``vma.start`` (was ``old_start``)."""
        if old_start == vma.start:
            return
        i = self._index(vma, old_start)
        st = self._starts
        if (i == 0 or st[i - 1] < vma.start) and (i + 1 == len(st) or vma.start < st[i + 1]):
            st[i] = vma.start
            return
        del st[i]
        del self._vmas[i]
        self.insert(vma)

    def find(self, vpn: int) -> Vma | None:
        """The VMA containing page ``vpn`` (``vma_lookup``)."""
        i = bisect_right(self._starts, vpn) - 1
        if i < 0:
            return None
        vma = self._vmas[i]
        return vma if vpn < vma.end else None

    def find_vma(self, vpn: int) -> Vma | None:
        """The first VMA ending after ``vpn`` (``find_vma``)."""
        i = bisect_right(self._starts, vpn) - 1
        vmas = self._vmas
        if i >= 0 and vpn < vmas[i].end:
            return vmas[i]
        i += 1
        return vmas[i] if i < len(vmas) else None

    def prev(self, vma: Vma) -> Vma | None:
        """The VMA before ``vma`` in address order (adjacent or not)."""
        i = self._index(vma)
        return self._vmas[i - 1] if i > 0 else None

    def next(self, vma: Vma) -> Vma | None:
        i = self._index(vma) + 1
        return self._vmas[i] if i < len(self._vmas) else None

    def prev_of(self, vpn: int) -> Vma | None:
        """The last VMA starting before page ``vpn``."""
        i = bisect_left(self._starts, vpn) - 1
        return self._vmas[i] if i >= 0 else None

    def overlapping(self, lo: int, hi: int) -> list[Vma]:
        """VMAs overlapping pages [lo, hi), ascending."""
        vmas = self._vmas
        i = bisect_right(self._starts, lo) - 1
        if i < 0 or vmas[i].end <= lo:
            i += 1
        j = bisect_left(self._starts, hi, i)
        return vmas[i:j]

    def check(self) -> None:
        """Assert the tree's invariants: keys match, VMAs ordered, disjoint."""
        assert len(self._starts) == len(self._vmas)
        last_end = None
        for k, vma in zip(self._starts, self._vmas):
            assert k == vma.start, (k, vma)
            assert vma.start < vma.end, vma
            assert not vma.detached, vma
            if last_end is not None:
                assert last_end <= vma.start, vma
            last_end = vma.end
