"""The machine model: VMA layout, page tables and folios (design-independent
behaviour, exercised through the classic design).

Each test draws the address space it builds (pages relative to the arena;
``A``/``B``/``C`` name VMAs, ``*`` marks written pages) and states the
expected result before checking it, in the style of tools/testing/vma.
"""

from __future__ import annotations

import random

from rmaplab.check import check_machine
from rmaplab.designs import make_design
from rmaplab.machine.constants import ARENA_VPN, HPAGE_PMD_NR
from rmaplab.machine.flags import VM_ACCOUNT
from rmaplab.machine.machine import Machine
from rmaplab.machine.pagetable import PmdMap

R, RW, RWX = 1, 3, 7
THP = HPAGE_PMD_NR


def machine() -> Machine:
    return Machine(make_design("classic"))


def ok(m: Machine) -> None:
    assert check_machine(m) == []


def entry(m: Machine, proc: str, page: int):  # type: ignore[no-untyped-def]
    return m.mm(proc).pt.entry(ARENA_VPN + page)


def test_mmap_merges_left_right_and_both() -> None:
    """
        0   2 3   5 6   8          AA.BB.CC  (three separate VMAs)
        then fill the holes:       AAABBBCC  -> one VMA
    Expected: 3 VMAs, then 1 VMA 0..7.
    """
    m = machine()
    for s in (0, 3, 6):
        m.mmap("P0", s, 2)
    assert len(m.maps("P0")) == 3
    m.mmap("P0", 2, 1)  # merges A and B (both sides)
    m.mmap("P0", 5, 1)
    assert m.maps("P0") == [(0, 7, "rw-")]
    ok(m)


def test_faulted_neighbour_absorbs_new_range_but_fork_child_does_not() -> None:
    """
        0    4    8
        [A*  ][new]        P0: A faulted, new range merges into A (case 2)
        [A*  ][new]        P1 (fork child): new range stays separate
    Expected: P0 one VMA 0..7, P1 two VMAs.
    """
    m = machine()
    m.mmap("P0", 0, 4)
    m.touch("P0", 0, 0, True)
    m.fork("P0", "P1")
    m.mmap("P0", 4, 4)
    m.mmap("P1", 4, 4)
    assert m.maps("P0") == [(0, 7, "rw-")]
    assert m.maps("P1") == [(0, 3, "rw-"), (4, 7, "rw-")]
    ok(m)


def test_mprotect_edges_merge_into_neighbours() -> None:
    """
        0       8       16
        [ A rw ][ B r   ]    mprotect B's first half rw -> merges into A
        [  A rw    ][B r]
    Expected: 0..11:rw- 12..15:r--, then mprotect 12..15 rw -> 0..15.
    """
    m = machine()
    m.mmap("P0", 0, 8)
    m.mmap("P0", 8, 8, prot=R)
    assert m.mprotect("P0", 8, 11, RW) == 0
    assert m.maps("P0") == [(0, 11, "rw-"), (12, 15, "r--")]
    assert m.mprotect("P0", 12, 15, RW) == 0
    assert m.maps("P0") == [(0, 15, "rw-")]
    ok(m)


def test_vm_account_follows_mprotect_rules() -> None:
    """An unfaulted anonymous VMA made read-only loses VM_ACCOUNT, a faulted
    one keeps it (mprotect_fixup), so the pieces differ and cannot merge.
        0   4   8
        [ A*][ B ]    both made read-only, A faulted
    Expected: A keeps VM_ACCOUNT, B loses it; two VMAs.
    """
    m = machine()
    m.mmap("P0", 0, 8)
    m.touch("P0", 0, 0, True)
    m.mprotect("P0", 4, 7, R)  # split off B (unfaulted piece shares the anon_vma)
    vmas = list(m.mm("P0").vmas)
    assert all(v.flags & VM_ACCOUNT for v in vmas)  # B shares A's anon_vma: faulted
    m2 = machine()
    m2.mmap("P0", 0, 4)
    m2.mmap("P0", 8, 4)
    m2.touch("P0", 0, 0, True)
    m2.mprotect("P0", 0, 3, R)
    m2.mprotect("P0", 8, 11, R)
    a, b = list(m2.mm("P0").vmas)
    assert a.flags & VM_ACCOUNT and not b.flags & VM_ACCOUNT


def test_thp_write_then_partial_munmap_keeps_large_folio_mapped_by_ptes() -> None:
    """
        0                512
        [ A hugepage ****]        write -> one PMD-mapped THP
        [ A ][xx][   A   ]        munmap 100..109: PMD split, folio stays large
    Expected: PmdMap first; then PTEs of one 512-page folio with 502 pages
    mapped, and rmap_walk reaches both pieces.
    """
    m = machine()
    m.mmap("P0", 0, THP)
    m.madvise("P0", 0, THP - 1, "hugepage")
    m.touch("P0", 0, 0, True)
    e = entry(m, "P0", 5)
    assert isinstance(e, PmdMap) and e.folio.nr == THP
    folio = e.folio
    m.munmap("P0", 100, 109)
    assert m.maps("P0") == [(0, 99, "rw-"), (110, 511, "rw-")]
    assert entry(m, "P0", 5).folio is folio
    assert entry(m, "P0", 105) is None
    assert folio.mapcount == THP - 10
    ok(m)


