"""A parsed scenario: its lines (:class:`Op`) and what it needs.

Each line's operation is an :class:`rmaplab.scenario.ops.Action`; the
operations themselves (grammar, meaning, encodings) are defined in
:mod:`rmaplab.scenario.ops`.  See ``docs/scenario-language.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rmaplab.scenario.ops import Action, Fork


@dataclass(frozen=True, slots=True)
class Op:
    """One scenario line: ``proc`` is the process name (``None`` for measure)."""

    line: int
    proc: str | None
    action: Action
    text: str = ""


@dataclass(slots=True)
class Scenario:
    """A parsed scenario: its operations and the files it maps."""

    path: str
    ops: list[Op] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    #: the file line of each header comment
    header_lines: list[int] = field(default_factory=list)

    def process_names(self) -> list[str]:
        names = ["P0"]
        for op in self.ops:
            if isinstance(op.action, Fork):
                names.append(op.action.child)
        return names
