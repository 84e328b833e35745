"""Folios, swap slots and files with a page cache.

A :class:`Folio` is the unit the rmap designs track.  For an anonymous folio
``mapping`` is the design's rmap slot (the kernel's ``folio->mapping``: an
anon_vma, a tagged root VMA, a CoW context...) and ``index`` is the
kernel's ``folio->index`` (the linear page index of its first page,
``linear_page_index()`` in include/linux/pagemap.h).  The machine never
interprets ``mapping``; designs never touch page tables.

Per-page PG_anon_exclusive bits are kept in ``excl`` as a bit mask (bit i for
page i).  ``mapcount`` counts the present page-table entries mapping the
folio (a PMD mapping counts once); ``mm_counts`` records, for a large folio,
how many of those each mm holds (CONFIG_MM_ID, used by
``__wp_can_reuse_large_anon_folio`` and ``folio_maybe_mapped_shared``).
Both are kept by :meth:`Folio.map` and :meth:`Folio.unmap` only.

The folio's reference count is derived (:meth:`Folio.refcount`): one per
mapping, one per page while it is in the swap cache, one per walker pin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rmaplab.machine.mm import Mm


class Folio:
    """One folio of ``nr`` pages (order 0, an mTHP order, or PMD order)."""

    __slots__ = ("id", "nr", "anon", "zero", "mapping", "index", "excl", "mapcount",
                 "mm_counts", "file", "freed", "pins", "swap")

    def __init__(self, fid: int, nr: int, anon: bool, zero: bool = False) -> None:
        self.id = fid
        self.nr = nr
        self.anon = anon
        self.zero = zero
        self.mapping: Any = None
        self.index = 0
        self.excl = 0
        self.mapcount = 0
        self.mm_counts: dict[Mm, int] | None = {} if nr > 1 and not zero else None
        self.file: File | None = None
        self.freed = False
        #: references held by rmap walkers (reclaim, migration): a folio is
        #: not freed while pinned
        self.pins = 0
        #: swap slots of its pages while it is in the swap cache
        #: (``folio_test_swapcache``), else None
        self.swap: list[SwapSlot] | None = None

    def map(self, mm: Mm, n: int = 1) -> None:
        """``n`` present mappings of the folio were installed in ``mm``.  O(1)."""
        if self.zero:
            return
        self.mapcount += n
        mc = self.mm_counts
        if mc is not None:
            mc[mm] = mc.get(mm, 0) + n

    def unmap(self, mm: Mm, n: int = 1) -> None:
        """``n`` present mappings of the folio in ``mm`` went away.  O(1)."""
        if self.zero:
            return
        self.mapcount -= n
        mc = self.mm_counts
        if mc is not None:
            c = mc[mm] - n
            if c:
                mc[mm] = c
            else:
                del mc[mm]

    def refcount(self) -> int:
        """``folio_ref_count()`` as far as the model knows it."""
        return self.mapcount + (self.nr if self.swap is not None else 0) + self.pins

    def maybe_mapped_shared(self) -> bool:
        """``folio_maybe_mapped_shared()``: mapped by more than one mm (a small
        folio: more than one mapping)."""
        if self.mm_counts is None:
            return self.mapcount > 1
        return len(self.mm_counts) > 1

    def __repr__(self) -> str:
        kind = "zero" if self.zero else ("anon" if self.anon else "file")
        return f"<folio {self.id} {kind} nr={self.nr} index={self.index:#x}>"


class SwapSlot:
    """One slot of the swap device (``swap_map[offset]`` and the swap cache).

    ``count`` is the number of swap PTEs referring to the slot (the swap
    count); ``folio`` is the folio caching it in the swap cache (with
    ``page`` its page in that folio), or None.
    """

    __slots__ = ("id", "count", "folio", "page")

    def __init__(self, sid: int) -> None:
        self.id = sid
        self.count = 0
        self.folio: Folio | None = None
        self.page = 0

    def __repr__(self) -> str:
        return f"<swap slot {self.id} count={self.count} cache={self.folio!r}>"


class File:
    """A file (or the shmem object of a shared anonymous mapping).

    ``size`` is in pages; ``cache`` is the page cache (index -> order-0 folio,
    never evicted).  An access at an index >= size raises SIGBUS in the
    kernel, which rmaplab reports as EFAULT.  ``ident`` is what a trace knows
    of a real file (device, inode), if it came from one.
    """

    __slots__ = ("name", "size", "cache", "shmem", "ident")

    def __init__(self, name: str, size: int, shmem: bool = False,
                 ident: tuple[int, int] | None = None) -> None:
        self.name = name
        self.size = size
        self.cache: dict[int, Folio] = {}
        self.shmem = shmem
        self.ident = ident

    def __repr__(self) -> str:
        return f"<file {self.name} size={self.size}>"
