"""VMA split, merge, copy and unmap, following Linux 6.18 mm/vma.c.

These are methods of :class:`rmaplab.machine.machine.Machine` (a mixin), so
that they can reach the page tables (THP PMDs are split when a VMA boundary
moves inside them) and the rmap design (anon_vma compatibility, cloning and
unlinking are design-specific).  Every method names the kernel function it
mirrors.  The merge code follows the 6.16+ structure written by Lorenzo
Stoakes (``vma_merge_new_range``/``vma_merge_existing_range``/``vma_expand``,
``struct vma_merge_struct``), including the "fork child" rule of commit
965f55dea0e3 ("mmap: avoid merging cloned VMAs") and the January 2026
``copied_from`` fix for mremap merges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rmaplab.machine.constants import short_page
from rmaplab.machine.flags import VM_SOFTDIRTY, VM_SPECIAL
from rmaplab.machine.vma import Vma

if TYPE_CHECKING:
    from rmaplab.machine.config import KernelConfig
    from rmaplab.machine.design import Design
    from rmaplab.machine.folio import File
    from rmaplab.machine.mm import Mm
    from rmaplab.machine.sync import Sync

_NO_SOFTDIRTY = ~VM_SOFTDIRTY


class Vmg:
    """``struct vma_merge_struct``: a proposed range and its neighbours."""

    __slots__ = ("mm", "prev", "middle", "next", "target", "start", "end", "pgoff", "flags",
                 "file", "anon_vma", "copied_from", "just_expand", "remove_middle",
                 "remove_next", "adjust_middle_start", "adjust_next_start", "anon_off")

    def __init__(self, mm: Mm, start: int, end: int, pgoff: int, flags: int,
                 file: File | None, anon_vma: Any = None, prev: Vma | None = None,
                 middle: Vma | None = None, next: Vma | None = None) -> None:
        self.mm = mm
        self.prev = prev
        self.middle = middle
        self.next = next
        self.target: Vma | None = None
        self.start = start
        self.end = end
        self.pgoff = pgoff
        self.flags = flags
        self.file = file
        self.anon_vma = anon_vma
        self.copied_from: Vma | None = None
        #: the range's Vma.anon_off (0: a new mapping)
        self.anon_off = 0
        self.just_expand = False
        self.remove_middle = False
        self.remove_next = False
        self.adjust_middle_start = False
        self.adjust_next_start = False


def vmg_for_vma(prev: Vma | None, vma: Vma, start: int, end: int) -> Vmg:
    """``VMG_VMA_STATE()``: a merge of [start, end) of an existing ``vma``."""
    vmg = Vmg(vma.mm, start, end, vma.pgoff + (start - vma.start), vma.flags, vma.file,
              vma.anon_vma, prev=prev, middle=vma)
    vmg.anon_off = vma.anon_off
    return vmg


class VmaOps:
    """mm/vma.c, as a mixin of Machine."""

    if TYPE_CHECKING:  # provided by Machine and the other mixins
        design: Design
        config: KernelConfig
        sync: Sync
        next_vma_id: int

        def zap(self, mm: Mm, lo: int, hi: int, reclaim_pt: bool = False,
                what: str = "zap") -> None: ...
        def split_pmd_at(self, mm: Mm, vpn: int) -> None: ...
        def free_pgtables(self, mm: Mm, vmas: list[Vma], floor: int, ceiling: int,
                          mm_wr_locked: bool = True) -> None: ...
        def vma_start_write(self, vma: Vma) -> None: ...
        def vm_area_free(self, vma: Vma) -> None: ...

    # -- creation / removal ------------------------------------------------
    def new_vma(self, mm: Mm, start: int, end: int, pgoff: int, flags: int,
                file: File | None) -> Vma:
        """``vm_area_alloc()`` + ``vma_set_range()``; not yet in the tree."""
        self.next_vma_id += 1
        return Vma(self.next_vma_id, mm, start, end, pgoff, flags, file)

    def vm_area_dup(self, vma: Vma, mm: Mm | None = None) -> Vma:
        """``vm_area_dup()`` (mm/vma_init.c): a copy sharing ``anon_vma``
        but with an empty anon_vma_chain (``rmap`` is not copied)."""
        new = self.new_vma(mm or vma.mm, vma.start, vma.end, vma.pgoff, vma.flags, vma.file)
        new.anon_vma = vma.anon_vma
        new.anon_off = vma.anon_off
        return new

    def set_range(self, vma: Vma, start: int, end: int, pgoff: int) -> None:
        """``vma_set_range()`` on a VMA in the tree (re-keys it, tells the
        design: ``anon_vma_interval_tree_pre/post_update_vma``)."""
        old_start = vma.start
        vma.start, vma.end, vma.pgoff = start, end, pgoff
        if not vma.detached:
            vma.mm.vmas.rekey(vma, old_start)
        self.design.vma_range_changed(vma)

    # -- split ---------------------------------------------------------------
    def split_vma(self, vma: Vma, addr: int, new_below: bool) -> Vma:
        """``__split_vma()``: split ``vma`` at ``addr``; the returned new VMA is
        the lower part if ``new_below`` else the upper part; ``vma`` keeps
        the other part.  +L anon_vma_chains in the classic design."""
        new = self.vm_area_dup(vma)
        if new_below:
            new.end = addr
        else:
            new.start = addr
            new.pgoff += addr - vma.start
        design = self.design
        design.anon_vma_clone(new, vma, "split")
        self.vma_start_write(vma)
        tok = design.anon_vma_lock_write(vma)  # vma_prepare()
        self.sync.point(f"__split_vma(VMA {vma.id}) at {short_page(addr)}")
        self.split_pmd_at(vma.mm, addr)  # vma_adjust_trans_huge()
        if new_below:
            self.set_range(vma, addr, vma.end, vma.pgoff + (addr - new.start))
        else:
            self.set_range(vma, vma.start, addr, vma.pgoff)
        vma.mm.vmas.insert(new)
        if self.sync.active:
            self.sync.note(f"-> VMA {vma.id} keeps [{short_page(vma.start)}.."
                           f"{short_page(vma.end - 1)}], new VMA {new.id} "
                           f"[{short_page(new.start)}..{short_page(new.end - 1)}]")
        design.anon_vma_unlock_write(tok)  # vma_complete()
        return new

    # -- merge checks ----------------------------------------------------------
    def is_mergeable_vma(self, vmg: Vmg, merge_next: bool) -> bool:
        """``is_mergeable_vma()``: flags (but VM_SOFTDIRTY), file; mempolicy,
        userfaultfd context and anon_vma_name are never set in rmaplab, and
        no modelled VMA has ``vm_ops->close``."""
        tgt = vmg.next if merge_next else vmg.prev
        assert tgt is not None
        if (tgt.flags ^ vmg.flags) & _NO_SOFTDIRTY:
            return False
        return tgt.file is vmg.file

    def is_mergeable_anon_vma(self, vmg: Vmg, merge_next: bool) -> bool:
        """``is_mergeable_anon_vma()``: asks the design."""
        tgt = vmg.next if merge_next else vmg.prev
        assert tgt is not None, "merge with a missing neighbour"
        copied = vmg.copied_from if self.config.remap_copied_from_fix else None
        return self.design.is_mergeable_anon_vma(tgt, vmg.anon_vma, vmg.middle, copied)

    def can_vma_merge_after(self, vmg: Vmg) -> bool:
        """``can_vma_merge_after()``: the range can extend ``prev`` upwards."""
        prev = vmg.prev
        assert prev is not None
        return (self.is_mergeable_vma(vmg, False) and self.is_mergeable_anon_vma(vmg, False)
                and prev.pgoff + prev.pages == vmg.pgoff
                and (not self.design.uses_anon_pgoff or prev.anon_off == vmg.anon_off))

    def can_vma_merge_before(self, vmg: Vmg) -> bool:
        """``can_vma_merge_before()``: the range can extend ``next`` downwards."""
        nxt = vmg.next
        assert nxt is not None
        return (self.is_mergeable_vma(vmg, True) and self.is_mergeable_anon_vma(vmg, True)
                and nxt.pgoff == vmg.pgoff + (vmg.end - vmg.start)
                and (not self.design.uses_anon_pgoff or nxt.anon_off == vmg.anon_off))

    def can_vma_merge_left(self, vmg: Vmg) -> bool:
        """``can_vma_merge_left()``."""
        return (vmg.prev is not None and vmg.prev.end == vmg.start
                and self.can_vma_merge_after(vmg))

    def can_vma_merge_right(self, vmg: Vmg, can_merge_left: bool) -> bool:
        """``can_vma_merge_right()``: also requires prev and next to be
        compatible with each other when both would merge."""
        nxt = vmg.next
        if nxt is None or vmg.end != nxt.start or not self.can_vma_merge_before(vmg):
            return False
        if not can_merge_left:
            return True
        assert vmg.prev is not None
        return self.design.anon_vmas_compatible(vmg.prev, nxt)

    # -- merge execution -------------------------------------------------------
    def commit_merge(self, vmg: Vmg) -> None:
        """``commit_merge()`` + ``vma_complete()``: apply the new ranges,
        split THP PMDs cut by the new boundaries, and remove the merged-away
        VMAs (``anon_vma_merge()`` -> ``unlink_anon_vmas()`` for those with
        an anon_vma)."""
        mm = vmg.mm
        removed = []
        if vmg.remove_middle:
            assert vmg.middle is not None
            removed.append(vmg.middle)
        if vmg.remove_next:
            assert vmg.next is not None
            removed.append(vmg.next)
        vma = vmg.middle if vmg.adjust_next_start else vmg.target
        assert vma is not None
        target = vmg.target
        assert target is not None
        for v in (target, vmg.middle, vmg.next):
            if v is not None and not v.detached:
                self.vma_start_write(v)
        tok = self.design.anon_vma_lock_write(target)  # vma_prepare()
        self.sync.point(f"commit_merge into VMA {target.id}")
        for r in removed:
            mm.vmas.remove(r)
            r.detached = True
        # vma_adjust_trans_huge(): split PMDs straddling the new boundaries
        self.split_pmd_at(mm, vmg.start)
        self.split_pmd_at(mm, vmg.end)
        self.set_range(vma, vmg.start, vmg.end, vmg.pgoff)
        # vmg_adjust_set_range()
        if vmg.adjust_middle_start:
            adj = vmg.middle
            assert adj is not None
            self.set_range(adj, vmg.end, adj.end, adj.pgoff + (vmg.end - adj.start))
        elif vmg.adjust_next_start:
            adj = vmg.next
            assert adj is not None
            self.set_range(adj, vmg.end, adj.end, adj.pgoff - (adj.start - vmg.end))
        # VMAs whose range (or part of it) the target now covers
        absorbed = [v for v in (vmg.middle, vmg.next if vmg.remove_next else None,
                                vmg.copied_from) if v is not None and v is not vmg.target]
        self.design.merge_commit(target, absorbed)
        if self.sync.active:
            self.sync.note("-> " + ", ".join(
                f"VMA {v.id} [{short_page(v.start)}..{short_page(v.end - 1)}]" for v in mm.vmas))
        self.design.anon_vma_unlock_write(tok)  # vma_complete()
        for r in removed:
            if r.anon_vma is not None:
                self.design.unlink_anon_vmas(r)
            self.vm_area_free(r)

    def vma_expand(self, vmg: Vmg) -> None:
        """``vma_expand()``: grow ``vmg.target`` over [start, end), removing
        ``next`` when the range reaches its end; anon_vma state is
        duplicated from next and (mremap) from ``copied_from``."""
        target, nxt = vmg.target, vmg.next
        assert target is not None
        if nxt is not None and target is not nxt and vmg.end == nxt.end:
            vmg.remove_next = True
            self.design.dup_anon_vma(target, nxt)
        if vmg.copied_from is not None and self.config.remap_copied_from_fix:
            self.design.dup_anon_vma(target, vmg.copied_from)
        self.commit_merge(vmg)

    def vma_merge_new_range(self, vmg: Vmg) -> Vma | None:
        """``vma_merge_new_range()``: merge a new range [start, end) (mmap,
        brk, mremap destination) with prev and/or next.  Returns the merged
        VMA or None."""
        prev, nxt = vmg.prev, vmg.next
        if (prev is None and nxt is None) or vmg.flags & VM_SPECIAL:
            return None
        left = self.can_vma_merge_left(vmg)
        right = (not vmg.just_expand) and self.can_vma_merge_right(vmg, left)
        if right:
            assert nxt is not None
            vmg.end = nxt.end
            vmg.target = nxt
        if left:
            assert prev is not None
            vmg.start = prev.start
            vmg.target = prev
            vmg.pgoff = prev.pgoff
            # can_merge_remove_vma(next) is always true here (no ->close)
        if vmg.target is None:
            return None
        self.vma_expand(vmg)
        return vmg.target

    def vma_merge_existing_range(self, vmg: Vmg) -> Vma | None:
        """``vma_merge_existing_range()``: after mprotect/madvise changes the
        flags of [start, end) of ``middle``, try to merge it with prev and/or
        next.  Returns the merged VMA (now covering [start, end)) or None."""
        middle, prev = vmg.middle, vmg.prev
        assert middle is not None
        start, end = vmg.start, vmg.end
        left_side = start == middle.start
        right_side = end == middle.end
        if (not left_side and not right_side) or vmg.flags & VM_SPECIAL:
            return None
        merge_left = left_side and self.can_vma_merge_left(vmg)
        nxt = None
        if right_side:
            nxt = vmg.next = middle.mm.vmas.next(middle)
            merge_right = self.can_vma_merge_right(vmg, merge_left)
        else:
            merge_right = False
        if not merge_left and not merge_right:
            return None
        merge_both = merge_left and merge_right
        vmg.remove_middle = left_side and right_side
        vmg.remove_next = merge_both
        if merge_right:
            vmg.target = nxt
        if merge_left:
            vmg.target = prev
        if merge_both:
            assert prev is not None and nxt is not None
            vmg.start, vmg.end, vmg.pgoff = prev.start, nxt.end, prev.pgoff
            self.design.dup_anon_vma(prev, nxt if nxt.anon_vma is not None else middle)
        elif merge_left:
            assert prev is not None
            vmg.start, vmg.pgoff = prev.start, prev.pgoff
            if not vmg.remove_middle:
                vmg.adjust_middle_start = True
            self.design.dup_anon_vma(prev, middle)
        else:
            assert nxt is not None
            pglen = end - start
            if vmg.remove_middle:
                vmg.end = nxt.end
                vmg.pgoff = nxt.pgoff - pglen
            else:
                vmg.adjust_next_start = True
                vmg.start, vmg.end, vmg.pgoff = middle.start, start, middle.pgoff
            self.design.dup_anon_vma(nxt, middle)
        self.commit_merge(vmg)
        return vmg.target

    def vma_modify(self, vmg: Vmg) -> Vma:
        """``vma_modify()``: merge [start, end) of ``middle`` into a neighbour,
        else split ``middle`` so that a VMA covers exactly [start, end).
        The caller then sets the new flags on the returned VMA."""
        merged = self.vma_merge_existing_range(vmg)
        if merged is not None:
            return merged
        vma = vmg.middle
        assert vma is not None
        if vma.start < vmg.start:
            self.split_vma(vma, vmg.start, True)
        if vma.end > vmg.end:
            self.split_vma(vma, vmg.end, False)
        return vma

    def vma_modify_flags(self, prev: Vma | None, vma: Vma, start: int, end: int,
                         flags: int) -> Vma:
        """``vma_modify_flags()``."""
        vmg = vmg_for_vma(prev, vma, start, end)
        vmg.flags = flags
        return self.vma_modify(vmg)

    def vma_merge_extend(self, vma: Vma, delta: int) -> Vma | None:
        """``vma_merge_extend()``: grow ``vma`` by ``delta`` pages in place
        (mremap), merging with the following VMA if it becomes adjacent."""
        vmg = vmg_for_vma(vma, vma, vma.end, vma.end + delta)
        vmg.next = vma.mm.vmas.next(vma)
        vmg.middle = None
        return self.vma_merge_new_range(vmg)

    def copy_vma(self, vma: Vma, addr: int, npages: int,
                 pgoff: int) -> tuple[Vma, Vma, bool]:
        """``copy_vma()``: the destination VMA of an mremap move, merged with
        its new neighbours or a fresh copy (``anon_vma_clone``).  An
        unfaulted anonymous source gets ``pgoff = addr`` "to increase its
        chance of merging".  Returns (new_vma, source, need_rmap_locks),
        where the source is the merged VMA if the source itself was merged
        into the destination, and ``need_rmap_locks`` is true when a merged
        destination does not sort after the source in rmap order (a fresh
        copy always does: its chain is added last)."""
        mm = vma.mm
        # the scalable-CoW series: a faulted source's anonymous folios keep
        # their index (vm_anon_pgoff moves with them); an unfaulted one's
        # anon pgoff is reset to the new start
        old_addr = vma.start + (pgoff - vma.pgoff)
        anon_off = 0 if vma.anon_vma is None else vma.anon_off + (addr - old_addr)
        if vma.is_anonymous() and vma.anon_vma is None:
            pgoff = addr
        prev = mm.vmas.prev_of(addr)
        nxt = mm.vmas.find_vma(addr)
        vmg = Vmg(mm, addr, addr + npages, pgoff, vma.flags, vma.file, vma.anon_vma,
                  prev=prev, next=nxt)
        # vma_merge_copied_range(): the source is 'copied_from', not 'middle'
        vmg.copied_from = vma
        vmg.anon_off = anon_off
        vma_start = vma.start
        self.sync.point("copy_vma")
        new = self.vma_merge_new_range(vmg)
        if new is not None:
            if new.start <= vma_start < new.end:
                # only an unfaulted source (pgoff reset) can merge with itself
                vma = new
            return new, vma, new.pgoff <= vma.pgoff
        new = self.vm_area_dup(vma)
        new.start, new.end, new.pgoff = addr, addr + npages, pgoff
        new.anon_off = anon_off
        self.design.anon_vma_clone(new, vma, "remap")
        mm.vmas.insert(new)
        return new, vma, False

    # -- unmap ---------------------------------------------------------------
    def do_munmap(self, mm: Mm, start: int, end: int) -> None:
        """``do_vmi_munmap()`` -> ``vms_gather_munmap_vmas()`` (split at start
        with new_below=1 and at end with new_below=0, write-lock and detach
        the VMAs) + ``vms_complete_munmap_vmas()`` (zap, ``free_pgtables()``:
        ``unlink_anon_vmas()`` and the page-table pages wholly between the
        neighbours, then free the VMAs).  The mmap write lock is held
        throughout (the kernel downgrades it to read after detaching: a
        reader may then still see the detached VMAs' PTEs until the zap, which
        is benign and not modelled)."""
        vmas = mm.vmas.overlapping(start, end)
        if not vmas:
            return
        first = vmas[0]
        if start > first.start:
            self.split_vma(first, start, True)
        detach = []
        for v in mm.vmas.overlapping(start, end):
            if v.end > end:
                self.split_vma(v, end, False)
            detach.append(v)
        for v in detach:
            self.vma_start_write(v)
        prev = mm.vmas.prev(detach[0])
        nxt = mm.vmas.next(detach[-1])
        floor = prev.end if prev is not None else 0
        ceiling = nxt.start if nxt is not None else 1 << 62
        self.sync.point("detach the VMAs from mm_mt")
        for v in detach:
            mm.vmas.remove(v)
            v.detached = True
        for v in detach:
            self.zap(mm, v.start, v.end)
        self.free_pgtables(mm, detach, floor, ceiling, mm_wr_locked=False)
        self.sync.point("remove_vma")
        for v in detach:
            self.vm_area_free(v)
