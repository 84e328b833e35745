"""The CoW context: correct on every scenario; its PoC shortcut is caught;
contexts, remap entries and walk order behave as the PoC describes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CORPUS, ROOT

from rmaplab.check import check_with_exit
from rmaplab.checkrun import check_random
from rmaplab.designs import make_design
from rmaplab.designs.cowctx import CowContext, CowContextDesign
from rmaplab.machine.constants import ARENA_VPN
from rmaplab.machine.machine import Machine
from rmaplab.report import compare, measure_snapshots
from rmaplab.scenario.parse import parse_file, parse_text
from rmaplab.workload.forktree import forktree_scenario

SCENARIOS = sorted(CORPUS.glob("*.scn")) + sorted((ROOT / "scenarios" / "reviewer").glob("*.scn"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_cowctx_has_no_violation(path: Path) -> None:
    assert check_with_exit(parse_file(path), "cowctx") is None


def test_cowctx_has_no_violation_on_random_ops() -> None:
    lines, ok = check_random("cowctx", 3000, seed=8000, per=200)
    assert ok, "\n".join(lines[-30:])


def test_poc_shortcut_misses_a_moved_exclusive_folio() -> None:
    """PoC defect: an exclusive folio is only looked for at offset 0 of its
    own context; after mremap its VMA has a non-zero offset."""
    sc = parse_text("P0 mmap @0 4\nP0 write 0..0\nP0 mremap 0 4 4 @100\n")
    v = check_with_exit(sc, "cowctx-poc-shortcut")
    assert v is not None and v.line == 3 and "misses its page 0," in v.what
    assert check_with_exit(sc, "cowctx") is None


def machine() -> Machine:
    return Machine(make_design("cowctx"))


def test_context_outlives_its_mm_while_a_child_or_folio_holds_it() -> None:
    m = machine()
    d = m.design
    m.mmap("P0", 0, 4)
    m.touch("P0", 0, 3, True)
    m.fork("P0", "P1")
    p0 = m.mm("P0").design
    m.exit("P0")
    assert not p0.freed and p0.mm is None  # held by P1's context and 4 folios
    assert d.measure()["cow_context"] == 2
    m.exit("P1")
    assert p0.freed and d.measure()["cow_context"] == 0


def test_remap_entries_follow_moved_vmas() -> None:
    """
        0    4        100  104       200  204
        [A*]  ----->   [A']   ----->  [A'']  (DONTUNMAP keeps A' unfaulted)
    Expected: one entry for A' (offset 100), then one for A'' only.
    """
    m = machine()
    m.mmap("P0", 0, 4)
    m.touch("P0", 0, 0, True)
    c: CowContext = m.mm("P0").design
    assert c.contrib == {}
    m.mremap("P0", 0, 4, 4, new=100)
    assert sorted(o for *_r, o in c.contrib.values()) == [100]
    m.mremap("P0", 100, 4, 4, new=200, dontunmap=True)
    assert sorted(o for *_r, o in c.contrib.values()) == [200]
    m.fork("P0", "P1")
    assert sorted(o for *_r, o in m.mm("P1").design.contrib.values()) == [200]
    assert m.design.tree_bytes(c) == (1, 256)


def test_private_file_cow_is_tracked_at_its_offset() -> None:
    m = machine()
    m.mmap("P0", 0, 4, file="F", off=10)
    m.touch("P0", 0, 0, True)
    vma = m.mm("P0").vmas.find(ARENA_VPN)
    assert m.design.vma_offset(vma) == ARENA_VPN - 10  # type: ignore[attr-defined]
    assert vma in m.mm("P0").design.contrib


def test_traverse_contexts_order() -> None:
    """R with children [B (newest), A], A with child A1: R, B, A1, A."""
    d = CowContextDesign()
    r, a, b, a1 = (CowContext(i, None) for i in range(4))  # type: ignore[arg-type]
    r.children = [b, a]
    a.children = [a1]
    assert [c.id for c in d.descendants(r)] == [0, 2, 3, 1]


def test_walk_cost_grows_with_the_fork_tree() -> None:
    sc = parse_text(forktree_scenario(vmas=20, width=3, depth=2, cow=2, remap=2))
    (_l0, before), (_l1, after) = measure_snapshots(sc, "cowctx")
    assert before.walks["anchors"][1] == 1
    assert after.walks["anchors"][1] == 1 + 3 + 9  # every descendant context
    (_c0, cb), (_c1, ca) = measure_snapshots(sc, "classic")
    assert ca.walks["anchors"][1] == 1
    out = compare([sc], ["classic", "cowctx"])
    assert any(x.startswith("| per rmap walk") for x in out)
