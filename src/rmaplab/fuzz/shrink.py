"""Shrinking a failing scenario to a minimal one that fails the same way.

:func:`shrink_lines` is delta debugging (Zeller's ddmin) over scenario lines,
followed by passes that drop processes (a ``fork`` line with every line of
the child and its descendants), narrow ranges and lengths, and renumber
pages so that the scenario starts at page 0.  The predicate decides what
"fails the same way" means; lines that no longer parse simply make it false.

>>> keep = lambda ls: "P0 write 5..9" in ls
>>> shrink_lines(["P0 mmap @0 16", "measure", "P0 write 5..9", "maps P0"], keep)
['P0 write 5..9']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from rmaplab.errors import ScenarioError
from rmaplab.scenario.ops import VERBS
from rmaplab.scenario.parse import parse_text

Predicate = Callable[[list[str]], bool]


def _valid(lines: Sequence[str]) -> bool:
    try:
        parse_text("\n".join(lines) + "\n")
    except ScenarioError:
        return False
    return True


def ddmin(lines: list[str], test: Predicate) -> list[str]:
    """Smallest sublist (1-minimal) for which ``test`` still holds."""
    n = 2
    while len(lines) >= 2:
        chunk = max(1, len(lines) // n)
        reduced = False
        for i in range(0, len(lines), chunk):
            cand = lines[:i] + lines[i + chunk:]
            if cand and test(cand):
                lines = cand
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(lines), n * 2)
    return lines


def _drop_processes(lines: list[str], test: Predicate) -> list[str]:
    changed = True
    while changed:
        changed = False
        for i, ln in enumerate(lines):
            m = re.match(r"(P\d+) fork (P\d+)", ln)
            if not m:
                continue
            gone = {m.group(2)}
            for later in lines[i + 1:]:
                f = re.match(r"(P\d+) fork (P\d+)", later)
                if f and f.group(1) in gone:
                    gone.add(f.group(2))
            cand = [x for j, x in enumerate(lines) if j != i
                    and not any(x.startswith(g + " ") or x == f"maps {g}" for g in gone)]
            if test(cand):
                lines = cand
                changed = True
                break
    return lines


_NUM = re.compile(r"(?<!\w)(@?)(\d+)(?=\.\.|\b)")


def _shrink_numbers(lines: list[str], test: Predicate) -> list[str]:
    """Try smaller values for every number on every line (ranges, lengths)."""
    for i in range(len(lines)):
        progress = True
        while progress:
            progress = False
            nums = list(_NUM.finditer(lines[i]))
            for m in nums:
                v = int(m.group(2))
                for cand_v in sorted({0, 1, v // 2, v - 1} - {v}):
                    if cand_v < 0 or cand_v >= v:
                        continue
                    s = lines[i]
                    cand_line = s[:m.start(2)] + str(cand_v) + s[m.end(2):]
                    cand = lines[:i] + [cand_line] + lines[i + 1:]
                    if test(cand):
                        lines = cand
                        progress = True
                        break
                if progress:
                    break
    return lines


def _page_fields(toks: list[str]) -> list[int]:
    """Indexes of the tokens of one line that hold page numbers (each
    operation says which: ``Action.page_tokens``)."""
    if len(toks) < 2:
        return []
    cls = VERBS.get(toks[1])
    return cls.page_tokens(toks) if cls is not None and not cls.directive else []


def _renumber(lines: list[str], test: Predicate) -> list[str]:
    """Shift every page number down by the smallest one (keeping 2 MiB
    alignment), so the scenario starts near page 0."""
    def pages_of(tok: str) -> list[int]:
        return [int(x) for x in re.findall(r"\d+", tok)]

    allp = [v for ln in lines for i in _page_fields(ln.split()) for v in pages_of(ln.split()[i])]
    if not allp:
        return lines
    shift = (min(allp) // 512) * 512
    if not shift:
        return lines
    out = []
    for ln in lines:
        toks = ln.split()
        for i in _page_fields(toks):
            toks[i] = re.sub(r"\d+", lambda m: str(int(m.group(0)) - shift), toks[i])
        out.append(" ".join(toks))
    return out if test(out) else lines


def shrink_lines(lines: Sequence[str], failing: Predicate) -> list[str]:
    """A minimal list of scenario lines on which ``failing`` still holds."""
    def test(ls: list[str]) -> bool:
        return _valid(ls) and failing(ls)

    cur = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    assert test(cur), "the scenario does not fail to begin with"
    while True:
        before = list(cur)
        cur = ddmin(cur, test)
        cur = _drop_processes(cur, test)
        cur = _shrink_numbers(cur, test)
        cur = _renumber(cur, test)
        if cur == before:
            return cur
