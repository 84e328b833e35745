"""Litmus files and the deterministic scheduler that explores them.

A litmus file (``scenarios/litmus/*.lit``) has a header (comments, with an
``# expect: DESIGN=PASS|VIOLATION ...`` line), an initial state written in
the scenario language after ``init:``, and one line per racing thread, each
a line of the scenario language (any operation: system calls, and the
model-only kernel paths ``try_to_unmap``, ``migrate``, ``referenced``,
``split_huge_pmd``)::

    init:
    P0 mmap @0 8 rw
    P0 write 0..0
    thread A: P0 fork P1
    thread B: P0 try_to_unmap 0

Each thread runs the very code ``rmaplab run`` runs for that line (the
machine's kernel paths and the design's hooks), in a greenlet; it stops at
each point the code announces through the machine's
:class:`~rmaplab.machine.sync.Sync` (locks, RCU, shared state), and the
scheduler (:class:`Execution`) decides who runs next.  The scheduler knows
nothing of what the paths do, nor of any design.

Exploration (:func:`explore`) is stateless DFS with replay: each execution
starts from the initial state and follows a schedule; at every step the
alternatives within the preemption bound are remembered and explored later.
A state already reached with no more preemptions spent is pruned (state
caching: the key digests each thread's stack of frames with their positions
and local variables, the locks held, the machine's state and the design's
:meth:`~rmaplab.designs.base.RmapDesign.state_key`).  ``random`` mode runs
PCT schedules (random priorities, ``depth`` priority change points).  Every
execution is replayable from its schedule (the thread letters, in order).

Properties, checked at every step and at the end of an execution: no lock
taken against the order of mm/rmap.c (trylocks excepted); no sleeping step
inside an RCU read-side section; no deadlock; no use of a freed anon_vma,
root VMA, context, page table or maple tree; the machine's own structures
consistent at the end; and each walker's property (:meth:`Run.check`):
``try_to_unmap`` that completed leaves no PTE mapping the folio, ``migrate``
leaves no migration entry behind, ``referenced`` visits every mapping that
existed throughout its walk.
"""

from __future__ import annotations

import hashlib
import random
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from greenlet import greenlet

from rmaplab.designs import make_design
from rmaplab.errors import ScenarioError, UsageError
from rmaplab.explore.locks import lock_name
from rmaplab.explore.world import ExploreSync, Model, Step, World
from rmaplab.machine.machine import Machine
from rmaplab.machine.pagetable import MigrationPte, PmdMap, SwapPte
from rmaplab.progress import Progress
from rmaplab.scenario.ast import Op, Scenario
from rmaplab.scenario.ops import NotApplicable, Run
from rmaplab.scenario.parse import ScenarioParser
from rmaplab.scenario.run import apply_op

#: a small litmus for the examples
SAMPLE = """\
init:
P0 mmap @0 8 rw
P0 write 0..0
thread A: P0 fork P1
thread B: P0 try_to_unmap 0
"""

_THREAD = re.compile(r"thread\s+([A-Z])\s*:\s*(.+)$")


@dataclass
class ThreadSpec:
    name: str
    op: Op

    @property
    def text(self) -> str:
        return self.op.text


@dataclass
class Litmus:
    path: str
    header: list[str]
    init: Scenario
    threads: list[ThreadSpec]

    def expectations(self) -> dict[str, str]:
        for h in self.header:
            m = re.match(r"expect:\s*(.*)", h)
            if m:
                out = {}
                for kv in m.group(1).split():
                    d, eq, v = kv.partition("=")
                    if not eq or v not in ("PASS", "VIOLATION"):
                        raise ScenarioError(self.path, 0, f"bad expect entry {kv!r}: use "
                                                          "DESIGN=PASS or DESIGN=VIOLATION")
                    out[d] = v
                return out
        return {}


