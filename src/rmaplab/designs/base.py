"""The base of every anonymous-rmap design.

:class:`RmapDesign` implements every hook of the machine's contract
(:class:`rmaplab.machine.design.Design`, which documents when the machine
calls each one) with the behaviour of a design that keeps nothing: no
anon_vma, no walk.  A design subclasses it and overrides what it needs; a
variant of a design subclasses the design and overrides one hook.

A design owns its own objects, the VMA slots ``vma.anon_vma`` (non-None iff
the VMA is "faulted") and ``vma.rmap``/``vma.design``, and the folio slots
``folio.mapping``/``folio.index``.  It never edits page tables: the machine
owns the truth of what is mapped where.  Design hooks may look at the
machine (``self.machine``) read-only, e.g. the VMA neighbours of a VMA
(``find_mergeable_anon_vma``) or, for designs that walk an mm
(ANON_VMA_LAZY, CoW context), the VMA tree; they take the kernel's locks
through ``self.machine.sync`` where the kernel function they mirror does.

Walk cost counters (``self.cost``) are incremented by ``rmap_walk``:
``walks``, ``anchors`` (anon_vmas or contexts visited), ``vmas`` (VMAs
examined), ``lookups`` (tree lookups), ``locks`` (locks taken).  Counters
named ``t:...`` count state transitions (the fuzzer's coverage).

Example, the smallest possible use of a design through the machine::

    >>> from rmaplab.designs import make_design
    >>> from rmaplab.machine.machine import Machine
    >>> m = Machine(make_design("classic"))
    >>> m.mmap("P0", 0, 4)
    0
    >>> m.touch("P0", 0, 0, write=True)
    0
    >>> m.design.measure()
    {'anon_vma': 1, 'avc': 1}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from rmaplab.machine.design import RmapWalkControl, StructEdge, StructNode

if TYPE_CHECKING:
    from rmaplab.machine.folio import Folio, SwapSlot
    from rmaplab.machine.machine import Machine
    from rmaplab.machine.mm import Mm
    from rmaplab.machine.vma import Vma

#: Slab object sizes on the Linux 6.18 x86_64 kernel rmaplab validates
#: against (/sys/kernel/slab/<cache>/slab_size): the bytes one object costs.
OBJECT_BYTES = {
    "anon_vma": 104,
    "anon_vma_chain": 64,
    "vm_area_struct": 192,
}


class RmapDesign:
    """Base class: a design that keeps nothing (every hook is a no-op)."""

    #: name used by ``--design``
    name = "base"
    #: the walk reads ``rwc.found`` (what page_vma_mapped_walk found so far):
    #: the oracle then computes it for every VMA it is offered
    uses_found = False
    #: the design runs on the scalable-CoW series' per-VMA anon pgoff
    #: (``Vma.anon_pgoff``): merges then also need linear anon pgoffs
    uses_anon_pgoff = False
    #: one line for ``rmaplab designs``
    summary = "a design that keeps nothing (the base class)"
    #: options accepted by the constructor: name -> allowed values
    options: dict[str, tuple[str, ...]] = {}

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"design {self.name} takes no options, got {sorted(options)}")
        self.machine: Machine
        self.cost: Counter[str] = Counter()
        #: the kernel's slab allocations and frees this design makes, by the
        #: call site the kmem tracepoints name ("A av __anon_vma_prepare",
        #: "D avc unlink_anon_vmas"): only a design that is the kernel's own
        #: (classic) fills it; ``rmaplab replay`` compares it with a trace's
        self.kmem: Counter[str] = Counter()

    def attach(self, machine: Machine) -> None:
        """Called once by the machine that uses this design."""
        self.machine = machine
        #: the design does something in dup_anon_rmap (the machine skips the
        #: call per copied PTE otherwise: fork's hot loop)
        self.hooks_dup = type(self).dup_anon_rmap is not RmapDesign.dup_anon_rmap

    # ---- faults (mm/memory.c, mm/huge_memory.c, mm/rmap.c) -------------
    def anon_vma_prepare(self, vma: Vma) -> None:
        """``__anon_vma_prepare()`` / ``__vmf_anon_prepare()``: give ``vma``
        anonymous rmap state before its first anonymous folio."""

    def folio_add_new_anon_rmap(self, folio: Folio, vma: Vma, vpn: int, exclusive: bool) -> None:
        """``folio_add_new_anon_rmap()``: a new anonymous folio whose first
        page is mapped at ``vpn`` of ``vma``; set ``folio.mapping/index``."""

    def folio_add_anon_rmap(self, folio: Folio, vma: Vma, vpn: int) -> None:
        """``folio_add_anon_rmap_ptes()`` outside fork: an existing anonymous
        folio (from the swap cache) is mapped in ``vma`` with its first page
        at ``vpn``; the kernel leaves ``mapping``/``index`` alone."""

    def folio_move_anon_rmap(self, folio: Folio, vma: Vma) -> None:
        """``folio_move_anon_rmap()``: COW reuse of an exclusive folio by ``vma``."""

    def ksm_might_need_to_copy(self, folio: Folio, vma: Vma, vpn: int) -> bool:
        """``ksm_might_need_to_copy()`` on a swap-cache hit: must ``vma`` get
        its own copy because the folio's rmap cannot find it there?"""
        return False

    def folio_freed(self, folio: Folio) -> None:
        """The last reference to an anonymous folio went away."""

    # ---- VMA lifecycle (mm/vma.c, mm/rmap.c) ----------------------------
    def anon_vma_clone(self, dst: Vma, src: Vma, op: str) -> None:
        """``anon_vma_clone()``: ``dst`` was duplicated from ``src`` by a
        split (op='split'), an mremap copy (op='remap') or ``dup_anon_vma``
        during a merge (op='merge'); ``dst.anon_vma`` already holds
        ``src.anon_vma`` (``vm_area_dup`` copies it)."""

    def unlink_anon_vmas(self, vma: Vma) -> None:
        """``unlink_anon_vmas()``: ``vma`` is removed (munmap, exit, merge) or
        loses its anonymous state (mremap MREMAP_DONTUNMAP)."""

    def vma_range_changed(self, vma: Vma) -> None:
        """``vm_start``/``vm_end``/``vm_pgoff`` of ``vma`` changed
        (``anon_vma_interval_tree_pre/post_update_vma``)."""

    def vm_area_free(self, vma: Vma) -> None:
        """``vm_area_free()``: the machine is done with ``vma`` (detached);
        the object is freed now (a design may keep it while referenced)."""
        vma.freed = True

    def is_mergeable_anon_vma(self, tgt: Vma, src_anon: Any, src: Vma | None,
                              copied_from: Vma | None) -> bool:
        """``is_mergeable_anon_vma()``: may the range carrying ``src_anon``
        (from ``src``, or copied from ``copied_from`` by mremap) merge with
        neighbour ``tgt``?"""
        return src_anon is None or tgt.anon_vma is None or src_anon is tgt.anon_vma

    def anon_vmas_compatible(self, prev: Vma, next: Vma) -> bool:
        """The test in ``can_vma_merge_right()`` that prev and next, both to
        be merged with the range, are compatible with each other."""
        return prev.anon_vma is None or next.anon_vma is None or prev.anon_vma is next.anon_vma

    def dup_anon_vma(self, dst: Vma, src: Vma) -> None:
        """``dup_anon_vma()``: when ``dst`` absorbs ``src``'s faulted range."""
        if src.anon_vma is not None and dst.anon_vma is None:
            dst.anon_vma = src.anon_vma
            self.anon_vma_clone(dst, src, "merge")

    def merge_commit(self, target: Vma, sources: list[Vma]) -> None:
        """``vma_complete()`` of a merge: ``target`` now covers (parts of)
        ``sources`` (removed or shrunk VMAs, or the mremap source), just
        before the removed ones are unlinked.  The classic design needs
        nothing here (``dup_anon_vma`` did it); designs that let VMAs with
        different rmap anchors merge take their references here."""

    def anon_vma_lock_write(self, vma: Vma) -> Any:
        """``anon_vma_lock_write(vma->anon_vma)`` as ``vma_prepare()`` and
        ``take_rmap_locks()`` take it; returns what to pass to
        :meth:`anon_vma_unlock_write` (None: nothing was locked)."""
        return None

    def anon_vma_unlock_write(self, token: Any) -> None:
        """Release what :meth:`anon_vma_lock_write` took."""

    # ---- fork (kernel/fork.c dup_mmap -> mm/mmap.c, mm/rmap.c) ----------
    def dup_mmap_start(self, parent: Mm, child: Mm) -> None:
        """Start of ``dup_mmap()``, with both mmap locks held."""

    def anon_vma_fork(self, child_vma: Vma, parent_vma: Vma) -> None:
        """``anon_vma_fork()`` for one VMA (not DONTCOPY, not WIPEONFORK);
        ``child_vma.anon_vma`` holds the parent's value (``vm_area_dup``)."""

    def dup_anon_rmap(self, folio: Folio, src_vma: Vma, dst_vma: Vma) -> None:
        """``folio_try_dup_anon_rmap_pte/pmd()``: fork shares an anonymous
        folio mapped in ``src_vma`` into ``dst_vma``."""

    def copy_swap_pte(self, slot: SwapSlot, src_vma: Vma, dst_vma: Vma) -> None:
        """``copy_nonpresent_pte()`` duplicated a swap entry of ``slot`` into
        ``dst_vma`` (its swap-cache folio, if any, is ``slot.folio``)."""

    def dup_mmap_end(self, parent: Mm, child: Mm) -> None:
        """End of ``dup_mmap()``."""

    # ---- mremap (mm/mremap.c) ---------------------------------------------
    def move_vma_start(self, vma: Vma) -> None:
        """``move_vma()`` is about to move (part of) ``vma``'s pages."""

    def move_anon_pte(self, folio: Folio, old_vma: Vma, new_vma: Vma, old_vpn: int,
                      new_vpn: int) -> None:
        """``move_ptes()``/``move_huge_pmd()`` moved a mapping of an anonymous
        folio from ``old_vpn`` in ``old_vma`` to ``new_vpn`` in ``new_vma``."""

    # ---- exit ---------------------------------------------------------------
    def exit_mm(self, mm: Mm) -> None:
        """``exit_mmap()`` finished tearing down ``mm`` (all VMAs unlinked)."""

    # ---- rmap walks (mm/rmap.c, mm/migrate.c) --------------------------------
    def rmap_walk(self, folio: Folio, rwc: RmapWalkControl) -> None:
        """``rmap_walk_anon()``: call ``rwc.rmap_one(folio, vma, base)`` for
        every VMA that may map ``folio`` (``base``: the vpn of the folio's
        first page in that VMA), taking the design's locks; stop when it
        returns False; set ``rwc.contended`` if a trylock failed."""

    def folio_get_anon_vma(self, folio: Folio) -> Any:
        """``folio_get_anon_vma()``: pin the folio's rmap anchor for migration."""
        return folio.mapping

    def folio_put_anon_vma(self, handle: Any) -> None:
        """``put_anon_vma()`` of what :meth:`folio_get_anon_vma` pinned."""

    def folio_migrate_mapping(self, src: Folio, dst: Folio) -> None:
        """``move_to_new_folio()``: ``dst`` takes ``src``'s mapping and index."""
        dst.mapping, dst.index = src.mapping, src.index

    # ---- explorer, accounting ------------------------------------------------
    def anchor_name(self, anchor: Any) -> str:
        """How traces name an rmap anchor (``folio->mapping`` value)."""
        return "none" if anchor is None else repr(anchor)

    def state_key(self) -> Hashable:
        """The design's state beyond the VMA and folio slots, as a hashable
        value (the explorer's state cache): two states with equal keys must
        have the same futures."""
        return ()

    def structure(self) -> tuple[list[StructNode], list[StructEdge]]:
        """The design's live objects and their links to VMAs, folios and each
        other, for ``rmaplab draw`` (machine objects are ``vma<N>``,
        ``folio<N>``, ``mm<N>``)."""
        return [], []

    def accounting(self) -> dict[str, tuple[int, int]]:
        """Live objects of this design: kind -> (count, bytes)."""
        return {}

    def measure(self) -> dict[str, int]:
        """Fields of a ``measure`` line: anon_vma and avc first."""
        return {"anon_vma": 0, "avc": 0}

    def retained_vmas(self) -> int:
        """VMA objects kept alive after being unmapped (ANON_VMA_LAZY roots)."""
        return 0

    def memory(self) -> dict[str, tuple[int, int]]:
        """Objects and bytes per kind, with every VMA (live in any process,
        or retained after unmap) counted as ``vm_area_struct``."""
        acc = dict(self.accounting())
        retained = acc.pop("retained_vma", (0, 0))[0]
        n = sum(len(mm.vmas) for mm in self.machine.mms.values()) + retained
        out = {"vm_area_struct": (n, n * self.vma_bytes())}
        out.update(acc)
        return out

    def measure_extra(self) -> dict[str, int]:
        """``measure`` with the extra fields: live VMAs of all processes,
        retained VMAs, and the bytes of every kind of :meth:`memory`."""
        fields = dict(self.measure())
        retained = self.retained_vmas()
        mem = self.memory()
        fields["vmas"] = mem["vm_area_struct"][0] - retained
        fields["retained_vmas"] = retained
        fields["bytes"] = sum(b for _, b in mem.values())
        return fields

    def vma_bytes(self) -> int:
        """Bytes of one ``vm_area_struct`` under this design."""
        return OBJECT_BYTES["vm_area_struct"]

    def check_invariants(self) -> list[str]:
        """Violations of the design's own invariants (empty if none)."""
        return []
