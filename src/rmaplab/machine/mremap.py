"""mm/mremap.c: mremap(2), move_vma, move_page_tables (Linux 6.18, 6.17+ structure)."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from rmaplab.machine.constants import HPAGE_PMD_NR, short_page
from rmaplab.machine.flags import VM_ACCOUNT, VM_LOCKED_MASK, VM_MAYSHARE, VM_SHARED
from rmaplab.machine.pagetable import PageTables, PmdMap, Pte

if TYPE_CHECKING:
    from rmaplab.machine.design import Design
    from rmaplab.machine.mm import Mm
    from rmaplab.machine.sync import Sync
    from rmaplab.machine.vma import Vma

EFAULT, ENOMEM, EINVAL = errno.EFAULT, errno.ENOMEM, errno.EINVAL
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4


class MremapOps:
    """mm/mremap.c, as a mixin of :class:`rmaplab.machine.machine.Machine`."""

    if TYPE_CHECKING:
        design: Design
        sync: Sync

        def do_munmap(self, mm: Mm, start: int, end: int) -> None: ...
        def split_pmd(self, mm: Mm, b: int) -> None: ...
        def vma_merge_extend(self, vma: Vma, delta: int) -> Vma | None: ...
        def copy_vma(self, vma: Vma, addr: int, npages: int,
                     pgoff: int) -> tuple[Vma, Vma, bool]: ...
        def get_unmapped_area(self, mm: Mm, vma: Vma, addr: int, npages: int) -> int: ...
        def vma_start_write(self, vma: Vma) -> None: ...
        def mmap_write_lock(self, mm: Mm) -> None: ...
        def mmap_write_unlock(self, mm: Mm) -> None: ...

    def do_mremap(self, mm: Mm, addr: int, old_len: int, new_len: int, flags: int,
                  new_addr: int = 0) -> int:
        """``mremap()`` of pages [addr, addr+old_len) to ``new_len`` pages;
        ``flags`` are MREMAP_* (``new_addr`` is used with MREMAP_FIXED).
        Returns 0 or -errno."""
        if flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP):
            return -EINVAL
        self.mmap_write_lock(mm)
        try:
            return self._mremap(mm, addr, old_len, new_len, flags, new_addr)
        finally:
            self.mmap_write_unlock(mm)

    def _mremap(self, mm: Mm, addr: int, old_len: int, new_len: int, flags: int,
                new_addr: int) -> int:
        fixed = bool(flags & MREMAP_FIXED)
        dontunmap = bool(flags & MREMAP_DONTUNMAP)
        maymove = bool(flags & MREMAP_MAYMOVE)
        if new_len == 0:
            return -EINVAL
        implies_new = fixed or dontunmap
        if implies_new:  # check_mremap_params()
            if not maymove:
                return -EINVAL
            if dontunmap and old_len != new_len:
                return -EINVAL
            if addr + old_len > new_addr and new_addr + new_len > addr:
                return -EINVAL
        if fixed and old_len == new_len:
            return self.remap_move(mm, addr, old_len, new_addr, dontunmap)
        vma = mm.vmas.find(addr)
        r = self.check_prep_vma(vma, addr, old_len, new_len, implies_new, dontunmap)
        if r:
            return r
        assert vma is not None
        if implies_new:
            return self.mremap_to(mm, vma, addr, old_len, new_len, new_addr, fixed, dontunmap)
        if new_len == old_len:
            return 0
        if new_len < old_len:  # shrink_vma()
            self.do_munmap(mm, addr + new_len, addr + old_len)
            return 0
        # expand_vma()
        delta = new_len - old_len
        if vma.end - addr == old_len and not mm.vmas.overlapping(vma.end, vma.end + delta):
            return 0 if self.vma_merge_extend(vma, delta) is not None else -ENOMEM
        if not maymove:
            return -ENOMEM
        dest = self.get_unmapped_area(mm, vma, addr, new_len)
        return self.move_vma(mm, vma, addr, old_len, new_len, dest, False)

    def check_prep_vma(self, vma: Vma | None, addr: int, old_len: int, new_len: int,
                       implies_new: bool, dontunmap: bool) -> int:
        """``check_prep_vma()``: errors that depend on the source VMA."""
        if vma is None:
            return -EFAULT
        if not (new_len > old_len or implies_new):
            return 0
        if old_len == 0 and not vma.flags & (VM_SHARED | VM_MAYSHARE):
            return -EINVAL
        if old_len > vma.end - addr:
            return -EFAULT
        return 0

    def remap_move(self, mm: Mm, start: int, length: int, target: int, dontunmap: bool) -> int:
        """``remap_move()`` (6.17+): MREMAP_FIXED without resize moves every
        VMA of [start, start+length), keeping the gaps between them."""
        end = start + length
        seen = False
        last_end = 0
        res = -EFAULT
        pos = start
        while pos < end:  # the iterator's index past its max ends the loop
            vma = mm.vmas.find_vma(pos)
            if vma is None or vma.start >= end:
                break
            addr = max(vma.start, start)
            n = min(end, vma.end) - addr
            # for_each_vma_range(): the iterator resumes after the end the
            # VMA had when found (mas_pause on invalidation)
            resume = vma.end
            if not seen and start < vma.start:
                return -EFAULT
            offset = vma.start - last_end if seen else 0
            last_end = vma.end
            dest = target + offset
            r = self.check_prep_vma(vma, addr, n, n, True, dontunmap)
            if not r:
                r = self.mremap_to(mm, vma, addr, n, n, dest, True, dontunmap)
            if r:
                return r
            if not seen:
                res = 0
            seen = True
            target = dest + n
            pos = resume
        return res

    def mremap_to(self, mm: Mm, vma: Vma, addr: int, old_len: int, new_len: int,
                  new_addr: int, fixed: bool, dontunmap: bool) -> int:
        """``mremap_to()``: unmap the fixed destination first, shrink if asked,
        then move."""
        if fixed:
            self.do_munmap(mm, new_addr, new_addr + new_len)
            v = mm.vmas.find(addr)
            if v is None:
                return -EFAULT
            vma = v
        if new_len < old_len:
            self.do_munmap(mm, addr + new_len, addr + old_len)
            old_len = new_len
            v = mm.vmas.find(addr)
            assert v is not None
            vma = v
        if not fixed:
            new_addr = self.get_unmapped_area(mm, vma, addr, new_len)
        return self.move_vma(mm, vma, addr, old_len, new_len, new_addr, dontunmap)

    def move_vma(self, mm: Mm, vma: Vma, addr: int, old_len: int, new_len: int,
                 new_addr: int, dontunmap: bool) -> int:
        """``move_vma()``: ``copy_vma`` + ``move_page_tables``, then unmap the
        source range (``unmap_source_vma``, keeping VM_ACCOUNT on the pieces
        left) or, with MREMAP_DONTUNMAP, ``dontunmap_complete``."""
        self.vma_start_write(vma)
        self.sync.point(f"move_vma_start(VMA {vma.id})")
        self.design.move_vma_start(vma)
        new_pgoff = vma.pgoff + (addr - vma.start)
        new_vma, vma, need_rmap_locks = self.copy_vma(vma, new_addr, new_len, new_pgoff)
        if self.sync.active:
            self.sync.note(f"-> VMA {new_vma.id} at {short_page(new_addr)}")
        self.move_page_tables(mm, vma, addr, new_vma, new_addr, old_len, need_rmap_locks)
        if dontunmap:
            # dontunmap_complete(): VM_LOCKED* is cleared on the source;
            # VM_ACCOUNT stays, as observed on 6.18.44
            vma.flags &= ~VM_LOCKED_MASK
            old_start, old_end = vma.start, vma.end
            if new_vma is not vma and addr == old_start and addr + old_len == old_end:
                self.design.unlink_anon_vmas(vma)
                vma.anon_off = 0  # scalable CoW v5: the source starts afresh
            return 0
        self.sync.point(f"unmap the source {short_page(addr)}..{short_page(addr + old_len - 1)}")
        account = bool(vma.flags & VM_ACCOUNT)
        vm_start, vm_end = vma.start, vma.end
        if account:
            vma.flags &= ~VM_ACCOUNT
        self.do_munmap(mm, addr, addr + old_len)
        if account:
            if vm_start < addr:
                p = mm.vmas.find(addr - 1)
                if p is not None:
                    p.flags |= VM_ACCOUNT
            if vm_end > addr + old_len:
                n = mm.vmas.find(addr + old_len)
                if n is not None:
                    n.flags |= VM_ACCOUNT
        return 0

    def move_page_tables(self, mm: Mm, old_vma: Vma, old_addr: int, new_vma: Vma,
                         new_addr: int, length: int, need_rmap_locks: bool = False) -> None:
        """``move_page_tables()``: per extent, move a whole huge PMD or a
        whole page table when both addresses are 2 MiB aligned (and the
        destination has none), else split a huge PMD and ``move_ptes``
        under both PTLs.  With ``need_rmap_locks`` (the destination merged
        into a VMA sorting before the source in rmap order) each extent
        takes the anon_vma write lock (``take_rmap_locks``)."""
        pmd = mm.pt.pmd
        design = self.design
        hook = design.move_anon_pte
        sync = self.sync
        act = sync.active
        off = 0
        delta = new_addr - old_addr
        while off < length:
            o = old_addr + off
            n = o + delta
            extent = min(HPAGE_PMD_NR - (o & 511), HPAGE_PMD_NR - (n & 511), length - off)
            ob, nb = o >> 9, n >> 9
            e = pmd.get(ob)
            if e is None:
                off += extent
                continue
            tok = design.anon_vma_lock_write(old_vma) if need_rmap_locks else None
            olk, nlk = ("ptl", mm.name, ob), ("ptl", mm.name, nb)
            sync.lock(olk)
            if nb != ob:
                sync.lock(nlk)
            if type(e) is not dict and extent == HPAGE_PMD_NR and nb not in pmd:
                sync.point(f"move_huge_pmd {short_page(o)} -> {short_page(n)}")
                del pmd[ob]
                pmd[nb] = e
                if type(e) is PmdMap and e.folio.anon:
                    hook(e.folio, old_vma, new_vma, o, n)
            else:
                if type(e) is not dict:
                    self.split_pmd(mm, ob)
                    e = pmd[ob]
                assert type(e) is dict
                if extent == HPAGE_PMD_NR and nb not in pmd:
                    sync.point(f"move_normal_pmd {short_page(o)} -> {short_page(n)}")
                    del pmd[ob]
                    pmd[nb] = {v + delta: p for v, p in e.items()}
                    for v, p in sorted(e.items(), key=lambda t: t[0]):
                        if type(p) is Pte and p.folio.anon:
                            hook(p.folio, old_vma, new_vma, v, v + delta)
                else:
                    dest = pmd.get(nb)
                    if dest is None:
                        dest = pmd[nb] = {}
                    assert type(dest) is dict
                    for v, p in PageTables.ptes_in(e, o, o + extent):
                        if act:
                            sync.point(f"move_ptes {short_page(v)} -> {short_page(v + delta)}")
                        del e[v]
                        dest[v + delta] = p
                        if type(p) is Pte and p.folio.anon:
                            hook(p.folio, old_vma, new_vma, v, v + delta)
            if nb != ob:
                sync.unlock(nlk)
            sync.unlock(olk)
            if need_rmap_locks:
                design.anon_vma_unlock_write(tok)
            off += extent
