"""mm/huge_memory.c: PMD-sized THP faults, COW and PMD splits (Linux 6.18)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rmaplab.machine.constants import HPAGE_PMD_NR, short_page
from rmaplab.machine.flags import VM_HUGEPAGE, VM_NOHUGEPAGE
from rmaplab.machine.pagetable import MigrationPte, PmdMap, PmdMigration, Pte

if TYPE_CHECKING:
    from rmaplab.machine.config import KernelConfig
    from rmaplab.machine.design import Design
    from rmaplab.machine.folio import Folio
    from rmaplab.machine.mm import Mm
    from rmaplab.machine.sync import Sync
    from rmaplab.machine.vma import Vma

_ALL512 = (1 << HPAGE_PMD_NR) - 1


class HugeMemoryOps:
    """mm/huge_memory.c, as a mixin of :class:`rmaplab.machine.machine.Machine`."""

    if TYPE_CHECKING:
        design: Design
        config: KernelConfig
        sync: Sync
        zero_page: Folio
        huge_zero_page: Folio

        def new_anon_folio(self, vma: Vma, vpn: int, nr: int) -> Folio: ...
        def map_pmd(self, mm: Mm, b: int, folio: Folio, write: bool) -> None: ...
        def do_wp_page(self, mm: Mm, vma: Vma, vpn: int, pte: Pte) -> int: ...

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
        if f.mapcount == 1 and f.swap is None:
            self.design.folio_move_anon_rmap(f, vma)
            f.excl = _ALL512
            e.write = True
            return 0
        self.split_pmd(mm, b)  # fallback: __split_huge_pmd, then PTE COW
        t = mm.pt.pmd[b]
        assert type(t) is dict
        return self.do_wp_page(mm, vma, vpn, t[vpn])  # type: ignore[arg-type]

    def split_pmd(self, mm: Mm, b: int) -> None:
        """``__split_huge_pmd_locked()`` (caller holds the PMD lock): turn a
        PMD mapping into 512 PTEs of the same (still large) folio;
        PG_anon_exclusive of the head page is copied to every page.  A PMD
        migration entry becomes 512 PTE migration entries."""
        e = mm.pt.pmd[b]
        assert isinstance(e, PmdMap)
        base = b * HPAGE_PMD_NR
        f = e.folio
        if type(e) is PmdMigration:
            mm.pt.pmd[b] = {base + i: MigrationPte(f, i, e.write)  # type: ignore[misc]
                            for i in range(HPAGE_PMD_NR)}
            return
        if f.zero:
            z = self.zero_page
            mm.pt.pmd[b] = {base + i: Pte(z, 0, False) for i in range(HPAGE_PMD_NR)}
            return
        mm.pt.pmd[b] = {base + i: Pte(f, i, e.write) for i in range(HPAGE_PMD_NR)}
        f.excl = _ALL512 if f.excl & 1 else 0
        f.map(mm, HPAGE_PMD_NR - 1)

    def split_pmd_at(self, mm: Mm, vpn: int) -> None:
        """``split_huge_pmd_if_needed()``: a VMA boundary at ``vpn`` inside a
        PMD mapping splits that mapping into PTEs."""
        if vpn & (HPAGE_PMD_NR - 1):
            e = mm.pt.pmd.get(vpn >> 9)
            if e is not None and type(e) is not dict:
                self.split_pmd(mm, vpn >> 9)

    def split_huge_pmd(self, mm: Mm, vpn: int) -> int:
        """``split_huge_pmd()`` of the PMD mapping ``vpn``, under the PMD lock."""
        lk = ("ptl", mm.name, vpn >> 9)
        self.sync.lock(lk)
        self.sync.point(f"__split_huge_pmd {short_page(vpn)}")
        e = mm.pt.pmd.get(vpn >> 9)
        if e is not None and type(e) is not dict:
            self.split_pmd(mm, vpn >> 9)
        elif self.sync.active:
            self.sync.note("(not PMD-mapped)")
        self.sync.unlock(lk)
        return 0
