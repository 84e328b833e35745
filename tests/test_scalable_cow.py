"""The scalable-CoW series' vm_anon_pgoff (Vma.anon_pgoff) and the design
built on it.  Expected results first, each from the series' v5 rules:

    mmap @0 8        anon_pgoff = start            (file VMAs too)
    split at 4       both halves: anon_pgoff = their start
    fork             the child's VMAs: the parent's offsets
    mremap, faulted  the moved VMA keeps anon_pgoff (its folios keep their index)
    mremap, clean    reset to the new start
"""

from __future__ import annotations

from rmaplab.check import check_machine
from rmaplab.designs import make_design
from rmaplab.machine.constants import ARENA_VPN
from rmaplab.machine.machine import Machine
from rmaplab.scenario.parse import parse_text
from rmaplab.scenario.run import apply_op


def run(text: str, design: str = "scalable-cow") -> Machine:
    m = Machine(make_design(design))
    for op in parse_text(text).ops:
        apply_op(m, op)
        assert check_machine(m) == [] or design.endswith("no-merge-check")
    return m


def vmas(m: Machine, proc: str = "P0") -> list[tuple[int, int, int]]:
    return [(v.start - ARENA_VPN, v.end - ARENA_VPN, v.anon_pgoff - ARENA_VPN)
            for v in m.mm(proc).vmas]


def test_new_and_split_vmas_start_at_their_address() -> None:
    m = run("P0 mmap @0 8 rw file=F off=10\nP0 mmap @20 4 rw\nP0 mprotect 4..5 r\n")
    assert vmas(m) == [(0, 4, 0), (4, 6, 4), (6, 8, 6), (20, 24, 20)]


def test_fork_copies_and_mremap_keeps_a_faulted_vmas_offset() -> None:
    m = run("P0 mmap @0 8 rw\nP0 write 0..1\nP0 mmap @40 4 rw\n"
            "P0 mremap 0 8 8 @100\nP0 mremap 40 4 4 @200\nP0 fork P1\n")
    # the faulted VMA moved to 100 keeps anon pgoff 0; the clean one restarts at 200
    assert vmas(m) == [(100, 108, 0), (200, 204, 200)]
    assert vmas(m, "P1") == vmas(m)


def test_private_file_cow_needs_no_remap_entry() -> None:
    """The point of the series for the CoW context: a written MAP_PRIVATE
    file VMA at a non-zero file offset is tracked by cowctx (offset
    vm_start - vm_pgoff != 0) and not by scalable-cow (its anon pgoff is its
    start); both find every mapping."""
    text = "P0 mmap @0 8 rw file=F off=10\nP0 write 0..7\nP0 fork P1\nP1 write 3..3\n"
    for design, entries in (("cowctx", 2), ("scalable-cow", 0)):
        m = run(text, design)
        assert check_machine(m) == []
        got = sum(len(c.contrib) for c in m.design.contexts.values())  # type: ignore[attr-defined]
        assert got == entries, design
        remap = m.design.memory()["remap_tree"][1]
        assert (remap > 0) == (entries > 0)


def test_the_merge_check_is_needed() -> None:
    """S18: without v5's anon-pgoff merge check the moved folio is missed."""
    text = ("P0 mmap @0 4 rw file=F off=0\nP0 write 0..3\nP0 mmap @104 4 rw file=F off=4\n"
            "P0 write 104..104\nP0 mremap 0 4 4 @100\n")
    ok = run(text)
    assert [v[:2] for v in vmas(ok)] == [(100, 104), (104, 108)]  # refused
    bad = run(text, "scalable-cow-no-merge-check")
    assert [v[:2] for v in vmas(bad)] == [(100, 108)]  # merged
    errs = check_machine(bad)
    assert errs and "misses" in errs[0]
