"""The Android workload: smaps parsing, the generated scenario, its memory
tables (on a small hand-written smaps file; the real dumps are optional)."""

from __future__ import annotations

import pytest
from conftest import ROOT

from rmaplab.designs import make_design
from rmaplab.errors import ScenarioError
from rmaplab.machine.machine import Machine
from rmaplab.report import compare
from rmaplab.scenario.parse import parse_text
from rmaplab.scenario.run import run_scenario
from rmaplab.workload.android import AndroidParams, generate_android
from rmaplab.workload.smaps import parse_smaps, parse_smaps_text

MINI = ROOT / "tests" / "data" / "mini.smaps"


def test_parse_and_classify() -> None:
    vs = parse_smaps(MINI)
    assert len(vs) == 10
    kinds = [v.kind for v in vs]
    assert kinds == ["anon", "anon", "anon", "file", "file", "file", "file", "shared", "anon",
                     "special"]
    assert [v.inherited for v in vs][:7] == [True, False, False, False, False, True, False]
    assert [v.faulted for v in vs] == [True, False, True, False, False, True, True, False, True,
                                      False]


@pytest.mark.parametrize("text,msg", [
    ("VmFlags: rd\n", "smaps field before the first VMA line"),
    ("12c00000-12c00000 rw-p 00000000 00:00 0 x\n", "bad VMA range"),
    ("12c00000-12c01000 rw-p 00000000 00:00 0 x\nAnonymous: lots kB\n", "bad Anonymous value"),
    ("garbage\n", "smaps field before"),
    ("", "no VMA found"),
])
def test_bad_smaps_is_one_line_with_file_and_line(text: str, msg: str) -> None:
    with pytest.raises(ScenarioError) as ei:
        parse_smaps_text(text, "bad.smaps")
    assert str(ei.value).startswith("bad.smaps:") and msg in str(ei.value)


def test_generated_workload_keeps_every_vma() -> None:
    text = generate_android(AndroidParams(apps=3, fork_fraction=1.0, smaps=[MINI]))
    assert text == generate_android(AndroidParams(apps=3, fork_fraction=1.0, smaps=[MINI]))
    sc = parse_text(text)
    m = Machine(make_design("classic"))
    out = run_scenario(sc, machine=m)
    assert not [x for x in out if x.startswith("error")]
    # zygote P1 has the inherited VMAs; an app has every VMA but [vdso]
    assert len(m.mm("P1").vmas) == 2
    assert len(m.mm("P2").vmas) == 9
    # the helper (P3) does not get the MADV_DONTFORK VMA
    assert len(m.mm("P3").vmas) == 8


def test_compare_prints_cover_letter_layout() -> None:
    text = generate_android(AndroidParams(apps=2, fork_fraction=0.0, smaps=[MINI]))
    out = compare([parse_text(text, "mini")], ["classic", "lazy"])
    first = out.index("") + 1  # the memory table follows the heading line
    table = []
    for x in out[first:]:
        if not x.startswith("|"):
            break
        table.append(x)
    assert table[0] == "| Object | classic (KB) | lazy (KB) | Change |"
    rows = [r.split("|")[1].strip() for r in table[2:]]
    assert rows[:3] == ["vm_area_struct", "anon_vma_chain", "anon_vma"]
    assert rows[-1] == "total"
