"""Litmus files and the deterministic scheduler that explores them.

A litmus file (``scenarios/litmus/*.lit``) has a header (comments, with an
``# expect: DESIGN=PASS|VIOLATION ...`` line), an initial state written in
the scenario language after ``init:``, and one line per racing thread::

    init:
    P0 mmap @0 8 rw
    P0 write 0..0
    thread A: fork P0 P1
    thread B: try_to_unmap P0 0

Thread statements: ``fork P C``, ``exit P``, ``mremap P OLD LEN @NEW``,
``split P PAGE``, ``munmap P A..B`` (whole VMAs), ``mprotect P A..B PROT``
(exactly one VMA, so that it merges with a neighbour), ``thp_split P PAGE``,
``try_to_unmap P PAGE``, ``migrate P PAGE``, ``referenced P PAGE`` (the walkers act on the folio
that PAGE of P maps in the initial state).

Exploration (:func:`explore`) is stateless DFS with replay: each execution
starts from the initial state and follows a schedule; at every step the
alternatives within the preemption bound are remembered and explored later.
A state already reached with no more preemptions spent is pruned (state
caching: the key is each thread's history of steps and values read, the
locks held and a fingerprint of the machine).  ``random`` mode runs PCT
schedules (random priorities, ``depth`` priority change points).  Every
execution is replayable from its schedule (the thread letters, in order).

Properties, checked at every step and at the end of an execution: no lock
taken against the order of mm/rmap.c (trylocks excepted); no sleeping step
inside an RCU read-side section; no deadlock; no use of a freed anon_vma,
root VMA, context or page table; ``try_to_unmap`` that completed leaves no
PTE mapping the folio; ``migrate`` leaves no migration entry behind;
``referenced`` visits every mapping that existed throughout its walk.
"""

from __future__ import annotations

import random
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmaplab.designs import make_design
from rmaplab.designs.classic import AnonVma
from rmaplab.designs.cowctx import CowContextDesign
from rmaplab.designs.lazy import LazyDesign, st
from rmaplab.errors import ScenarioError, UsageError
from rmaplab.explore import paths
from rmaplab.explore.locks import lock_name
from rmaplab.explore.world import Model, Step, World
from rmaplab.machine.constants import ARENA_VPN
from rmaplab.machine.machine import Machine
from rmaplab.machine.pagetable import PmdMap
from rmaplab.scenario.ast import Scenario
from rmaplab.scenario.parse import ScenarioParser, parse_prot
from rmaplab.scenario.run import apply_op

#: a small litmus for the examples
SAMPLE = """\
init:
P0 mmap @0 8 rw
P0 write 0..0
thread A: fork P0 P1
thread B: try_to_unmap P0 0
"""

_THREAD = re.compile(r"thread\s+([A-Z])\s*:\s*(.+)$")


@dataclass
class ThreadSpec:
    name: str
    verb: str
    args: list[str]
    text: str
    line: int


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
                return dict(kv.split("=", 1) for kv in m.group(1).split())
        return {}


VERBS = {"fork": 2, "exit": 1, "mremap": 4, "split": 2, "munmap": 2, "mprotect": 3,
         "thp_split": 2,
         "try_to_unmap": 2, "migrate": 2, "referenced": 2}


def parse_litmus(text: str, path: str = "<litmus>") -> Litmus:
    header: list[str] = []
    sp = ScenarioParser(path)
    threads: list[ThreadSpec] = []
    section = "header"
    for n, raw in enumerate(text.splitlines(), 1):
        body, _, comment = raw.partition("#")
        s = body.strip()
        if not s:
            if section == "header" and comment:
                header.append(comment.strip())
            continue
        if s == "init:":
            section = "init"
            continue
        m = _THREAD.match(s)
        if m:
            section = "threads"
            name, stmt = m.group(1), m.group(2).split()
            if any(t.name == name for t in threads):
                raise ScenarioError(path, n, f"thread {name} defined twice")
            if not stmt or stmt[0] not in VERBS:
                raise ScenarioError(path, n, f"unknown thread statement {stmt[:1]}: expected one "
                                             f"of {', '.join(VERBS)}")
            if len(stmt) - 1 != VERBS[stmt[0]]:
                raise ScenarioError(path, n, f"{stmt[0]} takes {VERBS[stmt[0]]} arguments")
            threads.append(ThreadSpec(name, stmt[0], stmt[1:], m.group(2).strip(), n))
            continue
        if section != "init":
            raise ScenarioError(path, n, "expected 'init:' or 'thread X: ...'")
        sp.feed(n, raw)
    if len(threads) < 1:
        raise ScenarioError(path, 1, "a litmus file needs at least one 'thread X:' line")
    return Litmus(path, header, sp.sc, threads)


