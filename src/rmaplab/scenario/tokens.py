"""Tokens of one scenario line, checked with messages that say what to write.

Numbers are ASCII decimal digits only (no Unicode digits, no signs), at most
:data:`MAX_DIGITS` long; tokens are separated by spaces and tabs only (a
form feed or another control character is bad input, not a separator);
every token a message echoes is cut to :data:`ECHO` characters.
"""

from __future__ import annotations

import re

from rmaplab.errors import ScenarioError
from rmaplab.machine.constants import ARENA_PAGES

_NUM = re.compile(r"[0-9]+\Z")
_BAD_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u0085\u2028\u2029]")
_SEP = re.compile(r"[ \t]+")
MAX_DIGITS = 12
ECHO = 40


def echo(tok: str) -> str:
    """``repr`` of a token for a message, cut to a sane length.

    >>> echo("x" * 100)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'"
    """
    return repr(tok if len(tok) <= ECHO else tok[:ECHO] + "...")


def split_line(path: str, line: int, body: str) -> list[str]:
    """Tokens of a line body (comment already removed)."""
    m = _BAD_CHAR.search(body)
    if m:
        raise ScenarioError(path, line, f"unexpected control character {m.group()!r} "
                                        f"(separate tokens with spaces or tabs)")
    return [t for t in _SEP.split(body.strip(" \t\r")) if t]


class LineParser:
    """Checks the tokens of one line; every failure names the file and line."""

    def __init__(self, path: str, line: int, toks: list[str]) -> None:
        self.path = path
        self.line = line
        self.toks = toks

    def fail(self, msg: str) -> ScenarioError:
        return ScenarioError(self.path, self.line, msg)

    def number(self, tok: str, what: str, hint: str) -> int:
        if not _NUM.match(tok):
            raise self.fail(f"bad {what} {echo(tok)}: expected {hint}")
        if len(tok) > MAX_DIGITS:
            raise self.fail(f"bad {what} {echo(tok)}: too large")
        return int(tok)

    def page(self, tok: str, what: str) -> int:
        v = self.number(tok, what, "a page number (decimal)")
        if v >= ARENA_PAGES:
            raise self.fail(f"bad {what} {v}: the arena has pages 0..{ARENA_PAGES - 1}")
        return v

    def count(self, tok: str, what: str, minimum: int) -> int:
        v = self.number(tok, what, "a number of pages")
        if v < minimum:
            raise self.fail(f"bad {what} {v}: must be at least {minimum}")
        if v > ARENA_PAGES:
            raise self.fail(f"bad {what} {v}: larger than the arena ({ARENA_PAGES} pages)")
        return v

    def range_(self, tok: str) -> tuple[int, int]:
        if ".." not in tok:
            raise self.fail(f"bad range {echo(tok)}: expected A..B (inclusive page numbers)")
        a, _, b = tok.partition("..")
        first, last = self.page(a, "range start"), self.page(b, "range end")
        if first > last:
            raise self.fail(f"bad range {echo(tok)}: start is after end")
        return first, last

    def nargs(self, verb: str, lo: int, hi: int, usage: str) -> list[str]:
        args = self.toks[2:]
        if not lo <= len(args) <= hi:
            raise self.fail(f"{verb} takes {usage}")
        return args
