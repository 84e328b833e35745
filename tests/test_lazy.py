"""ANON_VMA_LAZY: correct on every scenario, and each flaw is caught."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CORPUS, ROOT

from rmaplab.check import check_scenario, check_with_exit
from rmaplab.checkrun import check_random
from rmaplab.designs import make_design
from rmaplab.designs.classic import AnonVma
from rmaplab.machine.constants import ARENA_VPN
from rmaplab.machine.machine import Machine
from rmaplab.report import expectations, verdict_table
from rmaplab.scenario.parse import parse_file, parse_text
from rmaplab.scenario.run import run_scenario

REVIEWER = sorted((ROOT / "scenarios" / "reviewer").glob("*.scn"))
FLAWED = ["lazy-single-address", "lazy-merge-any", "lazy-no-upgrade-on-mremap"]


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.scn")), ids=lambda p: p.stem)
def test_lazy_has_no_violation_on_corpus(path: Path) -> None:
    assert check_with_exit(parse_file(path), "lazy") is None


@pytest.mark.parametrize("design", ["lazy", "lazy:merge=same-root", "lazy:merge=upgrade"])
def test_lazy_policies_have_no_violation_on_random_ops(design: str) -> None:
    lines, ok = check_random(design, 2000, seed=7000, per=200)
    assert ok, "\n".join(lines[-30:])


def test_reviewer_verdicts_match_their_stated_expectations() -> None:
    scs = [parse_file(p) for p in REVIEWER]
    table, ok = verdict_table(scs, ["classic", "lazy"] + FLAWED)
    assert ok, "\n".join(table)
    assert len(REVIEWER) >= 17 + 6


@pytest.mark.parametrize("flawed", FLAWED)
def test_every_flawed_variant_is_caught_with_its_step(flawed: str) -> None:
    caught = []
    for p in REVIEWER:
        sc = parse_file(p)
        exp = expectations(sc)
        if exp and exp.get(flawed, "PASS").startswith("VIOLATION"):
            v = check_with_exit(sc, flawed)
            assert v is not None
            assert exp[flawed] == f"VIOLATION@{v.line}"
            assert v.step >= 1 and v.op
            caught.append(p.stem)
    assert caught, f"no reviewer scenario catches {flawed}"


def machine(design: str = "lazy") -> Machine:
    return Machine(make_design(design))


def test_states_through_fault_fork_and_nested_fork() -> None:
    """
        0      8          16     24
        [ A* ]            [ V* ]  (V mmapped by P1 after the fork)
    P0 lazy -> fork -> P0 regular (1 anon_vma, 1 chain), P1 tree_parent (+1 chain);
    P1's new V is tree_vma; P1 forks P2: P1 upgraded (anon_vma child of P0's).
    """
    m = machine()
    d = m.design
    m.mmap("P0", 0, 8)
    m.touch("P0", 0, 7, True)
    assert d.measure() == {"anon_vma": 0, "avc": 0}
    assert d.states() == {"lazy": 1}
    m.fork("P0", "P1")
    assert d.measure() == {"anon_vma": 1, "avc": 2}
    assert d.states() == {"regular": 1, "tree_parent": 1}
    m.mmap("P1", 16, 8)
    m.touch("P1", 16, 16, True)
    assert d.states()["tree_vma"] == 1
    m.fork("P1", "P2")
    # P1's inherited VMA is upgraded: a child anon_vma of P0's; its tree_vma
    # becomes regular with a new root anon_vma
    assert d.measure()["anon_vma"] == 3
    a = m.mm("P1").vmas.find(ARENA_VPN)
    assert a.design.own.parent is m.mm("P0").vmas.find(ARENA_VPN).design.own


def test_fork_fixes_every_shared_folio() -> None:
    m = machine()
    m.mmap("P0", 0, 8)
    m.touch("P0", 0, 7, True)
    m.fork("P0", "P1")
    for mm in (m.mm("P0"), m.mm("P1")):
        for _vpn, pte in mm.pt.present():
            assert isinstance(pte.folio.mapping, AnonVma)


def test_unmapped_root_is_retained_until_its_last_reference_goes() -> None:
    """
        0      8      16
        [ R* r | S*   ]  mprotect keeps R's struct for the lower part;
                         munmap R -> R retained; munmap S -> freed
    """
    m = machine()
    m.mmap("P0", 0, 16)
    m.touch("P0", 0, 15, True)
    m.mprotect("P0", 0, 7, 1)
    m.munmap("P0", 0, 7)
    assert m.design.retained_vmas() == 1
    assert m.design.measure_extra()["retained_vmas"] == 1
    m.munmap("P0", 8, 15)
    assert m.design.retained_vmas() == 0


@pytest.mark.parametrize("policy,vmas,anon_vmas", [
    ("keep-both", 1, 0), ("same-root", 2, 0), ("upgrade", 1, 1)])
def test_merge_policies(policy: str, vmas: int, anon_vmas: int) -> None:
    """
        0      8      16
        [ A*  ][ B* dontfork ]  two roots; dofork makes them mergeable
    """
    m = machine(f"lazy:merge={policy}")
    m.mmap("P0", 0, 8)
    m.mmap("P0", 8, 8)
    m.madvise("P0", 8, 15, "dontfork")
    m.touch("P0", 0, 15, True)
    m.madvise("P0", 8, 15, "dofork")
    assert len(m.maps("P0")) == vmas
    assert m.design.measure()["anon_vma"] == anon_vmas


def test_mremap_upgrades_and_fixes_moved_folios() -> None:
    m = machine()
    m.mmap("P0", 0, 8)
    m.touch("P0", 0, 7, True)
    m.mremap("P0", 0, 8, 8, new=100)
    for _vpn, pte in m.mm("P0").pt.present():
        assert isinstance(pte.folio.mapping, AnonVma)
    assert m.design.measure() == {"anon_vma": 1, "avc": 1}


def test_resize_in_place_changes_nothing() -> None:
    m = machine()
    m.mmap("P0", 0, 8)
    m.touch("P0", 0, 7, True)
    m.mremap("P0", 0, 8, 16)
    m.mremap("P0", 0, 16, 4)
    assert m.design.measure() == {"anon_vma": 0, "avc": 0}
    assert m.design.states() == {"lazy": 1}


def test_single_address_walk_misses_split_large_folio() -> None:
    sc = parse_text("P0 mmap @0 512\nP0 madvise 0..511 hugepage\nP0 write 0..0\n"
                    "P0 mprotect 256..511 r\n")
    v = check_scenario(sc, "lazy-single-address")
    assert v is not None and v.line == 4 and "misses its page 256" in v.what
    assert check_scenario(sc, "lazy") is None



def test_upgrade_covers_lineages_joined_by_a_keep_both_merge() -> None:
    """Found by `rmaplab fuzz` (seed 2052, shrunk): a THP of root A is
    mapped by A's three pieces; a keep-both merge then glues a VMA of root
    B to the first piece.  Fork upgrades the lineage of [0] (root B) first;
    an upgrade per root left A's other pieces to a second anon_vma, and
    the THP, pointed by try_dup at the first, was no longer found from
    1025 and 1026.

        0  1                1024  1025  1026            1536
        [B][ B + A (merged)  ][A r ][  A                 ]
                             <------ THP of root A ------>
    """
    sc = parse_text(
        "P0 mmap @1024 512 rw\n"
        "P0 madvise 0..1535 hugepage\n"
        "P0 write 1024..1024\n"
        "P0 mprotect 1025..1025 r\n"
        "P0 mmap @0 512 rw\n"
        "P0 write 0..0\n"
        "P0 mmap @512 512 rw\n"
        "P0 madvise 1..1023 hugepage\n"
        "maps P0\n"
        "P0 fork P1\n")
    assert run_scenario(sc, "lazy") == [  # madvise 0..1535: ENOMEM for the hole, as Linux
        "error 2: ENOMEM", "maps P0: 0..0:rw- 1..1024:rw- 1025..1025:r-- 1026..1535:rw-"]
    assert check_scenario(sc, "lazy") is None


def test_a_root_emptied_by_dontunmap_starts_a_new_lineage() -> None:
    """Found by the 1M-op fuzz campaign (seed 1729, shrunk and hand-minimised):
    P4's [7] is the root of its (upgraded) lineage; MREMAP_DONTUNMAP empties
    it (unlink_anon_vmas) and the move's target [9], the only holder of the
    lineage's anon_vma, is replaced by the next mremap, which frees it.  A
    new fault makes [7] a root again; the model kept the old lineage's
    anon_vma on it, so the next fork linked [7] to a freed anon_vma and the
    new folio was not found from [7].

        P4:  0  1 ... 6  7    8  9
             [a]         [r ]    [ ]   <- mremap 7 1 1 @9 dontunmap
                         [  ]    [a]   <- mremap 0 1 1 @9 (frees [9]'s anon_vma)
                         [r']          <- write 7, fork P6
    """
    sc = parse_text(
        "P0 mmap @0 8 rw\n"
        "P0 write 0..0\n"
        "P0 mremap 1 6 1 @0\n"
        "P0 fork P4\n"
        "P4 mremap 7 1 1 @9 dontunmap\n"
        "P4 mremap 0 1 1 @9\n"
        "P4 write 7..7\n"
        "P4 fork P6\n"
        "maps P6\n")
    assert run_scenario(sc, "lazy") == ["maps P6: 7..7:rw- 9..9:rw-"]
    assert check_scenario(sc, "lazy") is None