def parse_litmus(text: str, path: str = "<litmus>") -> Litmus:
    """A litmus file: header, ``init:`` scenario lines, ``thread X: LINE``."""
    header: list[str] = []
    sp = ScenarioParser(path)
    threads: list[ThreadSpec] = []
    section = "header"
    for n, raw in enumerate(text.split("\n"), 1):
        body, _, comment = raw.partition("#")
        s = body.strip()
        if not s:
            if section == "header" and comment:
                header.append(comment.strip())
            continue
        if s == "init:":
            if section != "header":
                raise ScenarioError(path, n, "'init:' after the threads or twice")
            section = "init"
            continue
        m = _THREAD.match(s)
        if m:
            if section == "header":
                raise ScenarioError(path, n, "threads come after an 'init:' section")
            section = "threads"
            name = m.group(1)
            if any(t.name == name for t in threads):
                raise ScenarioError(path, n, f"thread {name} defined twice")
            # each thread starts from the initial state: parse it against a
            # copy of the processes init leaves
            live, ever, ops = set(sp.live), set(sp.ever), len(sp.sc.ops)
            op = sp.feed(n, m.group(2))
            sp.live, sp.ever = live, ever
            del sp.sc.ops[ops:]
            assert op is not None
            if op.proc is None:
                raise ScenarioError(path, n, f"thread {name}: '{op.text}' is not an operation "
                                             "of a process")
            threads.append(ThreadSpec(name, op))
            continue
        if section != "init":
            raise ScenarioError(path, n, "expected 'init:' or 'thread X: ...'")
        sp.feed(n, raw)
    if not threads:
        raise ScenarioError(path, 1, "a litmus file needs at least one 'thread X:' line")
    return Litmus(path, header, sp.sc, threads)


