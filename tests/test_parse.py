"""The scenario language: what parses, and one-line errors for what doesn't."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmaplab.errors import ScenarioError
from rmaplab.scenario.ops import PROT_EXEC, PROT_READ, PROT_WRITE, Madvise, Mmap, Mremap, Touch
from rmaplab.scenario.parse import parse_file, parse_text


def test_every_verb_parses() -> None:
    sc = parse_text(
        """# header comment
        P0 mmap @0 16 rw
        P0 mmap @32 8 r shared file=data off=3   # trailing comment
        P0 write 0..3
        P0 read 4..4
        P0 mprotect 0..3 rwx
        P0 munmap 8..9
        P0 mremap 0 4 8 @100 nomove
        P0 mremap 0 4 4 dontunmap
        P0 madvise 0..15 hugepage
        P0 fork P1
        P1 exit
        measure
        maps P0
        """, "t.scn")
    assert sc.header == ["header comment"]
    assert sc.files == ["data"]
    a = sc.ops[1].action
    assert a == Mmap(32, 8, PROT_READ, True, "data", 3)
    assert sc.ops[0].action == Mmap(0, 16, PROT_READ | PROT_WRITE)
    assert sc.ops[2].action == Touch(True, 0, 3)
    assert sc.ops[6].action == Mremap(0, 4, 8, 100, False, False)
    assert sc.ops[7].action == Mremap(0, 4, 4, None, True, True)
    assert sc.ops[8].action == Madvise(0, 15, "hugepage")
    assert sc.ops[4].action.prot == PROT_READ | PROT_WRITE | PROT_EXEC
    assert [op.line for op in sc.ops][:2] == [2, 3]


@pytest.mark.parametrize("text,message", [
    ("P0 frobnicate 1..2", "unknown op 'frobnicate'"),
    ("frobnicate", "unknown op 'frobnicate'"),
    ("P0 write 5..2", "bad range '5..2': start is after end"),
    ("P0 write 5", "bad range '5'"),
    ("P0 write x..2", "bad range start 'x'"),
    ("P0 mmap 0 4", "mmap needs @START"),
    ("P0 mmap @0 0", "bad NPAGES 0"),
    ("P0 mmap @0 4 rwz", "unknown mmap option 'rwz'"),
    ("P0 mmap @0 4 off=3", "off=PGOFF needs file=NAME"),
    ("P1 write 0..0", "undefined process P1"),
    ("P0 fork P1\nP0 fork P1", "fork to an existing name P1"),
    ("P0 fork P0", "fork to an existing name P0"),
    ("P0 fork P1\nP1 exit\nP1 read 0..0", "process P1 has exited"),
    ("maps P7", "undefined process P7"),
    ("measure now", "measure takes no arguments"),
    ("P0 madvise 0..1 sleep", "unknown madvise advice 'sleep'"),
    ("P0 mremap 0 4 0", "bad NEWLEN 0"),
    ("P0 mremap 0 4 4 @1 @2", "mremap option '@2' given twice"),
    ("P0 mremap 0 4 4 dontunmap dontunmap", "given twice"),
    ("P0 mprotect 0..1 q", "bad protection 'q'"),
    ("P0 write 0..99999999", "bad range end 99999999"),
    ("write 0..1", "write needs a process first"),
])
def test_bad_input_is_one_line_naming_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as ei:
        parse_text("# first line\n" + text + "\n", "bad.scn")
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith("bad.scn:")
    assert message in msg
    assert ei.value.line >= 2


def test_missing_file_is_a_scenario_error(tmp_path) -> None:
    with pytest.raises(ScenarioError) as ei:
        parse_file(tmp_path / "nope.scn")
    assert "nope.scn:0: cannot read" in str(ei.value)


def test_every_operation_is_documented() -> None:
    """Adding an operation means documenting it: every verb of the registry
    has its line in docs/scenario-language.md."""
    from rmaplab.scenario.ops import VERBS

    doc = (Path(__file__).parent.parent / "docs" / "scenario-language.md").read_text()
    for verb, cls in VERBS.items():
        needle = f"`{verb}" if cls.directive else f"`Pn {verb}"
        assert needle in doc, f"{verb} is not in docs/scenario-language.md"


@pytest.mark.parametrize("text,msg", [
    ("P0 mmap @0 ４ rw", "bad NPAGES"),
    ("P0 mmap @0 " + "9" * 5000, "too large"),
    ("P0 mmap @0 4\fP0 write 0..0", "unexpected control character"),
    ("P0 write 0..\u0663", "bad range end"),
])
def test_digits_and_separators_are_ascii(text: str, msg: str) -> None:
    from rmaplab.errors import ScenarioError
    from rmaplab.scenario.parse import parse_text

    with pytest.raises(ScenarioError, match=msg):
        parse_text(text, "x.scn")