def load_litmus(path: str | Path) -> Litmus:
    p = str(path)
    try:
        return parse_litmus(Path(p).read_text(), p)
    except OSError as e:
        raise ScenarioError(p, 0, f"cannot read: {e.strerror or e}") from None


# ------------------------------------------------------------------ executions
def _folio_at(w: World, proc: str, page_no: int, path: str, line: int) -> Any:
    e = w.m.mm(proc).pt.entry(ARENA_VPN + page_no)
    if e is None or e.folio.zero or not e.folio.anon:
        raise ScenarioError(path, line, f"{proc} maps no anonymous folio at page {page_no} "
                                        "after init")
    return e.folio


def _page(arg: str, path: str, line: int) -> int:
    if not arg.isdigit():
        raise ScenarioError(path, line, f"bad page {arg!r}")
    return int(arg)


class Execution:
    """One execution of a litmus under one design, step by step."""

    def __init__(self, lit: Litmus, design: str, model: Model | None = None) -> None:
        m = Machine(make_design(design))
        for op in lit.init.ops:
            apply_op(m, op)
        self.w = World(m, model or Model())
        self.lit = lit
        self.threads: dict[str, Any] = {}
        self.pending: dict[str, Step] = {}
        self.history: dict[str, list[str]] = {}
        self.folios: dict[str, Any] = {}
        for ts in lit.threads:
            self.threads[ts.name] = self._make(ts)
            self.history[ts.name] = []
        for name in self.threads:
            self._advance(name, None)
        self.schedule: list[str] = []
        self.current: str | None = None
        self.preemptions = 0

    def _make(self, ts: ThreadSpec):  # type: ignore[no-untyped-def]
        """The thread's generator, after checking that its statement makes
        sense in the initial state (one clear line if not)."""
        w, a, p, ln = self.w, ts.args, self.lit.path, ts.line

        def fail(msg: str) -> ScenarioError:
            return ScenarioError(p, ln, f"thread {ts.name}: {msg}")

        if a and a[0] not in w.m.procs:
            raise fail(f"no process {a[0]} after init")
        mm = w.m.mm(a[0])

        def vma_at(pg: int) -> Any:
            v = mm.vmas.find(ARENA_VPN + pg)
            if v is None:
                raise fail(f"{a[0]} maps nothing at page {pg}")
            return v

        def whole(rng: str) -> tuple[int, int, list[Any]]:
            lo_s, _, hi_s = rng.partition("..")
            lo, hi = _page(lo_s, p, ln), _page(hi_s or lo_s, p, ln)
            vs = mm.vmas.overlapping(ARENA_VPN + lo, ARENA_VPN + hi + 1)
            if not vs or any(v.start < ARENA_VPN + lo or v.end > ARENA_VPN + hi + 1 for v in vs):
                raise fail(f"{rng} must cover whole VMAs of {a[0]}")
            return lo, hi, vs

        if ts.verb == "fork":
            if a[1] in w.m.procs:
                raise fail(f"{a[1]} already exists")
            return paths.fork_path(w, ts.name, a[0], a[1])
        if ts.verb == "exit":
            return paths.exit_path(w, ts.name, a[0])
        if ts.verb == "mremap":
            if not a[3].startswith("@"):
                raise fail("mremap needs @NEW")
            old, n, new = _page(a[1], p, ln), _page(a[2], p, ln), _page(a[3][1:], p, ln)
            v = vma_at(old)
            if old + n > v.end - ARENA_VPN or n < 1:
                raise fail(f"pages {old}..{old + n - 1} are not inside one VMA")
            if mm.vmas.overlapping(ARENA_VPN + new, ARENA_VPN + new + n):
                raise fail(f"the destination {new}..{new + n - 1} is not free")
            return paths.mremap_path(w, ts.name, a[0], old, n, new)
        if ts.verb == "split":
            at = _page(a[1], p, ln)
            if vma_at(at).start == ARENA_VPN + at:
                raise fail(f"page {at} is already the start of a VMA: nothing to split")
            return paths.split_path(w, ts.name, a[0], at)
        if ts.verb == "munmap":
            lo, hi, _ = whole(a[1])
            return paths.munmap_path(w, ts.name, a[0], lo, hi)
        if ts.verb == "mprotect":
            lo, hi, vs = whole(a[1])
            prot = parse_prot(a[2])
            if prot is None:
                raise fail(f"bad protection {a[2]!r}")
            if len(vs) != 1:
                raise fail(f"{a[1]} must be exactly one VMA (a pure merge, no split)")
            return paths.merge_path(w, ts.name, a[0], lo, hi, prot)
        if ts.verb == "thp_split":
            return paths.thp_split_path(w, ts.name, a[0], _page(a[1], p, ln))
        folio = _folio_at(w, a[0], _page(a[1], p, ln), p, ln)
        folio.pins += 1  # the caller's reference (isolated from the LRU)
        self.folios[ts.name] = folio
        fn: Callable[..., Any] = {"try_to_unmap": paths.try_to_unmap, "migrate": paths.migrate,
                                  "referenced": paths.folio_referenced}[ts.verb]
        return fn(w, ts.name, folio)

    def _advance(self, t: str, value: Any) -> None:
        try:
            self.pending[t] = self.threads[t].send(value)
        except StopIteration:
            self.pending.pop(t, None)

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
        lk: Any = s.lock  # set for lock, trylock and unlock steps
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
        self.history[t].append(w.trace[-1][1] if w.trace[-1][0] == t else s.label)

    def key(self) -> tuple[Any, ...]:
        """The state for the cache: every thread's position and local
        variables (through its chain of ``yield from``), the locks, RCU
        nesting and the shared state.  Two schedules reaching the same key
        have the same futures."""
        return (tuple((t, _thread_state(g)) for t, g in sorted(self.threads.items())),
                self.w.locks.snapshot(), tuple(sorted(self.w.locks.rcu.items())),
                fingerprint(self.w), self.current)

    def end_violations(self) -> list[str]:
        """Properties that hold when every thread has finished."""
        w = self.w
        out: list[str] = paths.map_count_errors(w)  # the model's own consistency
        for ts in self.lit.threads:
            t = ts.name
            folio = self.folios.get(t)
            if folio is None or w.results.get(t) != "success":
                continue
            if ts.verb == "try_to_unmap":
                left = paths.mappings_of(w, folio)
                for mm_id, vpn in sorted(left)[:1]:
                    name = next(mm.name for mm in w.all_mms() if mm.id == mm_id)
                    out.append(f"try_to_unmap ({t}) completed but {name} still maps folio "
                               f"{folio.id} at {paths.page(vpn)} (missed mapping)")
            elif ts.verb == "migrate":
                for mm, vpn in paths.migration_entries(w, folio)[:1]:
                    out.append(f"migration ({t}) finished but {mm.name} keeps a migration entry "
                               f"at {paths.page(vpn)} (stale: the process would wait forever)")
            elif ts.verb == "referenced":
                start = w.named.get(f"{t}:start", set())
                end = w.named.get(f"{t}:end", set())
                missed = (start & end) - w.visited.get(t, set())
                for mm_id, vpn in sorted(missed)[:1]:
                    name = next(mm.name for mm in w.all_mms() if mm.id == mm_id)
                    out.append(f"folio_referenced ({t}) missed {name} {paths.page(vpn)}, "
                               "mapped throughout its walk")
        return out