def load_litmus(path: str | Path) -> Litmus:
    p = str(path)
    try:
        text = Path(p).read_bytes().decode("utf-8")
    except OSError as e:
        raise ScenarioError(p, 0, f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        line = e.object[:e.start].count(b"\n") + 1
        raise ScenarioError(p, line, "not a text file (UTF-8 expected)") from None
    return parse_litmus(text, p)


# ------------------------------------------------------------------ executions
_FINISHED = object()


class Execution:
    """One execution of a litmus under one design, step by step: the initial
    state is built sequentially, then each thread's operation runs in a
    greenlet on the machine whose ``sync`` is the scheduler's."""

    def __init__(self, lit: Litmus, design: str, model: Model | None = None) -> None:
        m = Machine(make_design(design))
        for op in lit.init.ops:
            apply_op(m, op)
        self.m = m
        self.w = World(model or Model())
        self.lit = lit
        self.sched = greenlet.getcurrent()
        m.sync = ExploreSync(self.w, self.sched)
        self.runs: dict[str, Run] = {}
        self.threads: dict[str, greenlet] = {}
        self.pending: dict[str, Step] = {}
        self.returns: dict[str, int] = {}
        for ts in lit.threads:
            try:
                run = ts.op.action.start(m, ts.op.proc)  # type: ignore[arg-type]
            except NotApplicable as e:
                raise ScenarioError(lit.path, ts.op.line, f"thread {ts.name}: {e}") from None
            self.runs[ts.name] = run
            self.threads[ts.name] = greenlet(run.run)
        for name in self.threads:
            self._advance(name, None)
        self.schedule: list[str] = []
        self.current: str | None = None
        self.preemptions = 0

    def close(self) -> None:
        """Kill the threads still suspended (each unwinds without stopping)."""
        sync = self.m.sync
        if isinstance(sync, ExploreSync) and not sync.closing:
            sync.closing = True
            for g in self.threads.values():
                if g and not g.dead:
                    g.throw(greenlet.GreenletExit)

    def __del__(self) -> None:
        self.close()

    def _advance(self, t: str, value: Any) -> None:
        """Run thread ``t`` up to its next point."""
        self.w.current = t
        g = self.threads[t]
        out = g.switch(value) if g else g.switch()  # a greenlet not started is false
        if isinstance(out, Step):
            self.pending[t] = out
        else:
            self.pending.pop(t, None)
            self.returns[t] = int(out or 0)
            if out:
                self.w.trace.append([t, f"=> returns {out}"])

    def enabled(self) -> list[str]:
        out = []
        for t, s in sorted(self.pending.items()):
            if s.lock is not None and s.kind == "lock" and not self.w.locks.available(s.lock,
                                                                                      s.mode):
                continue
            out.append(t)
        return out

    def done(self) -> bool:
        return not self.pending

    def step(self, t: str) -> None:
        w = self.w
        s = self.pending[t]
        if self.current is not None and t != self.current and self.current in self.enabled():
            self.preemptions += 1
        self.current = t
        self.schedule.append(t)
        w.trace.append([t, s.label])
        value: Any = None
        lk: Any = s.lock
        if s.kind == "lock":
            why = w.model.lock_order and w.locks.order_violation(t, lk)
            if why:
                w.violate(t, f"lock order: {t} {why}")
            w.locks.acquire(t, lk, s.mode)
        elif s.kind == "trylock":
            value = w.locks.available(lk, s.mode)
            if value:
                w.locks.acquire(t, lk, s.mode)
            w.note(t, "-> ok" if value else "-> busy")
        elif s.kind == "unlock":
            w.locks.release(t, lk)
        elif s.kind == "rcu_lock":
            w.locks.rcu[t] = w.locks.rcu.get(t, 0) + 1
        elif s.kind == "rcu_unlock":
            w.locks.rcu[t] -= 1
        elif s.sleeps and w.locks.rcu.get(t, 0):
            w.violate(t, f"{t} may sleep inside an RCU read-side section ({s.label})")
        self._advance(t, value)

    def key(self) -> tuple[Any, ...]:
        """The state for the cache: every thread's stack (position and local
        variables of each frame), the locks, RCU nesting, the machine and
        the design.  Two schedules reaching the same key have the same
        futures."""
        return (tuple((t, _thread_state(g)) for t, g in sorted(self.threads.items())),
                self.w.locks.snapshot(), tuple(sorted(self.w.locks.rcu.items())),
                fingerprint(self), self.current)

    def end_violations(self) -> list[str]:
        """Properties that hold when every thread has finished."""
        out = [f"model error: {e}" for e in self.m.check_structures()]
        for ts in self.lit.threads:
            v = self.runs[ts.name].check(self.m, ts.name)
            if v:
                out.append(v)
        return out


def _thread_state(g: greenlet) -> tuple[Any, ...]:
    """Position and locals of every frame of a suspended greenlet."""
    if g.dead:
        return ("finished",)
    out: list[Any] = []
    fr: FrameType | None = g.gr_frame
    while fr is not None:
        out.append((fr.f_code.co_name, fr.f_lasti,
                    tuple(sorted((k, _canon(v)) for k, v in fr.f_locals.items()))))
        fr = fr.f_back
    return tuple(out)


_SKIP = frozenset({"Machine", "ExploreSync", "World", "Execution", "greenlet"})


def _canon(v: Any, depth: int = 0) -> Any:
    """A hashable stand-in for a thread-local value: model objects (those
    with an integer ``id``) by kind and id (their contents are in the
    fingerprint), the machine and the scheduler by kind, containers and
    other slotted records by their contents, functions by name."""
    if v is None or isinstance(v, (bool, int, str, float)):
        return v
    name = type(v).__name__
    if depth > 5 or name in _SKIP:
        return name
    if isinstance(v, (list, tuple)):
        return (name, tuple(_canon(x, depth + 1) for x in v))
    if isinstance(v, (set, frozenset)):
        return ("set", tuple(sorted(repr(_canon(x, depth + 1)) for x in v)))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((repr(_canon(k, depth + 1)), _canon(x, depth + 1))
                                     for k, x in v.items())))
    ident = getattr(v, "id", None)
    if isinstance(ident, int):
        return (name, ident)
    if callable(v):
        return (name, getattr(v, "__qualname__", ""))
    slots = getattr(type(v), "__slots__", None)
    if slots:
        return (name, tuple(_canon(getattr(v, s, None), depth + 1) for s in slots))
    d = getattr(v, "__dict__", None)
    if d is not None:
        return (name, tuple(sorted((k, _canon(x, depth + 1)) for k, x in d.items())))
    return name


