"""Parser of the scenario language.

Grammar (one operation per line; ``#`` starts a comment; blank lines are
ignored; page numbers are decimal 4 KiB arena pages, ranges ``A..B``
inclusive): ``Pn VERB ARGS`` for every verb of :data:`rmaplab.scenario.ops.VERBS`
(each operation's grammar is its class's ``usage``), ``measure`` and
``maps Pn``.  See ``docs/scenario-language.md``.

``P0`` exists when the scenario starts; every other process comes from a
``fork``.  Errors are reported as :class:`rmaplab.errors.ScenarioError`
naming the file and line, before anything runs.  Lines are separated by
``\\n`` only (a form feed or a Unicode line separator is bad input).

>>> s = parse_text("P0 mmap @0 4 rw\\nP0 write 0..3\\nmeasure\\n", "ex.scn")
>>> [type(op.action).__name__ for op in s.ops]
['Mmap', 'Touch', 'Measure']
"""

from __future__ import annotations

import re
from pathlib import Path

from rmaplab.errors import ScenarioError
from rmaplab.scenario.ast import Op, Scenario
from rmaplab.scenario.ops import PROC_VERBS, VERBS, Exit, Fork, Mmap, parse_prot
from rmaplab.scenario.tokens import LineParser, echo, split_line

PROC = re.compile(r"P[0-9]{1,6}\Z")
__all__ = ["ScenarioParser", "parse_text", "parse_file", "parse_prot", "PROC"]


class ScenarioParser:
    """Incremental parser: feed lines one by one (keeps which processes live).

    >>> sp = ScenarioParser("x.scn")
    >>> sp.feed(1, "P0 fork P1").action
    Fork(child='P1')
    >>> sp.feed(2, "P1 exit").proc
    'P1'
    """

    def __init__(self, path: str = "<string>") -> None:
        self.sc = Scenario(path)
        self.live = {"P0"}
        self.ever = {"P0"}
        self.in_header = True
        self._files: set[str] = set()

    def feed(self, lineno: int, raw: str) -> Op | None:
        """Parse one line; the Op, or None for a blank/comment line.  O(tokens)."""
        path, sc, live, ever = self.sc.path, self.sc, self.live, self.ever
        body, _, comment = raw.partition("#")
        toks = split_line(path, lineno, body)
        if not toks:
            if self.in_header and comment:
                sc.header.append(comment.strip())
                sc.header_lines.append(lineno)
            return None
        self.in_header = False
        p = LineParser(path, lineno, toks)
        first = toks[0]
        cls = VERBS.get(first)
        if cls is not None and cls.directive:
            proc = None
            if first == "maps":
                if len(toks) != 2:
                    raise p.fail("maps takes one process name, e.g. maps P0")
                proc = toks[1]
                _check_live(p, proc, live, ever)
            action = cls.parse(p, first)
        else:
            proc = first
            if not PROC.match(proc):
                if proc in VERBS:
                    raise p.fail(f"{proc} needs a process first, e.g. 'P0 {proc} ...'")
                raise p.fail(f"unknown op {echo(proc)}: expected 'Pn VERB ...', measure or maps")
            if len(toks) < 2:
                raise p.fail(f"{proc} needs a verb: one of {', '.join(PROC_VERBS)}")
            _check_live(p, proc, live, ever)
            cls = VERBS.get(toks[1])
            if cls is None or cls.directive:
                raise p.fail(f"unknown op {echo(toks[1])}: expected one of "
                             f"{', '.join(PROC_VERBS)}, measure, maps")
            action = cls.parse(p, toks[1])
            if isinstance(action, Fork):
                if action.child in ever:
                    raise p.fail(f"fork to an existing name {action.child}: "
                                 "each process name is used once")
                ever.add(action.child)
                live.add(action.child)
            elif isinstance(action, Exit):
                live.discard(proc)
            elif isinstance(action, Mmap) and action.file is not None:
                if action.file not in self._files:
                    self._files.add(action.file)
                    sc.files.append(action.file)
        op = Op(lineno, proc, action, " ".join(toks))
        sc.ops.append(op)
        return op


def parse_text(text: str, path: str = "<string>") -> Scenario:
    """Parse scenario text; raise :class:`ScenarioError` on the first bad line."""
    sp = ScenarioParser(path)
    for lineno, raw in enumerate(text.split("\n"), 1):
        sp.feed(lineno, raw)
    return sp.sc


def _check_live(p: LineParser, proc: str, live: set[str], ever: set[str]) -> None:
    if not PROC.match(proc):
        raise p.fail(f"bad process name {echo(proc)}: expected P<number>")
    if proc not in ever:
        raise p.fail(f"undefined process {proc}: create it with 'Px fork {proc}' first")
    if proc not in live:
        raise p.fail(f"process {proc} has exited")


def parse_file(path: str | Path, allow_empty: bool = False) -> Scenario:
    """Read and parse a scenario file (errors name the file and line); a
    file with no operation is bad input unless ``allow_empty`` or its header
    says ``expect: n/a`` (a placeholder for a concern not expressible yet)."""
    p = str(path)
    try:
        text = Path(p).read_bytes().decode("utf-8")
    except OSError as e:
        raise ScenarioError(p, 0, f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ScenarioError(p, text_line(e), "not a text file (UTF-8 expected)") from None
    sc = parse_text(text, p)
    if not sc.ops and not allow_empty and not any(h.startswith("expect: n/a")
                                                  for h in sc.header):
        raise ScenarioError(p, 0, "no operation in the file (an empty scenario)")
    return sc


def text_line(e: UnicodeDecodeError) -> int:
    """The line number of a decoding error (1-based)."""
    return e.object[:e.start].count(b"\n") + 1
