"""The oracle: silent on the classic design, loud on broken designs."""

from __future__ import annotations

import pytest
from conftest import CORPUS

from rmaplab.check import check_scenario, check_with_exit
from rmaplab.checkrun import check_random
from rmaplab.designs.classic import ClassicDesign
from rmaplab.scenario.parse import parse_file, parse_text


class NoCloneOnSplit(ClassicDesign):
    """Broken on purpose: a split piece is not linked into the anon_vma tree."""

    def anon_vma_clone(self, dst, src, op):  # type: ignore[no-untyped-def]
        if op == "split":
            return
        super().anon_vma_clone(dst, src, op)


class ForkWithoutChain(ClassicDesign):
    """Broken on purpose: the child is not linked to the parent's anon_vmas."""

    def anon_vma_fork(self, child_vma, parent_vma):  # type: ignore[no-untyped-def]
        if parent_vma.anon_vma is None:
            child_vma.rmap = None
            return
        child_vma.anon_vma = None
        child_vma.rmap = None
        av = self.anon_vma_alloc()
        av.num_children += 1
        av.num_active_vmas += 1
        self.anon_vma_chain_link(child_vma, av)
        child_vma.anon_vma = av


class LeakOnUnlink(ClassicDesign):
    """Broken on purpose: a root whose tree empties is never freed."""

    def put_anon_vma(self, av):  # type: ignore[no-untyped-def]
        if av.root is av:
            return
        super().put_anon_vma(av)


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.scn")), ids=lambda p: p.stem)
def test_classic_has_no_violation_on_corpus(path) -> None:  # type: ignore[no-untyped-def]
    assert check_with_exit(parse_file(path), "classic") is None


def test_classic_has_no_violation_on_random_ops() -> None:
    lines, ok = check_random("classic", 3000, seed=9000, per=150)
    assert ok, "\n".join(lines[-30:])


SPLIT = """\
P0 mmap @0 12 rw
P0 write 0..11
P0 mprotect 4..7 r
"""


def test_oracle_catches_missing_clone_on_split() -> None:
    v = check_scenario(parse_text(SPLIT), NoCloneOnSplit())
    assert v is not None
    assert v.line == 3 and v.step == 3
    assert "misses its page 0," in v.what or "chain" in v.what


def test_oracle_catches_fork_that_forgets_ancestors() -> None:
    v = check_scenario(parse_text(SPLIT + "P0 fork P1\n"), ForkWithoutChain())
    assert v is not None and v.line == 4
    assert "misses its page 0, mapped by P1" in v.what


def test_oracle_catches_leaks_after_exit() -> None:
    sc = parse_text("P0 mmap @0 4\nP0 write 0..0\nP0 fork P1\nP0 exit\nP1 exit\n")
    v = check_with_exit(sc, LeakOnUnlink())
    assert v is not None
    assert "refcount" in v.what or "leaked" in v.what