def machine_state(m: Machine) -> tuple[Any, ...]:
    """The machine's state (stable ids): tasks, VMAs, page-table entries,
    folios and their rmap anchors, and the design's own state."""
    d = m.design
    anchor = d.anchor_name
    mms = []
    for mm in sorted(m.mms.values(), key=lambda x: x.id):
        vmas = tuple((v.id, v.start, v.end, v.pgoff, v.flags, anchor(v.anon_vma), v.detached)
                     for v in mm.vmas)
        ents: list[Any] = []
        for b, e in sorted(mm.pt.pmd.items()):
            if type(e) is dict:
                ents.append((b, tuple((v, type(x).__name__, _entry(x))
                                      for v, x in sorted(e.items(), key=lambda t: t[0]))))
            elif isinstance(e, PmdMap):
                ents.append((b, type(e).__name__, e.folio.id, e.write))
        mms.append((mm.id, mm.alive, vmas, tuple(ents)))
    folios = tuple((f.id, anchor(f.mapping), f.index, f.mapcount, f.pins, f.excl,
                    tuple(s.id for s in f.swap) if f.swap else None)
                   for f in m.anon_folios.values())
    return (tuple(mms), folios, tuple(sorted((t.name, t.mm.id) for t in m.tasks.values())),
            d.state_key())


def fingerprint(ex: Execution) -> tuple[Any, ...]:
    """:func:`machine_state` plus what the checks track: freed page tables
    and maple trees, and the threads that returned."""
    w = ex.w
    return (machine_state(ex.m), tuple(sorted(w.freed_tables)), tuple(sorted(w.mt_destroyed)),
            tuple(sorted(ex.returns.items())))


def _entry(x: Any) -> Any:
    if type(x) is SwapPte:
        return (x.slot.id, x.slot.count, x.exclusive)
    if type(x) is MigrationPte:
        return (x.folio.id, x.idx, x.write)
    return (x.folio.id, x.idx, x.write)


def digest(key: tuple[Any, ...]) -> bytes:
    """A fixed-size digest of a state key (16 bytes of BLAKE2b)."""
    return hashlib.blake2b(repr(key).encode(), digest_size=16).digest()


# ---------------------------------------------------------------- exploration
@dataclass
class Result:
    design: str
    verdict: str  # PASS | VIOLATION
    states: int
    executions: int
    violation: str = ""
    schedule: list[str] = field(default_factory=list)
    trace: list[list[str]] = field(default_factory=list)
    threads: list[ThreadSpec] = field(default_factory=list)
    complete: bool = True
    #: further kinds of violation (``explore(..., every=True)``)
    others: list[Result] = field(default_factory=list)


def _finish(ex: Execution) -> str | None:
    """Run ``ex`` to the end with the default policy; the first violation."""
    while True:
        if ex.w.violations:
            return ex.w.violations[0]
        if ex.done():
            v = ex.end_violations()
            return v[0] if v else None
        en = ex.enabled()
        if not en:
            return _deadlock(ex)
        ex.step(ex.current if ex.current in en else en[0])


def _deadlock(ex: Execution) -> str:
    """'deadlock: A waits for X (held by B), ...' (adds the blocked steps to
    the trace)."""
    parts = []
    for t, st_ in sorted(ex.pending.items()):
        lk = st_.lock
        holders = [h for h, ls in ex.w.locks.held.items() if lk in ls]
        ex.w.trace.append([t, f"{st_.label}: blocked"])
        parts.append(f"{t} waits for {lock_name(lk) if lk else '?'}"
                     + (f" (held by {', '.join(holders)})" if holders else ""))
    return "deadlock: " + ", ".join(parts)


def replay(lit: Litmus, design: str, schedule: list[str],
           model: Model | None = None) -> Execution:
    """A new execution that has followed ``schedule`` (thread names)."""
    ex = Execution(lit, design, model)
    for i, t in enumerate(schedule):
        en = ex.enabled()
        if t not in en:
            raise UsageError(f"schedule step {i + 1} ({t}) is not possible there: "
                             f"{'runnable: ' + ','.join(en) if en else 'no thread can run'}")
        ex.step(t)
    return ex


def run_schedule(lit: Litmus, design: str, schedule: list[str],
                 model: Model | None = None) -> Result:
    """Replay ``schedule``, then run on without preemption; the outcome.

    >>> lit = parse_litmus(SAMPLE)
    >>> run_schedule(lit, "classic", ["B"] * 3).verdict
    'PASS'
    """
    ex = replay(lit, design, schedule, model)
    what = _finish(ex)
    return Result(design, "VIOLATION" if what else "PASS", 0, 1, what or "", list(ex.schedule),
                  [list(e) for e in ex.w.trace], lit.threads)


