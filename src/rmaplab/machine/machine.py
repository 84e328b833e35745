"""The machine: processes, their address spaces, page tables and folios.

The machine knows nothing of any rmap design; it calls the design's hooks
(:class:`rmaplab.designs.base.RmapDesign`) where the kernel touches anonymous
rmap state.  System calls take arena page numbers (as in scenarios) and
return 0 or a negative errno, like the kernel.

Faults follow mm/memory.c and mm/huge_memory.c of Linux 6.18:

* private anonymous: a read maps the shared zero page (no anon_vma,
  ``do_anonymous_page``); a write prepares the anon_vma and maps a new
  exclusive folio.  Where a PMD THP is allowed (THP ``madvise`` mode and
  ``MADV_HUGEPAGE``, the aligned 2 MiB inside the VMA, no page table yet:
  ``__handle_mm_fault``'s ``pmd_none``), ``do_huge_pmd_anonymous_page``
  prepares the anon_vma first, then maps the huge zero page on a read or a
  new THP on a write (a write on the huge zero page maps a new THP,
  ``do_huge_zero_wp_pmd``).
* private file: a read maps the page-cache folio; a write prepares the
  anon_vma and then (``do_cow_fault``, ``wp_page_copy``) maps an anonymous
  copy whose index is the file offset.  Beyond end of file the kernel sends
  SIGBUS, reported as EFAULT (after the anon_vma was prepared, for writes).
* shared file or shared anonymous (shmem): the page-cache folio.
* write-protect faults (``do_wp_page``): reuse of an exclusive page; reuse
  of a small folio mapped only here after ``folio_move_anon_rmap``
  (``wp_can_reuse_anon_folio``); reuse of a large folio mapped only by this
  mm (``__wp_can_reuse_large_anon_folio``, no move); else copy.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Iterator

from rmaplab.designs.base import RmapDesign
from rmaplab.machine.config import KernelConfig
from rmaplab.machine.constants import ARENA_PAGES, ARENA_VPN, FAR_TOP_VPN, HPAGE_PMD_NR
from rmaplab.machine.flags import (
    VM_ACCESS_FLAGS,
    VM_ACCOUNT,
    VM_DONTCOPY,
    VM_EXEC,
    VM_HUGEPAGE,
    VM_MAY_ALL,
    VM_MAYSHARE,
    VM_NOHUGEPAGE,
    VM_NORESERVE,
    VM_READ,
    VM_SHARED,
    VM_WIPEONFORK,
    VM_WRITE,
    prot_to_vm,
)
from rmaplab.machine.folio import File, Folio
from rmaplab.machine.mm import Mm
from rmaplab.machine.pagetable import PageTables, PmdMap, Pte
from rmaplab.machine.vma import Vma
from rmaplab.machine.vmaops import VmaOps

EFAULT, ENOMEM, EINVAL, EEXIST, EACCES = (errno.EFAULT, errno.ENOMEM, errno.EINVAL,
                                          errno.EEXIST, errno.EACCES)
ARENA_END_VPN = ARENA_VPN + ARENA_PAGES
_ALL512 = (1 << HPAGE_PMD_NR) - 1
_READABLE = VM_READ | VM_WRITE | VM_EXEC  # x86: vma_is_accessible()


class Machine(VmaOps):
    """Processes, address spaces and folios, driven by system calls.

    >>> from rmaplab.designs import make_design
    >>> m = Machine(make_design("classic"))
    >>> m.mmap("P0", 0, 16), m.touch("P0", 0, 3, write=True), m.mprotect("P0", 4, 7, 1)
    (0, 0, 0)
    >>> m.maps("P0")
    [(0, 3, 'rw-'), (4, 7, 'r--'), (8, 15, 'rw-')]
    >>> m.fork("P0", "P1"), m.design.measure()
    (0, {'anon_vma': 4, 'avc': 9})
    """

    def __init__(self, design: RmapDesign, config: KernelConfig | None = None) -> None:
        self.design = design
        self.config = config or KernelConfig()
        self.next_vma_id = 0
        self.next_folio_id = 0
        self.next_mm_id = 0
        self.procs: dict[str, Mm] = {}
        self.files: dict[str, File] = {}
        #: live anonymous folios by id
        self.anon_folios: dict[int, Folio] = {}
        self.zero_page = Folio(-1, 1, anon=False, zero=True)
        self.huge_zero_page = Folio(-2, HPAGE_PMD_NR, anon=False, zero=True)
        self.huge_zero_page.mm_counts = None
        #: number of operations executed (for reports of the first failing step)
        self.steps = 0
        design.attach(self)
        self.procs["P0"] = self._new_mm("P0", None)

    # ------------------------------------------------------------------ basics
    def _new_mm(self, name: str, parent: Mm | None) -> Mm:
        self.next_mm_id += 1
        return Mm(self.next_mm_id, name, parent)

    def mm(self, proc: str) -> Mm:
        """The live mm of process ``proc``."""
        try:
            return self.procs[proc]
        except KeyError:
            raise KeyError(f"no live process {proc}") from None

    def live_mms(self) -> list[Mm]:
        return list(self.procs.values())

    def file(self, name: str) -> File:
        f = self.files.get(name)
        if f is None:
            f = self.files[name] = File(name, 1)
        return f

    def new_folio(self, nr: int, anon: bool) -> Folio:
        self.next_folio_id += 1
        f = Folio(self.next_folio_id, nr, anon)
        if anon:
            self.anon_folios[f.id] = f
        return f

    def maps(self, proc: str) -> list[tuple[int, int, str]]:
        """VMAs of ``proc`` inside the arena: (first page, last page, 'rwx')."""
        out = []
        for v in self.mm(proc).vmas:
            if v.start >= ARENA_VPN and v.end <= ARENA_END_VPN:
                f = v.flags
                out.append((v.start - ARENA_VPN, v.end - 1 - ARENA_VPN,
                            ("r" if f & VM_READ else "-") + ("w" if f & VM_WRITE else "-")
                            + ("x" if f & VM_EXEC else "-")))
        return out

    # ------------------------------------------------------------- page level
    def map_pte(self, mm: Mm, vpn: int, folio: Folio, idx: int, write: bool) -> None:
        """Install a PTE (allocating the page table if needed)."""
        pmd = mm.pt.pmd
        t = pmd.get(vpn >> 9)
        if t is None:
            t = pmd[vpn >> 9] = {}
        t[vpn] = Pte(folio, idx, write)  # type: ignore[index]
        if not folio.zero:
            folio.mapcount += 1
            mc = folio.mm_counts
            if mc is not None:
                mc[mm] = mc.get(mm, 0) + 1

    def map_pmd(self, mm: Mm, b: int, folio: Folio, write: bool) -> None:
        mm.pt.pmd[b] = PmdMap(folio, write)
        if not folio.zero:
            folio.mapcount += 1
            mc = folio.mm_counts
            assert mc is not None
            mc[mm] = mc.get(mm, 0) + 1

    def drop_mapping(self, mm: Mm, folio: Folio, n: int = 1) -> None:
        """``n`` mappings of ``folio`` in ``mm`` went away; free an anonymous
        folio with no mapping left (no swap cache is modelled)."""
        if folio.zero:
            return
        folio.mapcount -= n
        mc = folio.mm_counts
        if mc is not None:
            c = mc[mm] - n
            if c:
                mc[mm] = c
            else:
                del mc[mm]
        if folio.anon and folio.mapcount == 0 and not folio.pins:
            self.free_folio(folio)

    def free_folio(self, folio: Folio) -> None:
        """The last reference to an anonymous folio is gone."""
        folio.freed = True
        del self.anon_folios[folio.id]
        self.design.folio_freed(folio)

    def split_pmd(self, mm: Mm, b: int) -> None:
        """``__split_huge_pmd_locked()``: turn a PMD mapping into 512 PTEs of
        the same (still large) folio; PG_anon_exclusive of the head page is
        copied to every page."""
        e = mm.pt.pmd[b]
        assert type(e) is PmdMap
        base = b * HPAGE_PMD_NR
        f = e.folio
        if f.zero:
            z = self.zero_page
            mm.pt.pmd[b] = {base + i: Pte(z, 0, False) for i in range(HPAGE_PMD_NR)}
            return
        mm.pt.pmd[b] = {base + i: Pte(f, i, e.write) for i in range(HPAGE_PMD_NR)}
        f.excl = _ALL512 if f.excl & 1 else 0
        f.mapcount += HPAGE_PMD_NR - 1
        mc = f.mm_counts
        assert mc is not None
        mc[mm] += HPAGE_PMD_NR - 1

    def zap(self, mm: Mm, lo: int, hi: int, reclaim_pt: bool = False) -> None:
        """``zap_page_range``: remove every mapping in [lo, hi); a PMD mapping
        only partly inside is split first (the folio goes to the deferred
        split queue and stays large).  With ``reclaim_pt`` (MADV_DONTNEED
        and CONFIG_PT_RECLAIM) a page table wholly inside the range is freed."""
        pmd = mm.pt.pmd
        for b, e in list(mm.pt.tables_in(lo, hi)):
            blo = b * HPAGE_PMD_NR
            full = lo <= blo and blo + HPAGE_PMD_NR <= hi
            if type(e) is PmdMap:
                if full:
                    del pmd[b]
                    self.drop_mapping(mm, e.folio)
                    continue
                self.split_pmd(mm, b)
                e = pmd[b]
            assert type(e) is dict
            for vpn, pte in PageTables.ptes_in(e, lo, hi):
                del e[vpn]
                self.drop_mapping(mm, pte.folio)
            if full and reclaim_pt and not e:
                del pmd[b]

    # ------------------------------------------------------------------ faults
    def touch(self, proc: str, first: int, last: int, write: bool) -> int:
        """Touch one byte per page of arena pages [first, last], in order.
        Returns 0, or -EFAULT at the first page that faults (SIGSEGV/SIGBUS)."""
        mm = self.mm(proc)
        vmas = mm.vmas
        vma: Vma | None = None
        for vpn in range(ARENA_VPN + first, ARENA_VPN + last + 1):
            if vma is None or not (vma.start <= vpn < vma.end) or vma.detached:
                vma = vmas.find(vpn)
                if vma is None:
                    return -EFAULT
            r = self.handle_fault(mm, vma, vpn, write)
            if r:
                return r
        return 0

    def handle_fault(self, mm: Mm, vma: Vma, vpn: int, write: bool) -> int:
        """``handle_mm_fault()`` for one access (no-op if already mapped
        with enough permission).  Returns 0 or -EFAULT."""
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
            return self.fault_none(mm, vma, vpn, write)
        if type(e) is dict:
            pte = e.get(vpn)
            if pte is None:
                return self.fault_none(mm, vma, vpn, write)
            if write and not pte.write:
                return self.wp_fault(mm, vma, vpn, pte)
            return 0
        if write and not e.write:  # type: ignore[union-attr]
            return self.huge_wp_fault(mm, vma, b, e, vpn)  # type: ignore[arg-type]
        return 0

    def thp_allowed(self, vma: Vma, b: int) -> bool:
        """``thp_vma_allowable_order(PMD_ORDER)`` + ``thp_vma_suitable_order``
        for a private anonymous VMA and the 2 MiB block ``b``."""
        mode = self.config.thp
        if mode == "never" or vma.flags & VM_NOHUGEPAGE:
            return False
        if mode == "madvise" and not vma.flags & VM_HUGEPAGE:
            return False
        base = b * HPAGE_PMD_NR
        return vma.start <= base and base + HPAGE_PMD_NR <= vma.end

    def new_anon_folio(self, vma: Vma, vpn: int, nr: int) -> Folio:
        """Allocate an exclusive anonymous folio and ``folio_add_new_anon_rmap``."""
        f = self.new_folio(nr, anon=True)
        f.excl = _ALL512 if nr > 1 else 1
        self.design.folio_add_new_anon_rmap(f, vma, vpn, True)
        return f

    def fault_none(self, mm: Mm, vma: Vma, vpn: int, write: bool) -> int:
        """A fault on a page with no PTE: ``do_anonymous_page``,
        ``do_read_fault``, ``do_cow_fault`` or ``do_shared_fault``."""
        file = vma.file
        if file is None and not vma.flags & VM_SHARED:
            if not write:
                self.map_pte(mm, vpn, self.zero_page, 0, False)
                return 0
            self.design.anon_vma_prepare(vma)
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

    def page_cache(self, file: File, index: int) -> Folio:
        f = file.cache.get(index)
        if f is None:
            f = file.cache[index] = self.new_folio(1, anon=False)
            f.file = file
            f.index = index
        return f

    def wp_fault(self, mm: Mm, vma: Vma, vpn: int, pte: Pte) -> int:
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
                if f.mapcount == 1:  # wp_can_reuse_anon_folio()
                    self.design.folio_move_anon_rmap(f, vma)
                    f.excl = 1
                    pte.write = True
                    return 0
            else:
                mc = f.mm_counts
                assert mc is not None
                # __wp_can_reuse_large_anon_folio(): no folio_move_anon_rmap
                if f.mapcount > 1 and len(mc) == 1 and mm in mc:
                    f.excl |= bit
                    pte.write = True
                    return 0
        return self.wp_page_copy(mm, vma, vpn, pte)

    def wp_page_copy(self, mm: Mm, vma: Vma, vpn: int, pte: Pte) -> int:
        """``wp_page_copy()``: prepare the anon_vma, map a new exclusive
        order-0 copy, drop the old mapping."""
        self.design.anon_vma_prepare(vma)
        old = pte.folio
        new = self.new_anon_folio(vma, vpn, 1)
        t = mm.pt.pmd[vpn >> 9]
        assert type(t) is dict
        t[vpn] = Pte(new, 0, True)
        new.mapcount = 1
        self.drop_mapping(mm, old)
        return 0

    def huge_anonymous_fault(self, mm: Mm, vma: Vma, b: int, write: bool) -> int:
        """``do_huge_pmd_anonymous_page()``: anon_vma first, then the huge
        zero page (read) or a new PMD-mapped THP (write)."""
        self.design.anon_vma_prepare(vma)
        if not write and self.config.thp_use_zero_page:
            mm.pt.pmd[b] = PmdMap(self.huge_zero_page, False)
            return 0
        f = self.new_anon_folio(vma, b * HPAGE_PMD_NR, HPAGE_PMD_NR)
        self.map_pmd(mm, b, f, True)
        return 0

    def huge_wp_fault(self, mm: Mm, vma: Vma, b: int, e: PmdMap, vpn: int) -> int:
        """``do_huge_pmd_wp_page()``."""
        f = e.folio
        if f.zero:  # do_huge_zero_wp_pmd(): replace by a new THP
            self.design.anon_vma_prepare(vma)
            new = self.new_anon_folio(vma, b * HPAGE_PMD_NR, HPAGE_PMD_NR)
            del mm.pt.pmd[b]
            self.map_pmd(mm, b, new, True)
            return 0
        if f.excl & 1:
            e.write = True
            return 0
        if f.mapcount == 1:
            self.design.folio_move_anon_rmap(f, vma)
            f.excl = _ALL512
            e.write = True
            return 0
        self.split_pmd(mm, b)  # fallback: __split_huge_pmd, then PTE COW
        t = mm.pt.pmd[b]
        assert type(t) is dict
        return self.wp_fault(mm, vma, vpn, t[vpn])

    # ------------------------------------------------------------------- mmap
    def mmap(self, proc: str, start: int, npages: int, prot: int = 3, shared: bool = False,
             file: str | None = None, off: int = 0, populate: bool = False) -> int:
        """``mmap(MAP_FIXED_NOREPLACE)`` of arena pages [start, start+npages)
        (``do_mmap`` + ``__mmap_region``), then ``mm_populate`` for
        MAP_POPULATE (``vm_mmap_pgoff``)."""
        mm = self.mm(proc)
        f = None
        if file is not None:
            f = self.file(file)
            f.size = max(f.size, off + npages)  # the scenario grows the file first
        if npages <= 0:
            return -EINVAL
        addr = ARENA_VPN + start
        end = addr + npages
        flags = prot_to_vm(prot) | VM_MAY_ALL
        if shared:
            flags |= VM_SHARED | VM_MAYSHARE
        if f is None:
            pgoff = 0 if shared else addr
        else:
            pgoff = off
        if mm.vmas.overlapping(addr, end):
            return -EEXIST
        if (flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) == VM_WRITE:
            flags |= VM_ACCOUNT  # accountable_mapping()
        self.mmap_region(mm, addr, end, pgoff, flags, f, shmem=(f is None and shared))
        if populate:
            self.mm_populate(mm, addr, end)
        return 0

    def mm_populate(self, mm: Mm, start: int, end: int) -> None:
        """``__mm_populate(ignore_errors=1)`` -> ``populate_vma_page_range``:
        fault in every page of every VMA in [start, end), with a write fault
        where the VMA is private and writable (to break COW), a read fault
        otherwise; an inaccessible VMA (PROT_NONE: no FOLL_FORCE) is skipped.
        Errors are ignored."""
        vpn = start
        while vpn < end:
            vma = mm.vmas.find_vma(vpn)
            if vma is None or vma.start >= end:
                return
            vpn = max(vpn, vma.start)
            hi = min(vma.end, end)
            if vma.flags & _READABLE:
                write = (vma.flags & (VM_WRITE | VM_SHARED)) == VM_WRITE
                for v in range(vpn, hi):
                    self.handle_fault(mm, vma, v, write)
            vpn = hi

    def mmap_region(self, mm: Mm, addr: int, end: int, pgoff: int, flags: int,
                    file: File | None, shmem: bool = False) -> Vma:
        """``__mmap_region()``: merge with neighbours, else a new VMA (a
        shared anonymous mapping gets its shmem file after the merge attempt,
        ``shmem_zero_setup``, so it never merges)."""
        prev = mm.vmas.prev_of(addr)
        nxt = mm.vmas.find_vma(addr)
        from rmaplab.machine.vmaops import Vmg

        vmg = Vmg(mm, addr, end, pgoff, flags, file, None, prev=prev, next=nxt)
        vma = self.vma_merge_new_range(vmg)
        if vma is None:
            if shmem:
                file = File(f"shmem@{addr:#x}", end - addr, shmem=True)
            vma = self.new_vma(mm, addr, end, pgoff, flags, file)
            mm.vmas.insert(vma)
        return vma

    # ------------------------------------------------------------------ munmap
    def munmap(self, proc: str, first: int, last: int) -> int:
        """``munmap()`` of arena pages [first, last]."""
        self.do_munmap(self.mm(proc), ARENA_VPN + first, ARENA_VPN + last + 1)
        return 0

    # ---------------------------------------------------------------- mprotect
    def mprotect(self, proc: str, first: int, last: int, prot: int) -> int:
        """``do_mprotect_pkey()``: ENOMEM (nothing done) if ``first`` is not
        mapped; applied VMA by VMA up to a hole, then ENOMEM."""
        mm = self.mm(proc)
        start, end = ARENA_VPN + first, ARENA_VPN + last + 1
        vma = mm.vmas.find_vma(start)
        if vma is None or vma.start >= end or vma.start > start:
            return -ENOMEM
        prev = vma if start > vma.start else mm.vmas.prev(vma)
        nstart = start
        tmp = vma.start
        newprot = prot_to_vm(prot)
        while vma is not None and vma.start < end:
            if vma.start != tmp:
                return -ENOMEM
            newflags = newprot | (vma.flags & ~VM_ACCESS_FLAGS)
            if (newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS:
                return -EACCES
            tmp = min(vma.end, end)
            vma = self.mprotect_fixup(vma, prev, nstart, tmp, newflags)
            prev = vma
            tmp = vma.end
            nstart = tmp
            vma = mm.vmas.find_vma(nstart)
        if tmp < end:
            return -ENOMEM
        return 0

    def mprotect_fixup(self, vma: Vma, prev: Vma | None, start: int, end: int,
                       newflags: int) -> Vma:
        """``mprotect_fixup()``: VM_ACCOUNT rules, then ``vma_modify_flags``.
        Making a private mapping writable adds VM_ACCOUNT; making it read-only
        drops VM_ACCOUNT only for an anonymous VMA without anon_vma."""
        oldflags = vma.flags
        if newflags == oldflags:
            return vma
        if newflags & VM_WRITE:
            if not oldflags & (VM_ACCOUNT | VM_WRITE | VM_SHARED | VM_NORESERVE):
                newflags |= VM_ACCOUNT
        elif oldflags & VM_ACCOUNT and vma.is_anonymous() and vma.anon_vma is None:
            newflags &= ~VM_ACCOUNT
        vma = self.vma_modify_flags(prev, vma, start, end, newflags)
        vma.flags = newflags
        self.change_protection(vma, start, end)
        return vma

    def change_protection(self, vma: Vma, start: int, end: int) -> None:
        """``change_protection()``: write-protect, or make exclusive anonymous
        pages (and shared pages) writable (MM_CP_TRY_CHANGE_WRITABLE)."""
        writable = bool(vma.flags & VM_WRITE)
        shared = bool(vma.flags & VM_SHARED)
        for _b, e in vma.mm.pt.tables_in(start, end):
            if type(e) is PmdMap:
                e.write = writable and not e.folio.zero and (shared or bool(e.folio.excl & 1))
                continue
            for _vpn, pte in PageTables.ptes_in(e, start, end):  # type: ignore[arg-type]
                f = pte.folio
                pte.write = writable and not f.zero and (
                    shared or (f.anon and bool(f.excl >> pte.idx & 1)))

    # ----------------------------------------------------------------- madvise
    def madvise(self, proc: str, first: int, last: int, advice: str) -> int:
        """``madvise()`` (``madvise_walk_vmas``): holes are skipped and reported
        as ENOMEM at the end; an error of one VMA stops the walk."""
        mm = self.mm(proc)
        start, end = ARENA_VPN + first, ARENA_VPN + last + 1
        if advice in ("populate_read", "populate_write"):
            return self.madvise_populate(mm, start, end, advice == "populate_write")
        vma = mm.vmas.find_vma(start)
        prev = vma if vma is not None and start > vma.start else (
            mm.vmas.prev(vma) if vma is not None else mm.vmas.prev_of(start))
        unmapped = 0
        while True:
            if vma is None:
                return -ENOMEM
            if start < vma.start:
                unmapped = -ENOMEM
                start = vma.start
                if start >= end:
                    break
            tmp = min(vma.end, end)
            r, vma = self.madvise_vma(vma, prev, start, tmp, advice)
            if r:
                return r
            prev = vma
            tmp = max(tmp, vma.end)
            if tmp >= end:
                break
            start = tmp
            vma = mm.vmas.find_vma(vma.end)
        return unmapped

    def madvise_populate(self, mm: Mm, start: int, end: int, write: bool) -> int:
        """``madvise_populate()`` -> ``faultin_page_range``: fault in page by
        page; a hole stops with ENOMEM, a VMA the access is not allowed on
        (``check_vma_flags``) with EINVAL, a SIGBUS with EFAULT; pages before
        the failure stay populated."""
        vpn = start
        while vpn < end:
            vma = mm.vmas.find(vpn)
            if vma is None:
                return -ENOMEM
            if write and not vma.flags & VM_WRITE:
                return -EINVAL
            if not write and not vma.flags & VM_READ:
                return -EINVAL
            for v in range(vpn, min(vma.end, end)):
                if self.handle_fault(mm, vma, v, write):
                    return -EFAULT  # VM_FAULT_SIGBUS (beyond the end of a file)
            vpn = min(vma.end, end)
        return 0

    def madvise_vma(self, vma: Vma, prev: Vma | None, start: int, end: int,
                    advice: str) -> tuple[int, Vma]:
        """``madvise_vma_behavior()`` for [start, end) inside ``vma``."""
        if advice == "dontneed":
            self.zap(vma.mm, start, end, reclaim_pt=self.config.pt_reclaim)
            return 0, vma
        flags = vma.flags
        if advice == "dontfork":
            flags |= VM_DONTCOPY
        elif advice == "dofork":
            flags &= ~VM_DONTCOPY
        elif advice == "wipeonfork":
            if vma.file is not None or flags & VM_SHARED:
                return -EINVAL, vma
            flags |= VM_WIPEONFORK
        elif advice == "keeponfork":
            flags &= ~VM_WIPEONFORK
        elif advice == "hugepage":
            flags = (flags & ~VM_NOHUGEPAGE) | VM_HUGEPAGE
        elif advice == "nohugepage":
            flags = (flags & ~VM_HUGEPAGE) | VM_NOHUGEPAGE
        else:
            raise ValueError(f"unknown madvise advice {advice!r}")
        if flags == vma.flags:  # madvise_update_vma(): nothing to change
            return 0, vma
        vma = self.vma_modify_flags(prev, vma, start, end, flags)
        vma.flags = flags
        return 0, vma

    # ------------------------------------------------------------------ mremap
    def mremap(self, proc: str, old: int, old_len: int, new_len: int,
               new: int | None = None, dontunmap: bool = False, maymove: bool = True) -> int:
        """``mremap()`` (mm/mremap.c ``do_mremap``, 6.17+ structure)."""
        mm = self.mm(proc)
        addr = ARENA_VPN + old
        fixed = new is not None
        new_addr = ARENA_VPN + new if new is not None else 0
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

    def get_unmapped_area(self, mm: Mm, vma: Vma, addr: int, npages: int) -> int:
        """``get_unmapped_area()`` with no hint, as ``vrm_set_new_addr`` calls
        it: top-down below :data:`FAR_TOP_VPN`, far from the arena.  Private
        anonymous lengths that are multiples of 2 MiB are 2 MiB aligned
        (``thp_get_unmapped_area_vmflags``, pgoff treated as 0); file
        mappings are aligned like their file offset when the range holds a
        whole aligned 2 MiB (``thp_get_unmapped_area``)."""
        align = 0
        if vma.file is None and not vma.flags & VM_SHARED:
            if npages % HPAGE_PMD_NR == 0:
                align = 0  # congruent to offset 0
                need_align = True
            else:
                need_align = False
        elif vma.file is not None and not vma.file.shmem:
            pgoff = vma.pgoff + (addr - vma.start)
            off_align = -(-pgoff // HPAGE_PMD_NR) * HPAGE_PMD_NR
            need_align = pgoff + npages > off_align and pgoff + npages - off_align >= HPAGE_PMD_NR
            align = pgoff
        else:
            need_align = False
        need = npages + (HPAGE_PMD_NR if need_align else 0)
        hi = FAR_TOP_VPN
        far = [v for v in mm.vmas.overlapping(ARENA_END_VPN, FAR_TOP_VPN)]
        for v in reversed(far):
            if hi - v.end >= need:
                break
            hi = v.start
        ret = hi - need
        if need_align:
            off_sub = (align - ret) % HPAGE_PMD_NR
            ret = ret + HPAGE_PMD_NR if off_sub == 0 else ret + off_sub
        return ret

    def move_vma(self, mm: Mm, vma: Vma, addr: int, old_len: int, new_len: int,
                 new_addr: int, dontunmap: bool) -> int:
        """``move_vma()``: ``copy_vma`` + ``move_page_tables``, then unmap the
        source range (``unmap_source_vma``, keeping VM_ACCOUNT on the pieces
        left) or, with MREMAP_DONTUNMAP, ``dontunmap_complete``."""
        self.design.move_vma_start(vma)
        new_pgoff = vma.pgoff + (addr - vma.start)
        new_vma, vma = self.copy_vma(vma, new_addr, new_len, new_pgoff)
        self.move_page_tables(mm, vma, addr, new_vma, new_addr, old_len)
        if dontunmap:
            # dontunmap_complete(): VM_LOCKED* is cleared on the source (not
            # modelled); VM_ACCOUNT stays, as observed on 6.18.44
            old_start, old_end = vma.start, vma.end
            if new_vma is not vma and addr == old_start and addr + old_len == old_end:
                self.design.unlink_anon_vmas(vma)
            return 0
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
                         new_addr: int, length: int) -> None:
        """``move_page_tables()``: per extent, move a whole huge PMD or a
        whole page table when both addresses are 2 MiB aligned (and the
        destination has none), else split a huge PMD and move the PTEs."""
        pmd = mm.pt.pmd
        hook = self.design.move_anon_pte
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
            if type(e) is PmdMap:
                if extent == HPAGE_PMD_NR and nb not in pmd:
                    del pmd[ob]
                    pmd[nb] = e
                    if e.folio.anon:
                        hook(e.folio, old_vma, new_vma, o, n)
                    off += extent
                    continue
                self.split_pmd(mm, ob)
                e = pmd[ob]
            assert type(e) is dict
            if extent == HPAGE_PMD_NR and nb not in pmd:
                del pmd[ob]
                pmd[nb] = {v + delta: p for v, p in e.items()}
                for v, p in sorted(e.items()):
                    if p.folio.anon:
                        hook(p.folio, old_vma, new_vma, v, v + delta)
                off += extent
                continue
            dest = pmd.get(nb)
            if dest is None:
                dest = pmd[nb] = {}
            assert type(dest) is dict
            for v, p in PageTables.ptes_in(e, o, o + extent):
                del e[v]
                dest[v + delta] = p
                if p.folio.anon:
                    hook(p.folio, old_vma, new_vma, v, v + delta)
            off += extent

    # -------------------------------------------------------------------- fork
    def fork(self, proc: str, child: str) -> int:
        """``fork()`` -> ``dup_mmap()``: every VMA but VM_DONTCOPY ones is
        duplicated; VM_WIPEONFORK ones get no anon_vma and no pages; others
        go through ``anon_vma_fork`` and, if the parent VMA has an anon_vma
        (``vma_needs_copy``), ``copy_page_range``.  The child's VMA tree is
        built in one go at the end (design hooks must not look it up
        before ``dup_mmap_end``).  O(VMAs + copied PTEs)."""
        if child in self.procs:
            raise ValueError(f"process {child} exists")
        pmm = self.mm(proc)
        cmm = self._new_mm(child, pmm)
        design = self.design
        design.dup_mmap_start(pmm, cmm)
        fork_vma = design.anon_vma_fork
        new: list[Vma] = []
        vid = self.next_vma_id
        for vma in pmm.vmas:
            flags = vma.flags
            if flags & VM_DONTCOPY:
                continue
            vid += 1  # vm_area_dup()
            tmp = Vma(vid, cmm, vma.start, vma.end, vma.pgoff, flags, vma.file)
            tmp.anon_vma = vma.anon_vma
            if flags & VM_WIPEONFORK:
                tmp.anon_vma = None
            else:
                fork_vma(tmp, vma)
                if vma.anon_vma is not None:
                    self.copy_page_range(tmp, vma)
            new.append(tmp)
        self.next_vma_id = vid
        cmm.vmas.load(new)
        self.procs[child] = cmm
        design.dup_mmap_end(pmm, cmm)
        return 0

    def copy_page_range(self, dst: Vma, src: Vma) -> None:
        """``copy_page_range()``: share anonymous folios (both sides
        write-protected, PG_anon_exclusive cleared: ``folio_try_dup_anon_rmap``),
        file folios and zero pages; the child gets a page table for every
        PMD where the parent has one (``copy_pte_range``)."""
        smm, dmm = src.mm, dst.mm
        spmd, dpmd = smm.pt.pmd, dmm.pt.pmd
        dup = self.design.dup_anon_rmap
        call_dup = type(self.design).dup_anon_rmap is not RmapDesign.dup_anon_rmap
        start, end = src.start, src.end
        for b in range(start >> 9, ((end - 1) >> 9) + 1):
            e = spmd.get(b)
            if e is None:
                continue
            if type(e) is PmdMap:
                f = e.folio
                if f.zero:
                    dpmd[b] = PmdMap(f, False)
                    continue
                e.write = False
                f.excl = 0
                if call_dup:
                    dup(f, src, dst)
                self.map_pmd(dmm, b, f, False)
                continue
            dt = dpmd.get(b)
            if dt is None:
                dt = dpmd[b] = {}
            lo = start if start > b << 9 else b << 9
            hi = end if end < (b + 1) << 9 else (b + 1) << 9
            vpns: Iterable[int]
            if hi - lo <= len(e):  # type: ignore[arg-type]
                get = e.get  # type: ignore[union-attr]
                vpns = range(lo, hi)
            else:
                get = e.get  # type: ignore[union-attr]
                vpns = sorted(v for v in e if lo <= v < hi)  # type: ignore[union-attr]
            for vpn in vpns:
                pte = get(vpn)
                if pte is None:
                    continue
                f = pte.folio
                idx = pte.idx
                if f.zero:
                    dt[vpn] = Pte(f, 0, False)  # type: ignore[index]
                    continue
                if f.anon:
                    f.excl &= ~(1 << idx)
                    pte.write = False
                    if call_dup:
                        dup(f, src, dst)
                dt[vpn] = Pte(f, idx, False)  # type: ignore[index]
                f.mapcount += 1
                mc = f.mm_counts
                if mc is not None:
                    mc[dmm] = mc.get(dmm, 0) + 1

    # -------------------------------------------------------------------- exit
    def exit(self, proc: str) -> int:
        """``exit_mmap()``: zap everything, ``free_pgtables`` (which unlinks
        every VMA's anon state in address order), then free the VMAs.
        O(VMAs + mapped entries)."""
        mm = self.mm(proc)
        vmas = list(mm.vmas)
        for _vpn, e in list(mm.pt.present()):
            self.drop_mapping(mm, e.folio)
        mm.pt.pmd.clear()
        unlink = self.design.unlink_anon_vmas
        for v in vmas:
            unlink(v)
        mm.vmas.clear()
        removed = self.design.vma_removed
        for v in vmas:
            v.detached = True
            removed(v)
        mm.alive = False
        del self.procs[proc]
        self.design.exit_mm(mm)
        return 0

    # ------------------------------------------- read-only helpers for walkers
    def folio_maybe_mapped_shared(self, folio: Folio) -> bool:
        """``folio_maybe_mapped_shared()``: mapped by more than one mm (a small
        folio: more than one mapping)."""
        if folio.nr == 1:
            return folio.mapcount > 1
        return len(folio.mm_counts or ()) > 1

    def folio_mapped_in(self, vma: Vma, folio: Folio, base: int) -> bool:
        """``page_vma_mapped_walk()``: does ``vma`` map some page i of
        ``folio`` at ``base + i``?"""
        pt = vma.mm.pt
        for i in range(max(0, vma.start - base), min(folio.nr, vma.end - base)):
            e = pt.entry(base + i)
            if e is not None and e.folio is folio and (isinstance(e, PmdMap) or e.idx == i):
                return True
        return False

    # ------------------------------------------------------------ ground truth
    def anon_mappings(self) -> Iterator[tuple[Mm, int, Folio, int]]:
        """Every mapped page of every anonymous folio: (mm, vpn, folio, page)."""
        for mm, vpn, f, i, n in self.anon_runs():
            for k in range(n):
                yield mm, vpn + k, f, i + k

    def anon_runs(self) -> Iterator[tuple[Mm, int, Folio, int, int]]:
        """Mappings of anonymous folios as runs: (mm, vpn, folio, first page,
        pages) - a PMD mapping is one run of 512 pages, a PTE one page."""
        for mm in self.procs.values():
            for vpn, e in mm.pt.present():
                f = e.folio
                if not f.anon:
                    continue
                if type(e) is PmdMap:
                    yield mm, vpn, f, 0, f.nr
                else:
                    yield mm, vpn, f, e.idx, 1  # type: ignore[union-attr]

    def check_structures(self) -> list[str]:
        """Violations of the machine's own invariants (VMA trees, page
        tables inside VMAs, folio map counts).  O(VMAs + entries)."""
        errs: list[str] = []
        counts: dict[int, int] = {}
        for mm in self.procs.values():
            try:
                mm.vmas.check()
            except AssertionError as broken:
                errs.append(f"{mm.name}: VMA tree broken: {broken}")
            pt = mm.pt
            inside = 0
            pmds: set[int] = set()
            for v in mm.vmas:
                for b, e in pt.tables_in(v.start, v.end):
                    if type(e) is PmdMap:
                        if b in pmds:
                            continue
                        pmds.add(b)
                        base = b * HPAGE_PMD_NR
                        if not (v.start <= base and base + HPAGE_PMD_NR <= v.end):
                            errs.append(f"{mm.name}: PMD at {base:#x} crosses a VMA boundary")
                        inside += 1
                        f = e.folio
                        if not f.zero:
                            counts[id(f)] = counts.get(id(f), 0) + 1
                        continue
                    lo = v.start if v.start > b * HPAGE_PMD_NR else b * HPAGE_PMD_NR
                    hi = v.end if v.end < (b + 1) * HPAGE_PMD_NR else (b + 1) * HPAGE_PMD_NR
                    for vpn, pte in PageTables.ptes_in(e, lo, hi):  # type: ignore[arg-type]
                        inside += 1
                        f = pte.folio
                        if f.zero:
                            continue
                        counts[id(f)] = counts.get(id(f), 0) + 1
                        if f.anon and f.freed:
                            errs.append(f"{mm.name}: freed folio {f.id} still mapped at {vpn:#x}")
            total = sum(1 if isinstance(t, PmdMap) else len(t) for t in pt.pmd.values())
            if total != inside:
                errs.append(f"{mm.name}: {total - inside} page(s) mapped outside any VMA")
        for f in self.anon_folios.values():
            if counts.get(id(f), 0) != f.mapcount:
                errs.append(f"folio {f.id}: mapcount {f.mapcount} but "
                            f"{counts.get(id(f), 0)} mappings")
        return errs
