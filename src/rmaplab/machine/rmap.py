"""mm/rmap.c and mm/migrate.c: the rmap walkers and the ground truth.

The walkers are the kernel's users of ``rmap_walk`` (``try_to_unmap`` for
reclaim, ``try_to_migrate`` + ``remove_migration_ptes`` for migration,
``folio_referenced`` for LRU aging).  Each hands the design's ``rmap_walk``
(:meth:`rmaplab.machine.design.Design.rmap_walk`) an ``rmap_one`` that
does what ``page_vma_mapped_walk`` + the walker's ``*_one`` function do
under the PTE lock.  The design decides which VMAs to try and with which
locks; the machine decides what is found there.

The ground truth (:meth:`RmapOps.anon_runs`) is read from the page tables
alone, for the oracle (:mod:`rmaplab.check`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from rmaplab.machine.constants import HPAGE_PMD_NR, short_page
from rmaplab.machine.design import (
    CHECK,
    MIGRATE,
    REFERENCED,
    REMOVE_MIGRATION,
    UNMAP,
    RmapWalkControl,
)
from rmaplab.machine.pagetable import MigrationPte, PmdMap, PmdMigration, Pte, SwapPte

if TYPE_CHECKING:
    from rmaplab.machine.design import Design
    from rmaplab.machine.folio import Folio, SwapSlot
    from rmaplab.machine.mm import Mm
    from rmaplab.machine.sync import Sync
    from rmaplab.machine.vma import Vma


class WalkResult:
    """What a walker reports: ``status`` is 'done' or 'contended' (a trylock
    failed and the walk gave up, as reclaim does); ``visited`` the (mm id,
    vpn) the walk found mapping the folio; ``migrated_to`` the new folio."""

    __slots__ = ("status", "visited", "migrated_to")

    def __init__(self) -> None:
        self.status = "done"
        self.visited: set[tuple[int, int]] = set()
        self.migrated_to: Folio | None = None


class RmapOps:
    """mm/rmap.c, as a mixin of :class:`rmaplab.machine.machine.Machine`."""

    if TYPE_CHECKING:
        design: Design
        sync: Sync
        mms: dict[int, Mm]

        def split_pmd(self, mm: Mm, b: int) -> None: ...
        def new_folio(self, nr: int, anon: bool) -> Folio: ...
        def folio_put(self, folio: Folio) -> None: ...
        def add_to_swap(self, folio: Folio) -> list[SwapSlot]: ...
        def delete_from_swap_cache(self, folio: Folio) -> None: ...

    # ------------------------------------------------ page_vma_mapped_walk
    def folio_mapped_in(self, vma: Vma, folio: Folio, base: int) -> bool:
        """``page_vma_mapped_walk()``: does ``vma`` map some page i of
        ``folio`` at ``base + i``?"""
        pt = vma.mm.pt
        for i in range(max(0, vma.start - base), min(folio.nr, vma.end - base)):
            e = pt.entry(base + i)
            if isinstance(e, (Pte, PmdMap)) and e.folio is folio and (
                    type(e) is PmdMap or e.idx == i):  # type: ignore[union-attr]
                return True
        return False

    def _rmap_one(self, folio: Folio, vma: Vma, base: int, rwc: RmapWalkControl,
                  res: WalkResult, dst: Folio | None = None) -> bool:
        """``page_vma_mapped_walk`` + the walker's ``*_one`` for one VMA,
        under the PTE lock of the folio's first page in it."""
        sync = self.sync
        mm = vma.mm
        lo, hi = max(vma.start, base), min(vma.end, base + folio.nr)
        if sync.active:
            sync.point(f"look up {mm.name} VMA {vma.id} [{short_page(vma.start)}.."
                       f"{short_page(vma.end - 1)}] for {short_page(base)}")
        if lo >= hi:
            if sync.active:
                sync.note("-> does not cover the folio")
            return True
        b = lo >> 9
        sync.use_pgtable(mm, b)
        lk = ("ptl", mm.name, b)
        sync.lock(lk)
        label = f"rmap_one ({rwc.kind}) {mm.name} {short_page(lo)}..{short_page(hi - 1)}"
        if rwc.kind in (UNMAP, MIGRATE):
            sync.may_sleep(label)
        else:
            sync.point(label)
        kind = rwc.kind
        found = False
        pmd = mm.pt.pmd
        e = pmd.get(b)
        if type(e) is PmdMap and e.folio is folio:
            found = True
            if kind == UNMAP:  # TTU_SPLIT_HUGE_PMD
                self.split_pmd(mm, b)
                e = pmd[b]
            elif kind == MIGRATE:  # set_pmd_migration_entry()
                pmd[b] = PmdMigration(folio, e.write)
                folio.unmap(mm)
                e = None
            else:
                res.visited.update((mm.id, lo + i) for i in range(hi - lo))
                e = None
        elif type(e) is PmdMigration and kind == REMOVE_MIGRATION and e.folio is folio:
            assert dst is not None
            pmd[b] = PmdMap(dst, e.write)
            dst.map(mm)
            found = True
            e = None
        if type(e) is dict:
            for vpn in range(lo, hi):
                x = e.get(vpn)
                if x is None:
                    continue
                tx = type(x)
                if kind == REMOVE_MIGRATION:
                    if tx is MigrationPte and x.folio is folio:  # type: ignore[union-attr]
                        assert dst is not None
                        e[vpn] = Pte(dst, x.idx, x.write)  # type: ignore[union-attr]
                        dst.map(mm)
                        found = True
                    continue
                if tx is not Pte or x.folio is not folio or x.idx != vpn - base:  # type: ignore
                    continue
                found = True
                idx = x.idx  # type: ignore[union-attr]
                if kind == UNMAP:
                    assert folio.swap is not None, "try_to_unmap of a folio not in the swap cache"
                    slot = folio.swap[idx]
                    slot.count += 1  # swap_duplicate()
                    bit = 1 << idx
                    e[vpn] = SwapPte(slot, bool(folio.excl & bit))
                    folio.excl &= ~bit  # folio_try_share_anon_rmap_pte()
                    folio.unmap(mm)
                elif kind == MIGRATE:
                    e[vpn] = MigrationPte(folio, idx, x.write)  # type: ignore[union-attr]
                    folio.unmap(mm)
                else:
                    res.visited.add((mm.id, vpn))
        if found:
            rwc.found += 1
        if sync.active:
            sync.note("-> found" if found else "-> nothing there")
        sync.unlock(lk)
        return True

    # ---------------------------------------------------------------- walkers
    def rmap_candidates(self, folio: Folio) -> list[tuple[Vma, int]]:
        """Every (vma, base) the design's walk offers for ``folio`` (the
        oracle's view; ``found`` is what page_vma_mapped_walk would see)."""
        out: list[tuple[Vma, int]] = []
        mapped_in = self.folio_mapped_in

        def one(f: Folio, vma: Vma, base: int) -> bool:
            out.append((vma, base))
            if mapped_in(vma, f, base):
                rwc.found += 1
            return True

        if not self.design.uses_found:
            def one(f: Folio, vma: Vma, base: int) -> bool:  # noqa: F811
                out.append((vma, base))
                return True

        rwc = RmapWalkControl(CHECK, one, anon_lock=True)
        self.design.rmap_walk(folio, rwc)
        return out

    def try_to_unmap(self, folio: Folio) -> WalkResult:
        """``shrink_folio_list``'s part for one isolated anonymous folio (the
        caller holds a pin): folio lock, ``add_to_swap``, ``try_to_unmap``
        (each mapping becomes a swap entry), and, if no mapping is left,
        the folio leaves the swap cache (``pageout`` to a synchronous device,
        then ``__remove_mapping``)."""
        res = WalkResult()
        sync = self.sync
        lk = ("folio", folio.id)
        sync.lock(lk)
        if folio.anon and folio.swap is None:
            self.add_to_swap(folio)
        sync.point("folio_mapped?")
        if folio.mapcount:
            rwc = RmapWalkControl(UNMAP, lambda f, v, b: self._rmap_one(f, v, b, rwc, res))
            self.design.rmap_walk(folio, rwc)
            res.status = "contended" if rwc.contended else "done"
        elif sync.active:
            sync.note("-> no: nothing to walk")
        if not folio.mapcount and folio.swap is not None:
            self.delete_from_swap_cache(folio)
        sync.unlock(lk)
        return res

    def folio_referenced(self, folio: Folio) -> WalkResult:
        """``folio_referenced()`` with the folio locked: the mappings found
        (``visited``); a contended walk gives up."""
        res = WalkResult()
        sync = self.sync
        lk = ("folio", folio.id)
        sync.lock(lk)
        sync.point("folio_mapped?")
        if folio.mapcount:
            rwc = RmapWalkControl(REFERENCED,
                                  lambda f, v, b: self._rmap_one(f, v, b, rwc, res),
                                  try_lock=True)
            self.design.rmap_walk(folio, rwc)
            res.status = "contended" if rwc.contended else "done"
        elif sync.active:
            sync.note("-> no: nothing to walk")
        sync.unlock(lk)
        return res

    def migrate_folio(self, folio: Folio) -> WalkResult:
        """``migrate_folio_unmap`` -> ``try_to_migrate`` (every mapping becomes
        a migration entry, with the rmap anchor pinned by
        ``folio_get_anon_vma``); ``move_to_new_folio`` (the new folio takes
        the old one's mapping, index and PG_anon_exclusive bits); then
        ``remove_migration_ptes`` walks the new folio and replaces every
        migration entry of the old one.  If the old folio is still mapped
        the migration fails and the entries are restored to it."""
        res = WalkResult()
        sync = self.sync
        design = self.design
        lk = ("folio", folio.id)
        sync.lock(lk)
        sync.point("folio_get_anon_vma: folio_mapped?")
        if not folio.mapcount:
            if sync.active:
                sync.note("-> no: move without unmapping, nothing to restore")
            sync.unlock(lk)
            return res
        handle = design.folio_get_anon_vma(folio)
        if sync.active:
            sync.note(f"-> hold {design.anchor_name(handle)}")
        rwc = RmapWalkControl(MIGRATE, lambda f, v, b: self._rmap_one(f, v, b, rwc, res))
        design.rmap_walk(folio, rwc)
        sync.point("folio_mapped(old)?")
        if folio.mapcount:
            if sync.active:
                sync.note("-> still mapped: migration fails, restore")
            new = folio
        else:
            sync.point("move_to_new_folio: copy data, new folio takes mapping and index")
            new = self.new_folio(folio.nr, anon=True)
            new.excl = folio.excl
            design.folio_migrate_mapping(folio, new)
        res.migrated_to = new
        rwc2 = RmapWalkControl(REMOVE_MIGRATION,
                               lambda f, v, b: self._rmap_one(folio, v, b, rwc2, res, new),
                               anon_lock=False)
        design.rmap_walk(new, rwc2)
        res.status = "contended" if (rwc.contended or rwc2.contended) else "done"
        design.folio_put_anon_vma(handle)
        sync.unlock(lk)
        if new is not folio:
            self.folio_put(new)  # nothing restored in it: freed
        return res

    # ------------------------------------------------------------ ground truth
    def anon_runs(self) -> Iterator[tuple[Mm, int, Folio, int, int]]:
        """Mappings of anonymous folios as runs: (mm, vpn, folio, first page,
        pages) - a PMD mapping is one run of 512 pages, a PTE one page."""
        for mm in self.mms.values():
            for vpn, e in mm.pt.present():
                f = e.folio
                if not f.anon:
                    continue
                if type(e) is PmdMap:
                    yield mm, vpn, f, 0, f.nr
                else:
                    yield mm, vpn, f, e.idx, 1  # type: ignore[union-attr]

    def anon_mappings(self) -> Iterator[tuple[Mm, int, Folio, int]]:
        """Every mapped page of every anonymous folio: (mm, vpn, folio, page)."""
        for mm, vpn, f, i, n in self.anon_runs():
            for k in range(n):
                yield mm, vpn + k, f, i + k

    def mappings_of(self, folio: Folio) -> set[tuple[int, int]]:
        """Present PTEs (mm id, vpn) mapping ``folio`` in every live mm."""
        out: set[tuple[int, int]] = set()
        for mm in self.mms.values():
            for vpn, e in mm.pt.present():
                if e.folio is folio:
                    if type(e) is PmdMap:
                        out.update((mm.id, vpn + i) for i in range(HPAGE_PMD_NR))
                    else:
                        out.add((mm.id, vpn))
        return out

    def migration_entries(self, folio: Folio) -> list[tuple[Mm, int]]:
        """Migration entries of ``folio`` left in any live page table."""
        out: list[tuple[Mm, int]] = []
        for mm in self.mms.values():
            for vpn, e in mm.pt.entries():
                if type(e) in (MigrationPte, PmdMigration) and e.folio is folio:  # type: ignore
                    out.append((mm, vpn))
        return out