def explore(lit: Litmus, design: str, bound: int | None = 3, max_executions: int = 200_000,
            cache: bool = True, model: Model | None = None, every: bool = False,
            check_digests: bool = False) -> Result:
    """Exhaustive DFS within ``bound`` preemptions (None: unbounded), with
    state caching (``cache=False`` explores every schedule: for testing the
    cache; ``check_digests`` keeps every full key to prove no two states
    share a digest).  Stops at the first violation, unless ``every``: then
    the search goes on and ``Result.others`` holds one counterexample per
    further kind of violation (numbers and names stripped, as in fuzzing).

    Cost: one replay per explored branch, each O(steps); the number of
    branches is bounded by states x threads with the cache."""
    if bound is None:
        bound = 1 << 30
    seen: dict[bytes, int] = {}
    full: dict[bytes, tuple[Any, ...]] = {}
    stack: list[list[str]] = [[]]
    executions = 0
    complete = True
    found: dict[str, Result] = {}
    while stack:
        if executions >= max_executions:
            complete = False
            break
        prefix = stack.pop()
        ex = replay(lit, design, prefix, model)
        executions += 1
        while True:
            what = None
            if ex.w.violations:
                what = ex.w.violations[0]
            elif ex.done():
                v = ex.end_violations()
                what = v[0] if v else None
            elif not ex.enabled():
                what = _deadlock(ex)
            if what is not None:
                r = _result(lit, design, ex, what, len(seen), executions)
                if not every:
                    return r
                found.setdefault(_kind(what), r)
                break
            if ex.done():
                break
            en = ex.enabled()
            key = ex.key()
            k = digest(key)
            if check_digests:
                old = full.setdefault(k, key)
                if old != key:
                    raise AssertionError(f"two states share the digest {k.hex()}")
            prev = seen.get(k)
            if cache and prev is not None and prev <= ex.preemptions:
                break
            if prev is None or ex.preemptions < prev:
                seen[k] = ex.preemptions
            default = ex.current if ex.current in en else en[0]
            for alt in en:
                if alt == default:
                    continue
                cost = 1 if (ex.current in en and alt != ex.current) else 0
                if ex.preemptions + cost <= bound:
                    stack.append(ex.schedule + [alt])
            ex.step(default)
    if found:
        first, *rest = found.values()
        first.states, first.executions, first.complete = len(seen), executions, complete
        first.others = rest
        return first
    return Result(design, "PASS", len(seen), executions, complete=complete,
                  threads=lit.threads)


def _kind(msg: str) -> str:
    """A violation without numbers or process names (the kind of failure)."""
    return re.sub(r"\b(P|A|B|C)\d*\b|\d+", "N", msg)


def explore_random(lit: Litmus, design: str, runs: int = 1000, depth: int = 3,
                   seed: int = 1, model: Model | None = None) -> Result:
    """PCT: random thread priorities, ``depth - 1`` random priority drops."""
    rng = random.Random(seed)
    states: set[bytes] = set()
    length = 200
    for n in range(runs):
        ex = Execution(lit, design, model)
        prio = {t.name: rng.random() + depth for t in lit.threads}
        changes = sorted(rng.randrange(length) for _ in range(depth - 1))
        i = 0
        while True:
            if ex.w.violations:
                return _result(lit, design, ex, ex.w.violations[0], len(states), n + 1)
            if ex.done():
                v = ex.end_violations()
                if v:
                    return _result(lit, design, ex, v[0], len(states), n + 1)
                break
            en = ex.enabled()
            if not en:
                return _result(lit, design, ex, _deadlock(ex), len(states), n + 1)
            states.add(digest(ex.key()))
            t = max(en, key=lambda x: prio[x])
            if changes and i == changes[0]:
                changes.pop(0)
                prio[t] = rng.random() * 0.5
                t = max(en, key=lambda x: prio[x])
            ex.step(t)
            i += 1
    return Result(design, "PASS", len(states), runs, threads=lit.threads)


def _result(lit: Litmus, design: str, ex: Execution, what: str, states: int,
            executions: int) -> Result:
    return Result(design, "VIOLATION", states, executions, what, list(ex.schedule),
                  [list(e) for e in ex.w.trace], lit.threads)


