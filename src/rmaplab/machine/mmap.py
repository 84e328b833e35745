"""mm/mmap.c (and mm/util.c, mm/gup.c): mmap, populate, exit_mmap (Linux 6.18)."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from rmaplab.machine.constants import ARENA_END_VPN, FAR_TOP_VPN, HPAGE_PMD_NR, STACK_GUARD_GAP
from rmaplab.machine.flags import (
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_LOCKED,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_STACK,
    MAP_TYPE,
    VM_ACCOUNT,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_LOCKED,
    VM_LOCKONFAULT,
    VM_MAY_ALL,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_NOHUGEPAGE,
    VM_NORESERVE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    prot_to_vm,
)
from rmaplab.machine.folio import File
from rmaplab.machine.vma_ops import Vmg

if TYPE_CHECKING:
    from rmaplab.machine.design import Design
    from rmaplab.machine.mm import Mm
    from rmaplab.machine.sync import Sync
    from rmaplab.machine.vma import Vma

EINVAL, EEXIST = errno.EINVAL, errno.EEXIST
_READABLE = VM_READ | VM_WRITE | VM_EXEC


class MmapOps:
    """mm/mmap.c, as a mixin of :class:`rmaplab.machine.machine.Machine`."""

    if TYPE_CHECKING:
        chosen_area: int | None
        design: Design
        sync: Sync

        def handle_mm_fault(self, mm: Mm, vma: Vma, vpn: int, write: bool) -> int: ...
        def vma_merge_new_range(self, vmg: Vmg) -> Vma | None: ...
        def new_vma(self, mm: Mm, start: int, end: int, pgoff: int, flags: int,
                    file: File | None) -> Vma: ...
        def do_munmap(self, mm: Mm, start: int, end: int) -> None: ...
        def zap(self, mm: Mm, lo: int, hi: int, reclaim_pt: bool = False,
                what: str = "zap") -> None: ...
        def free_pgtables(self, mm: Mm, vmas: list[Vma], floor: int, ceiling: int,
                          mm_wr_locked: bool = True) -> None: ...
        def vm_area_free(self, vma: Vma) -> None: ...
        def mmap_read_lock(self, mm: Mm) -> None: ...
        def mmap_read_unlock(self, mm: Mm) -> None: ...
        def mmap_write_lock(self, mm: Mm) -> None: ...
        def mmap_write_unlock(self, mm: Mm) -> None: ...

    def do_mmap(self, mm: Mm, addr: int, npages: int, prot: int, flags: int,
                file: File | None = None, pgoff: int = 0, file_writable: bool = True) -> int:
        """``do_mmap()`` + ``__mmap_region()`` at a fixed address ``addr``
        (vpn) with mmap(2)'s ``flags`` (MAP_FIXED replaces what is there,
        MAP_FIXED_NOREPLACE fails with EEXIST; anything else is taken as the
        address the kernel chose, which is free), then ``mm_populate`` for
        MAP_POPULATE or VM_LOCKED (``vm_mmap_pgoff``).  ``pgoff`` is the file
        offset in pages; a shared mapping of a file not opened for writing
        loses VM_SHARED and VM_MAYWRITE.  Returns 0 or -errno."""
        if npages <= 0:
            return -EINVAL
        kind = flags & MAP_TYPE
        if kind not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
            return -EINVAL
        shared = kind != MAP_PRIVATE
        end = addr + npages
        vm_flags = prot_to_vm(prot) | VM_MAY_ALL | mm.def_flags
        if flags & MAP_GROWSDOWN:
            vm_flags |= VM_GROWSDOWN
        if flags & MAP_LOCKED:
            vm_flags |= VM_LOCKED
        if flags & MAP_STACK:  # calc_vm_flag_bits(): MAP_STACK implies VM_NOHUGEPAGE
            vm_flags |= VM_NOHUGEPAGE
        if shared:
            vm_flags |= VM_SHARED | VM_MAYSHARE
            if file is not None and not file_writable:
                vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
        if flags & MAP_NORESERVE:  # overcommit heuristic (mode 0)
            vm_flags |= VM_NORESERVE
        if file is None:
            pgoff = 0 if shared else addr
        self.mmap_write_lock(mm)
        try:
            if mm.vmas.overlapping(addr, end):
                if flags & MAP_FIXED_NOREPLACE:
                    return -EEXIST
                if not flags & MAP_FIXED:
                    raise ValueError(f"mmap at {addr:#x} without MAP_FIXED overlaps a VMA")
                self.do_munmap(mm, addr, end)  # __mmap_region's vms_gather + clean_up
            if (vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) == VM_WRITE:
                vm_flags |= VM_ACCOUNT  # accountable_mapping()
            self.mmap_region(mm, addr, end, pgoff, vm_flags, file,
                             shmem=(file is None and shared))
        finally:
            self.mmap_write_unlock(mm)
        if flags & MAP_POPULATE or vm_flags & VM_LOCKED:
            self.mm_populate(mm, addr, end)
        return 0

    def do_brk(self, mm: Mm, brk_vpn: int) -> int:
        """``brk()`` with the new break rounded up to a page (``brk_vpn``):
        shrinking unmaps, growing expands the heap VMA (``do_brk_flags``: a
        ``just_expand`` merge with the VMA ending at the old break, which a
        fork child's inherited heap refuses, else a new VMA with VM_ACCOUNT
        and the mm's default flags); growth fails if another VMA lies within
        the stack guard gap above.  Returns the new break (vpn), or the old
        one if nothing was done (as the kernel returns)."""
        if mm.start_brk is None or mm.brk is None:
            return mm.brk or 0
        if brk_vpn < mm.start_brk:
            return mm.brk
        old = mm.brk
        if brk_vpn == old:
            return old
        self.mmap_write_lock(mm)
        try:
            if brk_vpn < old:  # always allow shrinking
                self.do_munmap(mm, brk_vpn, old)
                mm.brk = brk_vpn
                return brk_vpn
            if mm.vmas.overlapping(old, brk_vpn + 1 + STACK_GUARD_GAP):
                return old
            flags = VM_READ | VM_WRITE | VM_MAY_ALL | VM_ACCOUNT | mm.def_flags
            prev = mm.vmas.find(old - 1) if old > mm.start_brk else None
            vma = None
            if prev is not None and prev.end == old:
                vmg = Vmg(mm, old, brk_vpn, old, flags, None, None, prev=prev)
                vmg.just_expand = True
                vma = self.vma_merge_new_range(vmg)
            if vma is None:
                vma = self.new_vma(mm, old, brk_vpn, old, flags, None)
                vma.name = "[heap]"
                self.sync.point("do_brk_flags: vma_link")
                mm.vmas.insert(vma)
            mm.brk = brk_vpn
        finally:
            self.mmap_write_unlock(mm)
        if mm.def_flags & VM_LOCKED:
            self.mm_populate(mm, old, brk_vpn)
        return brk_vpn

    def mmap_region(self, mm: Mm, addr: int, end: int, pgoff: int, flags: int,
                    file: File | None, shmem: bool = False) -> Vma:
        """``__mmap_region()``: merge with neighbours, else a new VMA (a
        shared anonymous mapping gets its shmem file after the merge attempt,
        ``shmem_zero_setup``, so it never merges)."""
        prev = mm.vmas.prev_of(addr)
        nxt = mm.vmas.find_vma(addr)
        vmg = Vmg(mm, addr, end, pgoff, flags, file, None, prev=prev, next=nxt)
        vma = self.vma_merge_new_range(vmg)
        if vma is None:
            if shmem:
                file = File(f"shmem@{addr:#x}", end - addr, shmem=True)
            vma = self.new_vma(mm, addr, end, pgoff, flags, file)
            self.sync.point("__mmap_region: vma_link")
            mm.vmas.insert(vma)
        return vma

    def mm_populate(self, mm: Mm, start: int, end: int) -> None:
        """``__mm_populate(ignore_errors=1)`` -> ``populate_vma_page_range``:
        fault in every page of every VMA in [start, end), with a write fault
        where the VMA is private and writable (to break COW), a read fault
        otherwise; an inaccessible VMA (PROT_NONE: no FOLL_FORCE) and a
        VM_LOCKONFAULT one are skipped.  Errors are ignored."""
        self.mmap_read_lock(mm)
        vpn = start
        while vpn < end:
            vma = mm.vmas.find_vma(vpn)
            if vma is None or vma.start >= end:
                break
            vpn = max(vpn, vma.start)
            hi = min(vma.end, end)
            if vma.flags & _READABLE and not vma.flags & VM_LOCKONFAULT:
                write = (vma.flags & (VM_WRITE | VM_SHARED)) == VM_WRITE
                for v in range(vpn, hi):
                    self.handle_mm_fault(mm, vma, v, write)
            vpn = hi
        self.mmap_read_unlock(mm)

    def get_unmapped_area(self, mm: Mm, vma: Vma, addr: int, npages: int) -> int:
        """``get_unmapped_area()`` with no hint, as ``vrm_set_new_addr`` calls
        it: top-down below :data:`FAR_TOP_VPN`, far from the arena.  Private
        anonymous lengths that are multiples of 2 MiB are 2 MiB aligned
        (``thp_get_unmapped_area_vmflags``, pgoff treated as 0); file
        mappings are aligned like their file offset when the range holds a
        whole aligned 2 MiB (``thp_get_unmapped_area``).  A replay of a trace
        sets ``chosen_area`` first: the address the recorded kernel chose
        (its ``mremap`` return value), taken once."""
        if self.chosen_area is not None:
            ret, self.chosen_area = self.chosen_area, None
            return ret
        align = 0
        if vma.file is None and not vma.flags & VM_SHARED:
            need_align = npages % HPAGE_PMD_NR == 0
        elif vma.file is not None and not vma.file.shmem:
            pgoff = vma.pgoff + (addr - vma.start)
            off_align = -(-pgoff // HPAGE_PMD_NR) * HPAGE_PMD_NR
            need_align = pgoff + npages > off_align and pgoff + npages - off_align >= HPAGE_PMD_NR
            align = pgoff
        else:
            need_align = False
        need = npages + (HPAGE_PMD_NR if need_align else 0)
        hi = FAR_TOP_VPN
        far = mm.vmas.overlapping(ARENA_END_VPN, FAR_TOP_VPN)
        for v in reversed(far):
            if hi - v.end >= need:
                break
            hi = v.start
        ret = hi - need
        if need_align:
            off_sub = (align - ret) % HPAGE_PMD_NR
            ret = ret + HPAGE_PMD_NR if off_sub == 0 else ret + off_sub
        return ret

    def exit_mmap(self, mm: Mm) -> None:
        """``exit_mmap()``: ``unmap_vmas`` of everything under the mmap read
        lock; then, under the write lock, ``mt_clear_in_rcu``,
        ``free_pgtables`` (which write-locks each VMA and unlinks its anon
        state in address order, then frees every page table),
        ``remove_vma`` of each VMA and ``__mt_destroy``.  The VMAs stay in
        mm_mt until the end.  O(VMAs + entries)."""
        vmas = mm.vmas.snapshot()
        self.mmap_read_lock(mm)
        if vmas:  # unmap_vmas(): every entry lies inside a VMA, so one span
            self.zap(mm, vmas[0].start, vmas[-1].end, what="unmap_vmas")
        self.mmap_read_unlock(mm)
        self.mmap_write_lock(mm)
        self.sync.point("mt_clear_in_rcu")
        self.free_pgtables(mm, vmas, 0, 1 << 62, mm_wr_locked=True)
        if mm.pt.pmd:  # tables outside every VMA (none in a consistent mm)
            for b in list(mm.pt.pmd.keys()):
                del mm.pt.pmd[b]
                self.sync.free_pgtable(mm, b)
        self.sync.point("remove_vma, __mt_destroy")
        mm.vmas.clear()
        for v in vmas:
            v.detached = True
            self.vm_area_free(v)
        self.sync.destroy_mm_mt(mm)
        mm.alive = False
        self.mmap_write_unlock(mm)
        self.design.exit_mm(mm)