def _thread_state(gen: Any) -> tuple[Any, ...]:
    """Position and locals of a generator and of those it delegates to."""
    out: list[Any] = []
    while gen is not None:
        fr = getattr(gen, "gi_frame", None)
        if fr is None:
            out.append("finished")
            break
        out.append((fr.f_code.co_name, fr.f_lasti,
                     tuple(sorted((k, _canon(v)) for k, v in fr.f_locals.items()))))
        gen = getattr(gen, "gi_yieldfrom", None)
    return tuple(out)


def _canon(v: Any, depth: int = 0) -> Any:
    """A hashable stand-in for a thread-local value: model objects by their
    kind and id (their contents are in the fingerprint), containers by their
    elements, everything else by value or by type."""
    if v is None or isinstance(v, (bool, int, str, float)):
        return v
    if depth > 4:
        return type(v).__name__
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, tuple(_canon(x, depth + 1) for x in v))
    if isinstance(v, (set, frozenset)):
        return ("set", tuple(sorted(repr(_canon(x, depth + 1)) for x in v)))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((repr(_canon(k, depth + 1)), _canon(x, depth + 1))
                                     for k, x in v.items())))
    ident = getattr(v, "id", None)
    if isinstance(ident, int):
        return (type(v).__name__, ident)
    name = getattr(v, "name", None)  # an Mm: name is its identity
    if isinstance(name, str):
        return (type(v).__name__, name)
    return type(v).__name__