def test_thp_fault_needs_an_empty_pmd() -> None:
    """A page table in the 2 MiB block (from an earlier small read) stops a
    THP fault (pmd_none); MADV_DONTNEED of the whole block frees the empty
    table (CONFIG_PT_RECLAIM) and THP faults work again.
        0                512
        [ read 7 | hugepage later ]
    Expected: small zero page, then small folio; after DONTNEED, a THP.
    """
    m = machine()
    m.mmap("P0", 0, THP)
    m.touch("P0", 7, 7, False)
    m.madvise("P0", 0, THP - 1, "hugepage")
    m.touch("P0", 0, 0, True)
    assert entry(m, "P0", 0).folio.nr == 1
    m.madvise("P0", 0, THP - 1, "dontneed")
    assert (ARENA_VPN >> 9) not in m.mm("P0").pt.pmd
    m.touch("P0", 0, 0, True)
    assert isinstance(entry(m, "P0", 0), PmdMap)
    ok(m)


def test_huge_zero_page_read_then_write() -> None:
    """A read in a hugepage block maps the huge zero page (and prepares an
    anon_vma); a write replaces it by a THP (do_huge_zero_wp_pmd).
    Expected: anon_vma=1 after the read; a 512-page anon folio after the write."""
    m = machine()
    m.mmap("P0", 0, THP)
    m.madvise("P0", 0, THP - 1, "hugepage")
    m.touch("P0", 3, 3, False)
    assert entry(m, "P0", 3).folio is m.huge_zero_page
    assert m.design.measure() == {"anon_vma": 1, "avc": 1}
    m.touch("P0", 3, 3, True)
    e = entry(m, "P0", 3)
    assert isinstance(e, PmdMap) and e.folio.anon
    ok(m)


def test_mremap_moves_pmd_whole_when_aligned_and_splits_otherwise() -> None:
    """
        0      512          1024   1536         2049
        [A THP]      ->      [A THP]      or    [ A (PTEs) ]
    Expected: aligned destination keeps a PMD; unaligned gets PTEs of the
    same folio; rmap walks stay correct.
    """
    m = machine()
    m.mmap("P0", 0, THP)
    m.madvise("P0", 0, THP - 1, "hugepage")
    m.touch("P0", 0, 0, True)
    folio = entry(m, "P0", 0).folio
    assert m.mremap("P0", 0, THP, THP, new=1024) == 0
    assert isinstance(entry(m, "P0", 1024), PmdMap)
    assert m.mremap("P0", 1024, THP, THP, new=2049) == 0
    e = entry(m, "P0", 2049 + 7)
    assert not isinstance(e, PmdMap) and e.folio is folio and e.idx == 7
    ok(m)


def test_private_file_cow_folio_index_is_the_file_offset() -> None:
    """
        file F:  off 10
        0       4
        [ F@10  ]      write page 2 -> anonymous copy with index 12
    Expected: folio.index == 12, the page cache keeps the file folio.
    """
    m = machine()
    m.mmap("P0", 0, 4, prot=RW, file="F", off=10)
    m.touch("P0", 2, 2, False)
    assert not entry(m, "P0", 2).folio.anon
    m.touch("P0", 2, 2, True)
    f = entry(m, "P0", 2).folio
    assert f.anon and f.index == 12
    assert 12 in m.files["F"].cache
    ok(m)


def test_private_file_write_beyond_eof_prepares_then_faults() -> None:
    """do_cow_fault prepares the anon_vma before __do_fault returns SIGBUS.
        file F: 4 pages; VMA grown in place to 8 pages by mremap
    Expected: EFAULT at page 4, yet one anon_vma exists."""
    m = machine()
    m.mmap("P0", 0, 4, prot=RW, file="F")
    assert m.mremap("P0", 0, 4, 8) == 0
    assert m.touch("P0", 4, 4, True) == -14
    assert m.design.measure() == {"anon_vma": 1, "avc": 1}


def test_cow_reuse_moves_folio_to_the_writers_anon_vma() -> None:
    """After fork and the child's exit, the parent's write reuses the folio
    and folio_move_anon_rmap points it at the parent's own anon_vma."""
    m = machine()
    m.mmap("P0", 0, 1)
    m.touch("P0", 0, 0, True)
    m.fork("P0", "P1")
    m.touch("P1", 0, 0, True)  # child copies
    m.exit("P1")
    f = entry(m, "P0", 0).folio
    m.touch("P0", 0, 0, True)
    assert entry(m, "P0", 0).folio is f
    assert f.mapping is m.mm("P0").vmas.find(ARENA_VPN).anon_vma
    ok(m)


def test_vma_tree_weighted_random_stress() -> None:
    """sortedcontainers style: random operations, all invariants after each."""
    rng = random.Random(42)
    m = machine()
    for _ in range(2000):
        op = rng.choices(["mmap", "munmap", "mprotect", "write"], [4, 2, 3, 3])[0]
        a = rng.randrange(300)
        b = min(299, a + rng.randrange(20))
        if op == "mmap":
            m.mmap("P0", a, b - a + 1, prot=rng.choice([R, RW, RWX]))
        elif op == "munmap":
            m.munmap("P0", a, b)
        elif op == "mprotect":
            m.mprotect("P0", a, b, rng.choice([R, RW, RWX]))
        else:
            m.touch("P0", a, b, True)
        m.mm("P0").vmas.check()
    ok(m)
    # brute-force cross-check of find()
    vmas = list(m.mm("P0").vmas)
    for page in range(300):
        vpn = ARENA_VPN + page
        want = next((v for v in vmas if v.start <= vpn < v.end), None)
        assert m.mm("P0").vmas.find(vpn) is want
