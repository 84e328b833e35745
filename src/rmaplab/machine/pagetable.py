"""Ground-truth page tables of one mm.

Shaped like the kernel's: one entry per PMD (2 MiB, 512 pages), which is
either a PTE table (``dict`` vpn -> entry, possibly empty: an empty table
still exists until free_pgtables() or PT reclaim frees it, and its existence
stops a THP fault, see ``__handle_mm_fault``'s ``pmd_none`` test) or a huge
mapping (:class:`PmdMap`, or :class:`PmdMigration` while a THP migrates).

A PTE-table entry is a present :class:`Pte`, a swap entry
(:class:`SwapPte`) or a migration entry (:class:`MigrationPte`); only
present entries count in a folio's map count.

Complexity: lookup O(1); iterating the entries of a range of R pages holding
k entries costs O(R/512 + k) (tables are visited per PMD, entries per table
are visited by whichever of the table or the range is smaller).
"""

from __future__ import annotations

from collections.abc import Iterator

from rmaplab.machine.constants import HPAGE_PMD_NR
from rmaplab.machine.folio import Folio, SwapSlot

PMD_SHIFT_PAGES = 9  # log2(HPAGE_PMD_NR)


class Pte:
    """A present PTE: page ``idx`` of ``folio``, writable or not."""

    __slots__ = ("folio", "idx", "write")

    def __init__(self, folio: Folio, idx: int, write: bool) -> None:
        self.folio = folio
        self.idx = idx
        self.write = write

    def __repr__(self) -> str:
        return f"<pte {self.folio!r}[{self.idx}] {'w' if self.write else 'ro'}>"


class SwapPte:
    """A swap entry (``pte_to_swp_entry``) with the PTE's exclusive marker
    (``pte_swp_exclusive``: the page was PG_anon_exclusive when unmapped)."""

    __slots__ = ("slot", "exclusive")

    def __init__(self, slot: SwapSlot, exclusive: bool) -> None:
        self.slot = slot
        self.exclusive = exclusive

    def __repr__(self) -> str:
        return f"<swap entry {self.slot.id}{' excl' if self.exclusive else ''}>"


class MigrationPte:
    """A migration entry for page ``idx`` of ``folio`` (``make_*_migration_entry``)."""

    __slots__ = ("folio", "idx", "write")

    def __init__(self, folio: Folio, idx: int, write: bool) -> None:
        self.folio = folio
        self.idx = idx
        self.write = write

    def __repr__(self) -> str:
        return f"<migration entry of folio {self.folio.id}[{self.idx}]>"


class PmdMap:
    """A PMD mapping a whole PMD-sized folio (a THP or the huge zero page)."""

    __slots__ = ("folio", "write")

    def __init__(self, folio: Folio, write: bool) -> None:
        self.folio = folio
        self.write = write

    def __repr__(self) -> str:
        return f"<pmd {self.folio!r} {'w' if self.write else 'ro'}>"


class PmdMigration(PmdMap):
    """A PMD migration entry (``set_pmd_migration_entry``): not present."""

    def __repr__(self) -> str:
        return f"<pmd migration entry of folio {self.folio.id}>"


Entry = Pte | SwapPte | MigrationPte
Table = dict[int, Entry] | PmdMap


class PageTables:
    """pmd index (vpn >> 9) -> PTE table (dict) or :class:`PmdMap`."""

    __slots__ = ("pmd",)

    def __init__(self) -> None:
        self.pmd: dict[int, Table] = {}

    def entry(self, vpn: int) -> Entry | PmdMap | None:
        """What ``vpn`` holds: an entry, the PmdMap covering it, or None. O(1)."""
        e = self.pmd.get(vpn >> PMD_SHIFT_PAGES)
        if e is None:
            return None
        if type(e) is dict:
            return e.get(vpn)
        return e  # type: ignore[return-value]

    def tables_in(self, lo: int, hi: int) -> Iterator[tuple[int, Table]]:
        """(pmd index, entry) for PMDs overlapping pages [lo, hi), ascending."""
        pmd = self.pmd
        first, last = lo >> PMD_SHIFT_PAGES, (hi - 1) >> PMD_SHIFT_PAGES
        if last - first + 1 > len(pmd):
            for i in sorted(k for k in pmd if first <= k <= last):
                yield i, pmd[i]
        else:
            for i in range(first, last + 1):
                e = pmd.get(i)
                if e is not None:
                    yield i, e

    @staticmethod
    def ptes_in(table: dict[int, Entry], lo: int, hi: int) -> list[tuple[int, Entry]]:
        """Entries of one PTE table within pages [lo, hi), ascending vpn."""
        if hi - lo > len(table):
            return sorted(((v, p) for v, p in table.items() if lo <= v < hi),
                          key=lambda t: t[0])
        get = table.get
        return [(v, p) for v in range(lo, hi) if (p := get(v)) is not None]

    def present(self) -> Iterator[tuple[int, Pte | PmdMap]]:
        """Every present mapping: (vpn, Pte) or (first vpn of the PMD, PmdMap)."""
        for i, e in self.pmd.items():
            if type(e) is dict:
                for v, p in e.items():
                    if type(p) is Pte:
                        yield v, p
            elif type(e) is PmdMap:
                yield i * HPAGE_PMD_NR, e

    def entries(self) -> Iterator[tuple[int, Entry | PmdMap]]:
        """Every entry, present or not (PMD entries at their first vpn)."""
        for i, e in self.pmd.items():
            if type(e) is dict:
                yield from e.items()
            else:
                yield i * HPAGE_PMD_NR, e  # type: ignore[misc]