def fingerprint(w: World) -> tuple[Any, ...]:
    """Shared state (stable ids): VMAs, page-table entries, folio anchors."""
    mms = []
    for mm in sorted(w.all_mms(), key=lambda m: m.id):
        vmas = tuple((v.id, v.start, v.end, v.pgoff, _anchor(v.anon_vma), v.detached)
                     for v in mm.vmas)
        ents: list[Any] = []
        for b, e in sorted(mm.pt.pmd.items()):
            if isinstance(e, PmdMap):
                ents.append((b, "pmd", e.folio.id))
            else:
                ents.append((b, tuple((v, type(x).__name__, x.folio.id, x.idx)
                                      for v, x in sorted(e.items()))))
        mms.append((mm.id, mm.alive, vmas, tuple(ents)))
    folios = tuple((f.id, _anchor(f.mapping), f.mapcount, f.pins)
                   for f in w.m.anon_folios.values())
    return (tuple(mms), folios, tuple(sorted(w.freed_tables)), _design_state(w),
            tuple(sorted((k, repr(v)) for k, v in w.results.items())),
            tuple(sorted((k, tuple(sorted(v))) for k, v in w.visited.items())),
            tuple(sorted(w.named.get("mt_destroyed", ()))))


def _design_state(w: World) -> tuple[Any, ...]:
    """What a design keeps beside the VMAs: reference counts, trees, retained
    roots, contexts (so that two states merged by the cache really are one)."""
    d = w.d
    avs: dict[int, Any] = {}
    for mm in w.all_mms():
        for v in mm.vmas:
            if isinstance(v.anon_vma, AnonVma):
                avs[v.anon_vma.id] = v.anon_vma
    for f in w.m.anon_folios.values():
        if isinstance(f.mapping, AnonVma):
            avs[f.mapping.id] = f.mapping
    for av in list(avs.values()):
        avs[av.root.id] = av.root
    out: list[Any] = [tuple((i, a.refcount, a.freed, a.root.id, a.num_children,
                             tuple(sorted(x.vma.id for x in a.avcs)))
                            for i, a in sorted(avs.items()))]
    if isinstance(d, LazyDesign):
        out.append(tuple(sorted(v.id for v in d.retained)))
        out.append(tuple(sorted(d.freed_roots)))
        out.append(tuple(sorted((v.id, st(v).pins, tuple(sorted(x.id for x in st(v).members)))
                                for mm in w.all_mms() for v in mm.vmas if v.design is not None)))
    if isinstance(d, CowContextDesign):
        out.append(tuple((c.id, c.refcnt, c.freed, c.parent.id if c.parent else None,
                          tuple(k.id for k in c.children))
                         for c in sorted(d.contexts.values(), key=lambda c: c.id)))
    return tuple(out)


def _anchor(x: Any) -> Any:
    if x is None:
        return None
    return (type(x).__name__, getattr(x, "id", 0))


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
    r = Result(design, "VIOLATION" if what else "PASS", 0, 1, what or "", list(ex.schedule),
               [list(e) for e in ex.w.trace], lit.threads)
    return r


def explore(lit: Litmus, design: str, bound: int | None = 3, max_executions: int = 200_000,
            cache: bool = True, model: Model | None = None, every: bool = False) -> Result:
    """Exhaustive DFS within ``bound`` preemptions (None: unbounded), with
    state caching (``cache=False`` explores every schedule: for testing the
    cache).  Stops at the first violation, unless ``every``: then the search
    goes on and ``Result.others`` holds one counterexample per further kind
    of violation (numbers and names stripped, as in fuzzing).

    Cost: one replay per explored branch, each O(steps); the number of
    branches is bounded by states x threads with the cache."""
    if bound is None:
        bound = 1 << 30
    seen: dict[tuple[Any, ...], int] = {}
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
            k = ex.key()
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
    states: set[tuple[Any, ...]] = set()
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
            states.add(ex.key())
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
                  every: bool = False, model: Model | None = None) -> tuple[list[str], bool]:
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
            r = (explore_random(lit, d, runs, depth, seed, model) if runs
                 else explore(lit, d, bound, every=every, model=model))
            clean &= r.verdict == "PASS"
            out.extend(describe(r))
            want = lit.expectations().get(d)
            if want and want != r.verdict:
                out.append(f"   (differs from the file's expectation: {want})")
    return out, clean


def table(lits: list[Litmus], designs: list[str], bound: int | None,
          model: Model | None = None) -> tuple[list[str], bool]:
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
