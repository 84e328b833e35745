"""mm/memory.c: faults, COW, zap, copy_page_range, free_pgtables (Linux 6.18).

Faults:

* private anonymous: a read maps the shared zero page (no anon_vma,
  ``do_anonymous_page``); a write prepares the anon_vma and maps a new
  exclusive folio.  Where a PMD THP is allowed, ``__handle_mm_fault`` goes to
  ``do_huge_pmd_anonymous_page`` (:mod:`rmaplab.machine.huge_memory`).
* private file: a read maps the page-cache folio; a write prepares the
  anon_vma and then (``do_cow_fault``, ``wp_page_copy``) maps an anonymous
  copy whose index is the file offset.  Beyond end of file the kernel sends
  SIGBUS, reported as EFAULT (after the anon_vma was prepared, for writes).
* shared file or shared anonymous (shmem): the page-cache folio.
* write-protect faults (``do_wp_page``): reuse of an exclusive page; reuse
  of a small folio whose only reference is this mapping after
  ``folio_move_anon_rmap`` (``wp_can_reuse_anon_folio``, dropping the swap
  cache first if nothing else holds the swap slot); reuse of a large folio
  mapped only by this mm (``__wp_can_reuse_large_anon_folio``, no move);
  else copy.
* swap entries (``do_swap_page``): a swap-cache hit maps the cached folio
  (``folio_add_anon_rmap_ptes``: mapping unchanged); otherwise a new folio
  is read, skipping the swap cache when the device is synchronous (zram) and
  the swap count is 1, and added with ``folio_add_new_anon_rmap`` -
  exclusive if it was never exposed to the swap cache, if the entry was
  marked exclusive, or if nothing else references it; a shared one goes to
  the root anon_vma.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rmaplab.machine.constants import HPAGE_PMD_NR, STACK_GUARD_GAP, short_page
from rmaplab.machine.flags import VM_EXEC, VM_GROWSDOWN, VM_READ, VM_SHARED, VM_WRITE
from rmaplab.machine.folio import Folio, SwapSlot
from rmaplab.machine.pagetable import (
    MigrationPte,
    PmdMap,
    PmdMigration,
    Pte,
    SwapPte,
)

if TYPE_CHECKING:
    from rmaplab.machine.config import KernelConfig
    from rmaplab.machine.design import Design
    from rmaplab.machine.folio import File
    from rmaplab.machine.mm import Mm
    from rmaplab.machine.sync import Sync
    from rmaplab.machine.vma import Vma

EFAULT = errno.EFAULT
_ALL512 = (1 << HPAGE_PMD_NR) - 1
_READABLE = VM_READ | VM_WRITE | VM_EXEC  # x86: vma_is_accessible()


def ptl(mm: Mm, vpn: int) -> tuple[str, str, int]:
    """The split page-table lock of the page table covering ``vpn``."""
    return ("ptl", mm.name, vpn >> 9)


class MemoryOps:
    """mm/memory.c, as a mixin of :class:`rmaplab.machine.machine.Machine`."""

    if TYPE_CHECKING:  # provided by Machine and the other mixins
        design: Design
        config: KernelConfig
        sync: Sync
        zero_page: Folio

        def new_folio(self, nr: int, anon: bool) -> Folio: ...
        def folio_put(self, folio: Folio) -> None: ...
        def page_cache(self, file: File, index: int) -> Folio: ...
        def swap_free(self, slot: SwapSlot) -> None: ...
        def free_swap_and_cache(self, slot: SwapSlot) -> None: ...
        def folio_free_swap(self, folio: Folio) -> bool: ...
        def swap_cache_add(self, folio: Folio, slots: list[SwapSlot]) -> None: ...
        def split_pmd(self, mm: Mm, b: int) -> None: ...
        def thp_allowed(self, vma: Vma, b: int) -> bool: ...
        def huge_anonymous_fault(self, mm: Mm, vma: Vma, b: int, write: bool) -> int: ...
        def huge_wp_fault(self, mm: Mm, vma: Vma, b: int, e: PmdMap, vpn: int) -> int: ...
        def vma_start_write(self, vma: Vma) -> None: ...
        def set_range(self, vma: Vma, start: int, end: int, pgoff: int) -> None: ...

    # ------------------------------------------------------------- page level
    def map_pte(self, mm: Mm, vpn: int, folio: Folio, idx: int, write: bool) -> None:
        """Install a present PTE (allocating the page table if needed)."""
        pmd = mm.pt.pmd
        t = pmd.get(vpn >> 9)
        if t is None:
            t = pmd[vpn >> 9] = {}
        t[vpn] = Pte(folio, idx, write)  # type: ignore[index]
        folio.map(mm)

    def map_pmd(self, mm: Mm, b: int, folio: Folio, write: bool) -> None:
        mm.pt.pmd[b] = PmdMap(folio, write)
        folio.map(mm)

    def drop_mapping(self, mm: Mm, folio: Folio, n: int = 1) -> None:
        """``n`` present mappings of ``folio`` in ``mm`` went away; the folio
        is freed if nothing references it any more."""
        folio.unmap(mm, n)
        if folio.anon and not folio.mapcount:
            self.folio_put(folio)

    def new_anon_folio(self, vma: Vma, vpn: int, nr: int) -> Folio:
        """Allocate an exclusive anonymous folio and ``folio_add_new_anon_rmap``."""
        f = self.new_folio(nr, anon=True)
        f.excl = (1 << nr) - 1
        self.design.folio_add_new_anon_rmap(f, vma, vpn, True)
        return f

    # ------------------------------------------------------------------ faults
    def fault_at(self, mm: Mm, vpn: int, write: bool) -> int:
        """A user or kernel access of page ``vpn`` (``do_user_addr_fault`` ->
        ``lock_mm_and_find_vma``): below a VM_GROWSDOWN VMA the stack grows
        first (``expand_downwards``); then ``handle_mm_fault``.  Returns 0
        or -EFAULT (SIGSEGV)."""
        vma = mm.vmas.find_vma(vpn)
        if vma is None:
            return -EFAULT
        if vpn < vma.start:
            if not vma.flags & VM_GROWSDOWN or self.expand_downwards(vma, vpn):
                return -EFAULT
        return self.handle_mm_fault(mm, vma, vpn, write)

    def force_write_fault(self, mm: Mm, vma: Vma, vpn: int) -> int:
        """A GUP write with FOLL_FORCE (``get_user_pages_remote`` of execve's
        ``copy_strings``, ``/proc/PID/mem``): allowed on a private VMA
        without VM_WRITE, where it breaks COW but leaves the PTE read-only
        (``can_follow_write_pte``, ``maybe_mkwrite``)."""
        if vma.flags & VM_WRITE:
            return self.handle_mm_fault(mm, vma, vpn, True)
        if vma.flags & VM_SHARED:
            return -EFAULT
        vma.flags |= VM_WRITE
        try:
            r = self.handle_mm_fault(mm, vma, vpn, True)
        finally:
            vma.flags &= ~VM_WRITE
        e = mm.pt.entry(vpn)
        if e is not None:
            e.write = False  # type: ignore[union-attr]
        return r

    def expand_downwards(self, vma: Vma, vpn: int) -> int:
        """``expand_downwards()``: keep ``stack_guard_gap`` from an accessible
        VMA below (ENOMEM), ``anon_vma_prepare``, then grow ``vma`` down to
        ``vpn`` (its pgoff goes down with it)."""
        prev = vma.mm.vmas.prev(vma)
        if (prev is not None and not prev.flags & VM_GROWSDOWN and prev.flags & _READABLE
                and vpn - prev.end < STACK_GUARD_GAP):
            return -errno.ENOMEM
        self.design.anon_vma_prepare(vma)
        tok = self.design.anon_vma_lock_write(vma)
        self.set_range(vma, vpn, vma.end, vma.pgoff - (vma.start - vpn))
        self.design.anon_vma_unlock_write(tok)
        return 0

    def handle_mm_fault(self, mm: Mm, vma: Vma, vpn: int, write: bool) -> int:
        """``handle_mm_fault()`` for one access (nothing to do if already
        mapped with enough permission).  Returns 0 or -EFAULT."""
        flags = vma.flags
        if write:
            if not flags & VM_WRITE:
                return -EFAULT
        elif not flags & _READABLE:
            return -EFAULT
        b = vpn >> 9
        e = mm.pt.pmd.get(b)
        if e is None:
            if vma.file is None and not flags & VM_SHARED and self.thp_allowed(vma, b):
                return self.huge_anonymous_fault(mm, vma, b, write)
            return self.do_pte_missing(mm, vma, vpn, write)
        if type(e) is dict:
            pte = e.get(vpn)
            if pte is None:
                return self.do_pte_missing(mm, vma, vpn, write)
            if type(pte) is Pte:
                if write and not pte.write:
                    return self.do_wp_page(mm, vma, vpn, pte)
                return 0
            if type(pte) is SwapPte:
                return self.do_swap_page(mm, vma, vpn, write, pte)
            # a migration entry: migration_entry_wait(); the sequential model
            # never leaves one behind (the explorer reports one that stays)
            raise AssertionError(f"fault on a migration entry at {short_page(vpn)}")
        if type(e) is PmdMigration:
            raise AssertionError(f"fault on a PMD migration entry at {short_page(vpn)}")
        if write and not e.write:  # type: ignore[union-attr]
            return self.huge_wp_fault(mm, vma, b, e, vpn)  # type: ignore[arg-type]
        return 0

    def do_pte_missing(self, mm: Mm, vma: Vma, vpn: int, write: bool) -> int:
        """A fault on a page with no PTE: ``do_anonymous_page``,
        ``do_read_fault``, ``do_cow_fault`` or ``do_shared_fault``."""
        file = vma.file
        if file is None and not vma.flags & VM_SHARED:
            if not write:
                self.map_pte(mm, vpn, self.zero_page, 0, False)
                return 0
            self.design.anon_vma_prepare(vma)  # vmf_anon_prepare()
            self.map_pte(mm, vpn, self.new_anon_folio(vma, vpn, 1), 0, True)
            return 0
        assert file is not None
        index = vma.linear_page_index(vpn)
        if vma.flags & VM_SHARED:
            if index >= file.size:
                return -EFAULT
            self.map_pte(mm, vpn, self.page_cache(file, index), 0, write)
            return 0
        if not write:
            if index >= file.size:
                return -EFAULT
            self.map_pte(mm, vpn, self.page_cache(file, index), 0, False)
            return 0
        # do_cow_fault(): vmf_anon_prepare() comes before __do_fault()
        self.design.anon_vma_prepare(vma)
        if index >= file.size:
            return -EFAULT
        self.page_cache(file, index)
        self.map_pte(mm, vpn, self.new_anon_folio(vma, vpn, 1), 0, True)
        return 0

    def do_wp_page(self, mm: Mm, vma: Vma, vpn: int, pte: Pte) -> int:
        """``do_wp_page()`` on a present read-only PTE of a writable VMA."""
        f = pte.folio
        if vma.flags & VM_SHARED:
            pte.write = True  # wp_page_shared / writenotify
            return 0
        if f.anon:
            bit = 1 << pte.idx
            if f.excl & bit:
                pte.write = True
                return 0
            if f.nr == 1:
                if self.wp_can_reuse_anon_folio(f):
                    self.design.folio_move_anon_rmap(f, vma)
                    f.excl = 1
                    pte.write = True
                    return 0
            else:
                mc = f.mm_counts
                assert mc is not None
                # __wp_can_reuse_large_anon_folio(): no folio_move_anon_rmap
                if f.mapcount > 1 and len(mc) == 1 and mm in mc and f.swap is None:
                    f.excl |= bit
                    pte.write = True
                    return 0
        return self.wp_page_copy(mm, vma, vpn, pte)

    def wp_can_reuse_anon_folio(self, f: Folio) -> bool:
        """``wp_can_reuse_anon_folio()`` for a small folio: only this mapping
        references it once the swap cache is dropped (``folio_free_swap``,
        which fails while another swap entry still refers to the slot)."""
        if f.refcount() > 1 + (1 if f.swap is not None else 0):
            return False
        if f.swap is not None:
            self.folio_free_swap(f)
        return f.refcount() == 1

    def wp_page_copy(self, mm: Mm, vma: Vma, vpn: int, pte: Pte) -> int:
        """``wp_page_copy()``: prepare the anon_vma, map a new exclusive
        order-0 copy, drop the old mapping."""
        self.design.anon_vma_prepare(vma)
        old = pte.folio
        new = self.new_anon_folio(vma, vpn, 1)
        t = mm.pt.pmd[vpn >> 9]
        assert type(t) is dict
        t[vpn] = Pte(new, 0, True)
        new.map(mm)
        self.drop_mapping(mm, old)
        return 0

    def do_swap_page(self, mm: Mm, vma: Vma, vpn: int, write: bool, swp: SwapPte) -> int:
        """``do_swap_page()`` (order 0)."""
        slot = swp.slot
        design = self.design
        folio = slot.folio  # swap_cache_get_folio()
        swapcache = folio
        if folio is None:
            folio = self.new_folio(1, anon=True)
            if self.config.swap_synchronous_io and slot.count == 1:
                pass  # skip the swap cache: swapcache stays NULL
            else:  # swapin_readahead(): a new swap-cache folio
                self.swap_cache_add(folio, [slot])
                swapcache = folio
        elif design.ksm_might_need_to_copy(folio, vma, vpn):
            # ksm_might_need_to_copy(): a copy for this VMA, exclusive
            new = self.new_folio(1, anon=True)
            new.excl = 1
            self.swap_free(slot)
            design.folio_add_new_anon_rmap(new, vma, vpn, True)
            self.map_pte(mm, vpn, new, 0, bool(vma.flags & VM_WRITE))
            self.folio_put(folio)
            return 0
        page = slot.page if swapcache is not None else 0
        exclusive = swp.exclusive or folio is not swapcache
        is_new = folio.mapping is None  # !folio_test_anon()
        self.swap_free(slot)  # swap_free_nr()
        if folio.swap is not None and self.should_try_to_free_swap(folio, vma, write):
            self.folio_free_swap(folio)
        writable = False
        # the caller's reference is not in refcount(): "== 1" means no other
        if exclusive or folio.refcount() == 0:
            writable = bool(vma.flags & VM_WRITE)
            exclusive = True
        if is_new:
            design.folio_add_new_anon_rmap(folio, vma, vpn - page, exclusive)
        else:
            design.folio_add_anon_rmap(folio, vma, vpn - page)
        if exclusive:
            folio.excl |= 1 << page
        self.map_pte(mm, vpn, folio, page, writable)
        if write and not writable:
            t = mm.pt.pmd[vpn >> 9]
            assert type(t) is dict
            return self.do_wp_page(mm, vma, vpn, t[vpn])  # type: ignore[arg-type]
        return 0

    def should_try_to_free_swap(self, folio: Folio, vma: Vma, write: bool) -> bool:
        """``should_try_to_free_swap()``: the swap device is never more than
        half full here (``vm_swap_full`` false) and nothing is mlocked; a
        write fault by the only user frees the swap-cache copy."""
        from rmaplab.machine.flags import VM_LOCKED

        if vma.flags & VM_LOCKED:
            return True
        return write and folio.refcount() == folio.nr

    # ------------------------------------------------------------ zap / unmap
    def zap(self, mm: Mm, lo: int, hi: int, reclaim_pt: bool = False,
            what: str = "zap") -> None:
        """``zap_page_range_single`` / ``unmap_vmas``: remove every entry in
        [lo, hi) under each page table's PTL; a PMD mapping only partly
        inside is split first (the folio stays large, on the deferred split
        queue); swap entries release their slot (``free_swap_and_cache``).
        With ``reclaim_pt`` (MADV_DONTNEED and CONFIG_PT_RECLAIM) a page
        table left empty wholly inside the range is freed."""
        pmd = mm.pt.pmd
        sync = self.sync
        act = sync.active
        first_b, last_b = lo >> 9, (hi - 1) >> 9
        blocks: Iterable[int] = (range(first_b, last_b + 1) if last_b - first_b < len(pmd)
                                 else sorted(b for b in pmd if first_b <= b <= last_b))
        for b in blocks:
            if b not in pmd:
                continue
            blo = b * HPAGE_PMD_NR
            full = lo <= blo and blo + HPAGE_PMD_NR <= hi
            if act:
                sync.lock(("ptl", mm.name, b))
                sync.point(f"{what} {short_page(max(lo, blo))}..")
            e = pmd.get(b)
            if e is not None and type(e) is not dict:
                if full:
                    del pmd[b]
                    if type(e) is PmdMap:
                        self.drop_mapping(mm, e.folio)
                    e = None
                else:
                    self.split_pmd(mm, b)
                    e = pmd[b]
            if type(e) is dict:
                if full:
                    items = list(e.items())  # type: ignore[union-attr]
                    e.clear()  # type: ignore[union-attr]
                else:
                    tlo, thi = max(lo, blo), min(hi, blo + HPAGE_PMD_NR)
                    pop = e.pop  # type: ignore[union-attr]
                    vpns = (range(tlo, thi) if thi - tlo <= len(e)
                            else [v for v in e if tlo <= v < thi])
                    items = [(v, pop(v)) for v in vpns if v in e]
                for _vpn, x in items:
                    tx = type(x)
                    if tx is Pte:
                        self.drop_mapping(mm, x.folio)  # type: ignore[union-attr]
                    elif tx is SwapPte:
                        self.free_swap_and_cache(x.slot)  # type: ignore[union-attr]
                    # a migration entry holds no map count: dropped
                if full and reclaim_pt and not e:
                    del pmd[b]
                    sync.free_pgtable(mm, b)
            if act:
                sync.unlock(("ptl", mm.name, b))

    def free_pgtables(self, mm: Mm, vmas: list[Vma], floor: int, ceiling: int,
                      mm_wr_locked: bool = True) -> None:
        """``free_pgtables()``: ``unlink_anon_vmas()`` of every VMA (each
        write-locked first when the mmap lock is held for write), then
        ``free_pgd_range()`` of their span: the page-table pages whose 2 MiB
        lies entirely between ``floor`` and ``ceiling``."""
        unlink = self.design.unlink_anon_vmas
        for v in vmas:
            if mm_wr_locked:
                self.vma_start_write(v)
            unlink(v)
        if not vmas:
            return
        self.sync.point("free_pgd_range")
        pmd = mm.pt.pmd
        for b, e in list(mm.pt.tables_in(vmas[0].start, vmas[-1].end)):
            if b * HPAGE_PMD_NR >= floor and (b + 1) * HPAGE_PMD_NR <= ceiling:
                if type(e) is dict and e:
                    raise AssertionError(f"freeing a non-empty page table at pmd {b:#x}")
                del pmd[b]
                self.sync.free_pgtable(mm, b)

    # -------------------------------------------------------- copy_page_range
    def copy_page_range(self, dst: Vma, src: Vma) -> None:
        """``copy_page_range()``: per page table under both PTLs
        (``copy_pte_range``): anonymous folios are shared, both sides
        write-protected, PG_anon_exclusive cleared (``folio_try_dup_anon_rmap``,
        the design's ``dup_anon_rmap``); file folios and zero pages are
        shared; swap entries are duplicated without their exclusive marker
        (``copy_nonpresent_pte``); migration entries are copied.  The child
        gets a page table for every PMD where the parent has one.
        O(page tables + entries)."""
        smm, dmm = src.mm, dst.mm
        spmd, dpmd = smm.pt.pmd, dmm.pt.pmd
        design = self.design
        dup = design.dup_anon_rmap if design.hooks_dup else None
        sync = self.sync
        act = sync.active
        start, end = src.start, src.end
        first_b, last_b = start >> 9, (end - 1) >> 9
        blocks: Iterable[int] = (range(first_b, last_b + 1) if last_b - first_b < len(spmd)
                                 else sorted(b for b in spmd if first_b <= b <= last_b))
        for b in blocks:
            e = spmd.get(b)
            if e is None:
                continue
            if act:
                sync.lock(("ptl", smm.name, b))
                sync.lock(("ptl", dmm.name, b))
            if type(e) is not dict:
                if act:
                    sync.point(f"copy_huge_pmd {short_page(b << 9)}")
                f = e.folio  # type: ignore[union-attr]
                if type(e) is PmdMigration:
                    dpmd[b] = PmdMigration(f, False)
                elif f.zero:
                    dpmd[b] = PmdMap(f, False)
                else:
                    e.write = False  # type: ignore[union-attr]
                    f.excl = 0
                    if dup is not None:
                        dup(f, src, dst)
                    self.map_pmd(dmm, b, f, False)
                if act:
                    sync.unlock(("ptl", dmm.name, b))
                    sync.unlock(("ptl", smm.name, b))
                continue
            dt = dpmd.get(b)
            if dt is None:
                dt = dpmd[b] = {}
            lo = start if start > b << 9 else b << 9
            hi = end if end < (b + 1) << 9 else (b + 1) << 9
            get = e.get
            vpns = range(lo, hi) if hi - lo <= len(e) else sorted(v for v in e if lo <= v < hi)
            for vpn in vpns:
                x = get(vpn)
                if x is None:
                    continue
                if act:
                    sync.point(f"copy PTE {short_page(vpn)}")
                tx = type(x)
                if tx is Pte:
                    f = x.folio  # type: ignore[union-attr]
                    if f.zero:
                        dt[vpn] = Pte(f, 0, False)  # type: ignore[index]
                        continue
                    idx = x.idx  # type: ignore[union-attr]
                    if f.anon:
                        f.excl &= ~(1 << idx)
                        x.write = False  # type: ignore[union-attr]
                        if dup is not None:
                            dup(f, src, dst)
                        if act:
                            sync.note(f"(try_dup; mapping now {design.anchor_name(f.mapping)})")
                    dt[vpn] = Pte(f, idx, False)  # type: ignore[index]
                    # Folio.map(dmm), inlined: the hot loop of fork (measured
                    # 8% of a modelled fork as a call)
                    f.mapcount += 1
                    mc = f.mm_counts
                    if mc is not None:
                        mc[dmm] = mc.get(dmm, 0) + 1
                elif tx is SwapPte:
                    slot = x.slot  # type: ignore[union-attr]
                    slot.count += 1  # swap_duplicate()
                    x.exclusive = False  # type: ignore[union-attr]
                    dt[vpn] = SwapPte(slot, False)  # type: ignore[index]
                    design.copy_swap_pte(slot, src, dst)
                    if act:
                        sync.note("(swap entry)")
                else:  # MigrationPte: a write entry becomes a read entry in both
                    x.write = False  # type: ignore[union-attr]
                    dt[vpn] = MigrationPte(x.folio, x.idx, False)  # type: ignore
                    if act:
                        sync.note("(migration entry)")
            if act:
                sync.unlock(("ptl", dmm.name, b))
                sync.unlock(("ptl", smm.name, b))
