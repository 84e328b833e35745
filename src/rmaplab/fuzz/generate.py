"""A seeded generator of mostly-valid random scenarios.

Operations are drawn with weights over every verb of the scenario language;
ranges are aimed at the VMAs the process has (tracked by running the model
alongside), with THP-sized aligned ranges, private file mappings, fork trees
and exits.  The same seed gives the same scenario.

>>> text = generate_scenario(7, 20)
>>> text == generate_scenario(7, 20)
True
>>> from rmaplab.scenario.parse import parse_text
>>> len(parse_text(text).ops)
20
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rmaplab.designs import make_design
from rmaplab.machine.constants import HPAGE_PMD_NR
from rmaplab.machine.machine import Machine
from rmaplab.scenario.ops import VERBS, Exit, Fork
from rmaplab.scenario.parse import ScenarioParser
from rmaplab.scenario.run import apply_op


@dataclass(frozen=True)
class GenParams:
    """Shape of generated scenarios."""

    #: arena pages used: [0, window)
    window: int = 4 * HPAGE_PMD_NR
    max_procs: int = 5
    files: int = 2
    #: op -> weight
    weights: tuple[tuple[str, int], ...] = (
        ("mmap", 14), ("write", 20), ("read", 8), ("mprotect", 10), ("munmap", 6),
        ("mremap", 9), ("madvise", 9), ("fork", 5), ("exit", 3), ("measure", 6), ("maps", 4),
        # recipes: short sequences that reach deep states in few ops
        ("thp", 3), ("two_roots", 2), ("move_faulted", 2),
    )


#: bumped whenever a seed starts producing a different scenario (a
#: campaign's checkpoint records it, so that a resumed campaign is the same)
GENERATOR_VERSION = 2

class Gen:
    """The generator's state: the model it runs alongside, the live
    processes, and the helpers each operation's ``draw`` uses to aim at the
    VMAs a process has."""

    def __init__(self, seed: int, params: GenParams) -> None:
        self.r = random.Random(seed)
        self.p = params
        self.m = Machine(make_design("classic"))
        self.alive = ["P0"]
        self.next_proc = 1
        self.lines: list[str] = []

    def vmas(self, proc: str) -> list[tuple[int, int]]:
        return [(a, b) for a, b, _ in self.m.maps(proc)]

    def some_range(self, proc: str) -> tuple[int, int]:
        r, w = self.r, self.p.window
        vm = self.vmas(proc)
        if vm and r.random() < 0.85:
            a, b = r.choice(vm)
            if r.random() < 0.3:
                return a, b
            lo = r.randint(a, b)
            hi = r.randint(lo, min(b, lo + r.choice([0, 1, 3, 7, 31, 600])))
            if r.random() < 0.15:  # spill over the VMA's end
                hi = max(hi, min(w - 1, hi + r.randint(1, 8)))
            return lo, hi
        lo = r.randrange(w)
        return lo, min(w - 1, lo + r.choice([0, 1, 3, 15, 63]))

    def free_start(self, proc: str, n: int) -> int:
        r, w = self.r, self.p.window
        vm = self.vmas(proc)
        if vm and r.random() < 0.5:  # adjacent to an existing VMA
            a, b = r.choice(vm)
            s = b + 1 if r.random() < 0.6 else a - n
            if 0 <= s and s + n <= w:
                return s
        if r.random() < 0.3:
            return r.randrange(w // HPAGE_PMD_NR) * HPAGE_PMD_NR
        return r.randrange(max(1, w - n))

    def free_block(self, proc: str, n: int, align: int = 1) -> int | None:
        """A free range of ``n`` pages (aligned to ``align``) in the window."""
        taken = self.vmas(proc)
        for _ in range(8):
            s = self.r.randrange(max(1, (self.p.window - n) // align)) * align
            if all(b < s or a >= s + n for a, b in taken):
                return s
        return None

    def recipe(self, kind: str, proc: str) -> list[str] | None:
        """Multi-line recipes; None when there is no room for one."""
        r = self.r
        if kind == "thp":  # a PMD THP, then maybe a split of the VMA inside it
            s = self.free_block(proc, HPAGE_PMD_NR, HPAGE_PMD_NR)
            if s is None:
                return None
            k = 0 if r.random() < 0.5 else r.randrange(HPAGE_PMD_NR)
            out = [f"{proc} mmap @{s} {HPAGE_PMD_NR} rw",
                   f"{proc} madvise {s}..{s + HPAGE_PMD_NR - 1} hugepage",
                   f"{proc} write {s + k}..{s + k}"]
            if r.random() < 0.6:
                a = s + r.randrange(1, HPAGE_PMD_NR - 12)
                verb = r.choice(["mprotect {}..{} r", "munmap {}..{}", "madvise {}..{} dontfork"])
                out.append(f"{proc} " + verb.format(a, a + r.randrange(1, 10)))
            return out
        if kind == "two_roots":  # two VMAs faulted apart, then made mergeable
            n = r.choice([2, 4, 8])
            s = self.free_block(proc, 2 * n)
            if s is None:
                return None
            return [f"{proc} mmap @{s} {n} rw", f"{proc} mmap @{s + n} {n} rw",
                    f"{proc} madvise {s + n}..{s + 2 * n - 1} dontfork",
                    f"{proc} write {s}..{s + 2 * n - 1}",
                    f"{proc} madvise {s + n}..{s + 2 * n - 1} dofork"]
        if kind == "move_faulted":  # fault, then move (all or part)
            n = r.choice([1, 4, 16])
            s = self.free_block(proc, n)
            d = self.free_block(proc, 2 * n)
            if s is None or d is None or abs(s - d) < 2 * n:
                return None
            k = r.randrange(1, n + 1)
            return [f"{proc} mmap @{s} {n} rw", f"{proc} write {s}..{s + n - 1}",
                    f"{proc} mremap {s} {k} {k} @{d}"]
        return None

    def ops(self) -> list[str]:
        """The next line(s): one operation or a recipe."""
        r = self.r
        names, weights = zip(*self.p.weights)
        kind = r.choices(names, weights)[0]
        proc = r.choice(self.alive)
        if kind in ("thp", "two_roots", "move_faulted"):
            lines = self.recipe(kind, proc)
            return lines if lines else [self.op_line("write", proc)]
        return [self.op_line(kind, proc)]

    def op_line(self, kind: str, proc: str) -> str:
        if len(self.vmas(proc)) < 2 and self.r.random() < 0.7:
            kind = "mmap"  # give the process something to work on
        line = VERBS[kind].draw(self, proc, kind)
        assert line is not None, f"{kind} is not drawn"
        return line

    def run(self, nops: int) -> str:
        sp = ScenarioParser("<generated>")
        while len(self.lines) < nops:
            for line in self.ops():
                if len(self.lines) >= nops:
                    break
                op = sp.feed(len(self.lines) + 1, line)
                assert op is not None
                apply_op(self.m, op)
                a = op.action
                if isinstance(a, Fork):
                    self.alive.append(a.child)
                elif isinstance(a, Exit) and op.proc is not None:
                    self.alive.remove(op.proc)
                self.lines.append(line)
        return "\n".join(self.lines) + "\n"


def generate_scenario(seed: int, nops: int, params: GenParams | None = None) -> str:
    """Scenario text of ``nops`` random operations from ``seed``."""
    return Gen(seed, params or GenParams()).run(nops)
