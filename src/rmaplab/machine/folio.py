"""Folios, the zero pages and files with a page cache.

A :class:`Folio` is the unit the rmap designs track.  For an anonymous folio
``mapping`` is the design's rmap slot (the kernel's ``folio->mapping``: an
anon_vma, a tagged root VMA, a CoW context...) and ``index`` is the
kernel's ``folio->index`` (the linear page index of its first page,
``linear_page_index()`` in include/linux/pagemap.h).  The machine never
interprets ``mapping``; designs never touch page tables.

Per-page PG_anon_exclusive bits are kept in ``excl`` as a bit mask (bit i for
page i).  ``mapcount`` counts the page-table entries mapping the folio (a PMD
mapping counts once); with no swap cache and no pins this equals the kernel's
reference count seen by the COW-reuse tests of mm/memory.c.  For large
folios ``mm_counts`` records how many of those entries each mm holds (the
kernel's CONFIG_MM_ID tracking used by ``__wp_can_reuse_large_anon_folio``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rmaplab.machine.mm import Mm


class Folio:
    """One folio (``nr`` pages, order 0 or PMD order)."""

    __slots__ = ("id", "nr", "anon", "zero", "mapping", "index", "excl", "mapcount",
                 "mm_counts", "file", "freed", "design", "pins")

    def __init__(self, fid: int, nr: int, anon: bool, zero: bool = False) -> None:
        self.id = fid
        self.nr = nr
        self.anon = anon
        self.zero = zero
        self.mapping: Any = None
        self.index = 0
        self.excl = 0
        self.mapcount = 0
        self.mm_counts: dict[Mm, int] | None = {} if nr > 1 else None
        self.file: File | None = None
        self.freed = False
        #: free slot for a design's per-folio bookkeeping (e.g. CoW contexts)
        self.design: Any = None
        #: references held by an rmap walker (reclaim, migration): an
        #: unmapped folio is not freed while pinned
        self.pins = 0

    def __repr__(self) -> str:
        kind = "zero" if self.zero else ("anon" if self.anon else "file")
        return f"<folio {self.id} {kind} nr={self.nr} index={self.index:#x}>"


class File:
    """A file (or the shmem object of a shared anonymous mapping).

    ``size`` is in pages; ``cache`` is the page cache (index -> order-0 folio,
    never evicted).  An access at an index >= size raises SIGBUS in the
    kernel, which rmaplab reports as EFAULT.
    """

    __slots__ = ("name", "size", "cache", "shmem")

    def __init__(self, name: str, size: int, shmem: bool = False) -> None:
        self.name = name
        self.size = size
        self.cache: dict[int, Folio] = {}
        self.shmem = shmem

    def __repr__(self) -> str:
        return f"<file {self.name} size={self.size}>"