# ------------------------------------------------------------------ rendering
def render_trace(r: Result, width: int = 56) -> list[str]:
    """The interleaving as columns (one per thread), ending at the violation."""
    names = [t.name for t in r.threads]
    heads = [f"thread {t.name}: {t.text}" for t in r.threads]
    col = {n: i for i, n in enumerate(names)}
    out = [" | ".join(h[:width].ljust(width) for h in heads).rstrip(),
           "-+-".join("-" * width for _ in names)]
    for t, text in r.trace:
        if text.startswith("!!"):
            continue
        lines = textwrap.wrap(text, width) or [""]
        for ln in lines:
            cells = [""] * len(names)
            cells[col[t]] = ln
            out.append(" | ".join(c.ljust(width) for c in cells).rstrip())
    out.append(f"=> VIOLATION: {r.violation}" if r.verdict != "PASS" else "=> no violation")
    out.append(f"schedule: {','.join(r.schedule)}")
    return out


def describe(r: Result) -> list[str]:
    if r.verdict == "PASS":
        extent = "" if r.complete else " (execution budget exhausted: incomplete)"
        return [f"PASS: {r.design}: {r.states} states explored in {r.executions} executions"
                f"{extent}"]
    out = [f"VIOLATION: {r.design}: {r.violation} ({r.states} states explored in "
           f"{r.executions} executions)"] + render_trace(r)
    for o in r.others:
        out.append(f"also: {o.violation}")
        out.append(f"  schedule: {','.join(o.schedule)}")
    return out


# ------------------------------------------------------------------- reports
DEFAULT_DESIGNS = ("classic", "lazy", "lazy-noretry", "cowctx", "cowctx-poc-shortcut")


def explore_files(lits: list[Litmus], designs: list[str] | None, bound: int | None,
                  runs: int = 0, seed: int = 1, depth: int = 3,
                  every: bool = False, model: Model | None = None,
                  progress: Progress | None = None) -> tuple[list[str], bool]:
    """``rmaplab explore``: per file and design, the verdict and, for a
    violation, the trace.  ``designs`` None: those of the file's expect line.
    The flag is False when a violation was found."""
    out: list[str] = []
    clean = True
    for lit in lits:
        ds = designs or list(lit.expectations()) or list(DEFAULT_DESIGNS)
        if len(lits) > 1:
            out.append(f"== {lit.path}")
        for d in ds:
            make_design(d)
            if progress is not None:
                progress.step(note=f"{d} {lit.path}")
            r = (explore_random(lit, d, runs, depth, seed, model) if runs
                 else explore(lit, d, bound, every=every, model=model))
            clean &= r.verdict == "PASS"
            out.extend(describe(r))
            want = lit.expectations().get(d)
            if want and want != r.verdict:
                out.append(f"   (differs from the file's expectation: {want})")
    return out, clean


def table(lits: list[Litmus], designs: list[str], bound: int | None,
          model: Model | None = None, progress: Progress | None = None) -> tuple[list[str], bool]:
    """Markdown table litmus x design: verdict and states explored; then the
    violation found for each failing cell.  False if a verdict differs from
    the file's ``# expect:`` line.

    >>> lines, ok = table([parse_litmus(SAMPLE, "sample.lit")], ["classic"], 3)
    >>> lines[2].startswith("| sample | PASS (") and ok
    True
    """
    head = "| litmus | " + " | ".join(designs) + " |"
    out = [head, "|---" * (len(designs) + 1) + "|"]
    notes: list[str] = []
    ok = True
    for lit in lits:
        name = Path(lit.path).name.removesuffix(".lit")
        cells = []
        for d in designs:
            if progress is not None:
                progress.step(note=f"{d} {name}")
            r = explore(lit, d, bound, every=True, model=model)
            want = lit.expectations().get(d)
            mark = ""
            if want and want != r.verdict:
                ok = False
                mark = f" (expected {want})"
            if r.verdict == "PASS":
                cells.append(f"PASS ({r.states}){mark}")
            else:
                cells.append(f"**VIOLATION** ({r.states}){mark}")
                for x in [r, *r.others]:
                    notes.append(f"- {name} / {d}: {x.violation}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    extent = "unbounded" if bound is None else f"at most {bound} preemptions"
    out.append("")
    out.append(f"States explored in parentheses ({extent}); below, one line per kind of "
               "violation found.")
    if notes:
        out.append("")
        out.extend(notes)
    return out, ok
