"""Fuzzing campaigns: random scenarios against designs, every step checked.

A campaign is a sequence of *shards*; shard ``k`` covers the scenarios of
seeds ``seed + k*per_shard .. seed + (k+1)*per_shard - 1`` (each scenario
``ops_per_scenario`` operations from :mod:`rmaplab.fuzz.generate`).  A shard
runs every design on every scenario with the oracle after every op
(:func:`rmaplab.check.check_with_exit`); with two designs or more it also
compares what a program could observe (:func:`observables`: each op's error
and the mapped ranges with their protections, merges notwithstanding).  A
failure is shrunk (:mod:`rmaplab.fuzz.shrink`) to a minimal scenario that
fails the same way (same design, same normalised message, its *kind*).

Shards do not shrink: a kind turns up in many shards, and shrinking each
occurrence cost most of a campaign's time.  A shard reports, per kind, its
first failing scenario; the campaign keeps the lowest seed of each kind and,
once the shards are done, shrinks exactly those (in parallel, one task per
kind).  So the findings, reproducers included, are a function of the
parameters alone, whatever the scheduling: the same seed gives the same run,
locally, with ``jobs`` processes or on a Dask cluster (``dask``).

Findings are written atomically as they arrive (unshrunk first, then
replaced by the shrunk scenario); the checkpoint (``campaign.json``) records
finished shards after their findings, so an interrupted campaign resumes
without losing any, and a campaign interrupted while shrinking resumes by
shrinking what is left.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from rmaplab.check import check_with_exit
from rmaplab.errors import RmaplabError, UsageError
from rmaplab.fuzz.atomic import write_atomic
from rmaplab.fuzz.generate import GENERATOR_VERSION, generate_scenario
from rmaplab.fuzz.shrink import shrink_lines
from rmaplab.scenario.ast import Scenario
from rmaplab.scenario.parse import parse_text

PER_SHARD = 10
T = TypeVar("T")


@dataclass
class Finding:
    """A failing scenario: the first of its kind in a shard, then the lowest
    seed of its kind in the campaign, then that one shrunk."""

    design: str
    signature: str
    message: str
    seed: int
    original_lines: int
    lines: list[str]
    shrunk: bool = True

    def key(self) -> str:
        h = hashlib.sha1(f"{self.design}|{self.signature}".encode()).hexdigest()[:10]
        return f"{self.design.replace(':', '_').replace('=', '-')}__{h}"


def _counts(v: Any, what: str) -> None:
    if not isinstance(v, dict) or not all(
            isinstance(k, str) and type(n) is int and n >= 0 for k, n in v.items()):
        raise ValueError(f"{what} is not a table of counts")


def _check_state(state: dict[str, Any]) -> None:
    """Every field of a checkpoint has the type ``save`` writes (ValueError
    naming the first that does not): a hand-edited or corrupted file is
    refused when loaded, not half-used later."""
    if set(state) != {"params", "shards", "findings"}:
        raise ValueError("expected exactly the keys params, shards and findings, found "
                         + ", ".join(sorted(map(str, state))[:6]))
    shards = state["shards"]
    if not isinstance(shards, dict):
        raise ValueError("shards is not an object")
    known = {"ops", "scenarios", "op_kinds", "transitions", "cpu", "shrink_cpu"}
    for k, v in shards.items():
        if not (isinstance(k, str) and k.isascii() and k.isdigit()) or not isinstance(v, dict):
            raise ValueError(f"shard {k!r} is malformed")
        if set(v) - known:
            raise ValueError(f"shard {k}: unknown field {sorted(set(v) - known)[0]!r}")
        for f in ("ops", "scenarios"):
            if type(v.get(f)) is not int or v[f] < 0:
                raise ValueError(f"shard {k}: {f} is not a count")
        _counts(v.get("op_kinds"), f"shard {k}: op_kinds")
        tr = v.get("transitions")
        if not isinstance(tr, dict):
            raise ValueError(f"shard {k}: transitions is not an object")
        for d, c in tr.items():
            _counts(c, f"shard {k}: transitions of {d}")
        for f in ("cpu", "shrink_cpu"):
            if f in v and (type(v[f]) not in (int, float) or not 0 <= v[f] < 1e12):
                raise ValueError(f"shard {k}: {f} is not a duration")
    findings = state.get("findings", [])
    if not isinstance(findings, list):
        raise ValueError("findings is not a list")
    types = {"design": str, "signature": str, "message": str, "seed": int,
             "original_lines": int, "lines": list, "shrunk": bool}
    for i, f in enumerate(findings):
        if not isinstance(f, dict) or set(f) - set(types) or not set(types) - {"shrunk"} <= set(f):
            raise ValueError(f"finding {i} is malformed")
        for name, t in types.items():
            if name in f and type(f[name]) is not t:
                raise ValueError(f"finding {i}: {name} is not a {t.__name__}")
        if not all(isinstance(ln, str) for ln in f["lines"]):
            raise ValueError(f"finding {i}: lines are not text")


@dataclass
class ShardResult:
    shard: int
    ops: int
    scenarios: int
    findings: list[Finding] = field(default_factory=list)
    op_kinds: Counter[str] = field(default_factory=Counter)
    transitions: dict[str, Counter[str]] = field(default_factory=dict)
    #: CPU seconds of the worker checking this shard (``time.process_time``):
    #: CPU time, not wall time, so the rate per core holds on a loaded machine
    cpu: float = 0.0


def normalise(msg: str) -> str:
    """A violation message without numbers or process names (its kind).

    >>> normalise("rmap_walk of folio 12 (index 0x6f0, 1 pages) misses page 3 "
    ...           "mapped by P1 at page 40")
    'rmap_walk of folio N (index N, N pages) misses page N mapped by P at page N'
    """
    msg = re.sub(r"P\d+", "P", msg)
    return re.sub(r"0x[0-9a-f]+|\d+", "N", msg)


def observables(sc_text: str | Scenario, design: str) -> list[tuple[Any, ...]]:
    """Per op: its output line (errors and measures stripped of counts) and
    every process's mapped ranges with protections, adjacent equal ranges
    coalesced (so that VMA merge policy alone is not a difference)."""
    from rmaplab.designs import make_design
    from rmaplab.machine.machine import Machine
    from rmaplab.scenario.run import apply_op

    sc = parse_text(sc_text) if isinstance(sc_text, str) else sc_text
    m = Machine(make_design(design))
    out: list[tuple[Any, ...]] = []
    for op in sc.ops:
        line = apply_op(m, op)
        err = line if line and line.startswith("error") else None
        ranges = []
        for name in sorted(m.tasks):
            cur: list[Any] | None = None
            for a, b, p in m.maps(name):
                if cur and cur[1] + 1 == a and cur[2] == p:
                    cur[1] = b
                else:
                    cur = [a, b, p]
                    ranges.append((name, cur))
        out.append((op.line, err, tuple((n, tuple(r)) for n, r in ranges)))
    return out


def first_divergence(text: str | Scenario, designs: list[str]) -> str | None:
    """'line L: X says ..., Y says ...' for the first op where two designs
    disagree on what a program could observe, or None."""
    obs = {d: observables(text, d) for d in designs}
    base = designs[0]
    for i, row in enumerate(obs[base]):
        for d in designs[1:]:
            other = obs[d][i]
            if other == row:
                continue
            if other[1] != row[1]:
                what = f"{base}: {row[1] or 'ok'}; {d}: {other[1] or 'ok'}"
            else:
                what = f"{base} and {d} map different ranges"
            return f"designs disagree at line {row[0]} ({what})"
    return None


def divergence_kind(div: str) -> str:
    """The kind of a :func:`first_divergence` message: what disagreed, with
    numbers and process names normalised.

    >>> divergence_kind("designs disagree at line 5 (classic: error 5: EFAULT; lazy: ok)")
    'classic: error N: EFAULT; lazy: ok'
    """
    return normalise(div.split(" (", 1)[1].removesuffix(")"))


def _check(text: str, design: str, machine: Any = None) -> str | None:
    v = check_with_exit(parse_text(text), design, machine=machine)
    return None if v is None else str(v)


def violation_kind(msg: str) -> str:
    """The kind of a violation message of :func:`rmaplab.check.check_with_exit`."""
    return normalise(msg.split("; at line")[0])


def failure(lines: list[str], design: str, designs: list[str]) -> tuple[str, str] | None:
    """How the scenario ``lines`` fails for a finding of ``design`` (a design
    or ``differential``, comparing ``designs``): its message and its kind,
    or None."""
    text = "\n".join(lines) + "\n"
    if design == "differential":
        div = first_divergence(text, designs)
        return None if div is None else (div, divergence_kind(div))
    v = _check(text, design)
    return None if v is None else (v, violation_kind(v))


def run_shard(shard: int, designs: list[str], seed: int, ops_per_scenario: int,
              per_shard: int = PER_SHARD) -> ShardResult:
    """Check the scenarios of one shard (a pure function of its arguments).

    Findings are reported unshrunk, the first of each kind (the campaign
    shrinks: see the module docstring).  A crash while generating or
    checking a scenario is recorded as an ``internal`` finding (with its
    seed) instead of stopping the campaign.
    """
    res = ShardResult(shard, 0, 0)
    seen: set[tuple[str, str]] = set()
    t0 = time.process_time()
    for s in range(seed + shard * per_shard, seed + (shard + 1) * per_shard):
        try:
            _run_one(res, seen, s, designs, ops_per_scenario)
        except Exception as e:  # a crash of the generator or the model is a finding too
            sig = f"internal error: {type(e).__name__}: {normalise(str(e))}"
            if ("internal", sig) not in seen:
                seen.add(("internal", sig))
                try:
                    lines = generate_scenario(s, ops_per_scenario).splitlines()
                except Exception:
                    lines = [f"# generate_scenario({s}, {ops_per_scenario}) raised"]
                res.findings.append(Finding("internal", sig, f"{type(e).__name__}: {e}", s,
                                            len(lines), lines))
    res.cpu = time.process_time() - t0
    return res


def _run_one(res: ShardResult, seen: set[tuple[str, str]], s: int, designs: list[str],
             ops_per_scenario: int) -> None:
    """Generate scenario ``s``, check it under every design and compare them."""
    from rmaplab.designs import make_design
    from rmaplab.machine.machine import Machine

    text = generate_scenario(s, ops_per_scenario)
    sc = parse_text(text)
    res.scenarios += 1
    res.ops += len(sc.ops)
    for op in sc.ops:
        res.op_kinds[type(op.action).__name__.lower()] += 1
    for d in designs:
        m = Machine(make_design(d))
        v = _check(text, d, machine=m)
        t = res.transitions.setdefault(d, Counter())
        for k, c in m.design.cost.items():
            if k.startswith("t:"):
                t[k[2:]] += c
        if v is not None:
            _report(res, seen, d, violation_kind(v), v, s, text)
    if len(designs) > 1:
        div = first_divergence(text, designs)
        if div is not None:
            _report(res, seen, "differential", divergence_kind(div), div, s, text)


def _report(res: ShardResult, seen: set[tuple[str, str]], design: str, kind: str, msg: str,
            seed: int, text: str) -> None:
    """An unshrunk finding, if it is the shard's first of its kind."""
    if (design, kind) not in seen:
        seen.add((design, kind))
        lines = text.splitlines()
        res.findings.append(Finding(design, kind, msg, seed, len(lines), lines, shrunk=False))


def shrink_finding(f: Finding, designs: list[str]) -> Finding:
    """``f`` with its scenario shrunk to a minimal one failing the same way
    (a pure function of its arguments, so it can run anywhere)."""
    if f.shrunk or f.design == "internal":
        return replace(f, shrunk=True)
    try:
        now = failure(f.lines, f.design, designs)
        if now is None or now[1] != f.signature:
            # the code changed since the shard ran (a campaign resumed after a fix)
            return replace(f, shrunk=True, message=f"{f.message} [not shrunk: no longer "
                           "fails this way with this version of rmaplab]")
        small = shrink_lines(f.lines, lambda ls: (r := failure(ls, f.design, designs))
                             is not None and r[1] == f.signature)
    except Exception as e:  # a crash while shrinking must not lose the campaign
        return replace(f, shrunk=True, message=f"{f.message} [not shrunk: the shrinker "
                       f"raised {type(e).__name__}: {e}]")
    final = failure(small, f.design, designs)
    return replace(f, lines=small, shrunk=True, message=final[0] if final else f.message)


def diagram(lines: list[str], design: str) -> list[str]:
    """ASCII map of every process's arena at the end of a scenario."""
    from rmaplab.designs import make_design
    from rmaplab.machine.machine import Machine
    from rmaplab.scenario.run import run_scenario

    m = Machine(make_design(design if design != "differential" else "classic"))
    try:
        run_scenario(parse_text("\n".join(lines) + "\n"), machine=m)
    except Exception:
        return ["#   (the scenario stops with an exception)"]
    out = []
    for name in sorted(m.tasks, key=lambda n: int(n[1:])):
        cells = []
        prev_end = None
        for a, b, p in m.maps(name):
            if prev_end is not None and a > prev_end + 1:
                cells.append("...")
            cells.append(f"[{a}..{b} {p}]")
            prev_end = b
        out.append(f"#   {name}: " + (" ".join(cells) if cells else "(empty arena)"))
    return out or ["#   (no process left)"]


def finding_text(f: Finding, designs: list[str]) -> str:
    """The finding as a scenario file: a header, then the lines.  The
    violation in the header is the one the file itself gives, so its line
    numbers are those an editor shows (and ``rmaplab check`` prints)."""
    def header(message: str) -> list[str]:
        return [
            f"# rmaplab fuzz finding: {f.design}"
            + (f" ({', '.join(designs)})" if f.design == "differential" else ""),
            f"# violation: {message}",
            f"# kind: {f.signature}",
            f"# seed: {f.seed} (rmaplab generate --seed {f.seed}); "
            f"original length {f.original_lines} lines, "
            + (f"shrunk to {len(f.lines)}" if f.shrunk else "not shrunk (yet)"),
            "# address space at the end:",
        ] + diagram(f.lines, f.design) + [
            f"# replay: rmaplab check --design "
            f"{f.design if f.design != 'differential' else ','.join(designs)} THIS_FILE",
        ]

    message = f.message
    if f.design != "internal":
        try:
            again = failure(["#"] * len(header("")) + f.lines, f.design, designs)
        except Exception:
            again = None
        if again is not None and again[1] == f.signature:
            message = again[0] + "".join(
                f" [{x}]" for x in re.findall(r"\[(not shrunk: [^]]*)\]", f.message))
    return "\n".join(header(message) + f.lines) + "\n"


@dataclass
class Campaign:
    designs: list[str]
    seed: int = 1
    ops: int | None = None
    seconds: float | None = None
    jobs: int = 1
    out: Path | None = None
    ops_per_scenario: int = 200
    per_shard: int = PER_SHARD
    dask: str | None = None
    shrink: bool = True
    progress: Callable[[str], None] | None = None
    results: dict[int, ShardResult] = field(default_factory=dict)
    findings: dict[str, Finding] = field(default_factory=dict)
    started: float = 0.0
    #: scenario ops already in the checkpoint when this run started (so that
    #: the rates printed are those of this run, not inflated by a resume)
    resumed_ops: int = 0
    #: findings shrunk by this run, and the wall time it took
    shrunk_now: int = 0
    shrink_wall: float = 0.0
    #: seconds from the start of this run to its first new kind of finding
    first_finding: float | None = None
    #: wall time of this run's shards (shrinking excluded)
    shards_wall: float = 0.0

    def params(self) -> dict[str, Any]:
        return {"designs": self.designs, "seed": self.seed,
                "ops_per_scenario": self.ops_per_scenario, "per_shard": self.per_shard,
                "generator": GENERATOR_VERSION}

    # -- checkpoint --------------------------------------------------------------------------
    def load(self) -> set[int]:
        if self.out is None or not (self.out / "campaign.json").exists():
            return set()
        path = self.out / "campaign.json"
        try:
            state = json.loads(path.read_bytes().decode("utf-8"))
            if not isinstance(state, dict):
                raise ValueError("not a JSON object")
            return self._load(state)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise UsageError(f"{path}: not a campaign checkpoint rmaplab can read ({e}); "
                             "use another --out or delete it") from None

    def _load(self, state: dict[str, Any]) -> set[int]:
        assert self.out is not None
        if state.get("params") != self.params():
            raise UsageError(f"{self.out}/campaign.json belongs to another campaign "
                             f"({state.get('params')}); use another --out")
        _check_state(state)
        for k, v in state.get("shards", {}).items():
            # checkpoints of 2026-11-26 from when shards shrank count it in "cpu"
            r = ShardResult(int(k), v["ops"], v["scenarios"], [], Counter(v["op_kinds"]),
                            {d: Counter(c) for d, c in v["transitions"].items()},
                            v.get("cpu", 0.0) - v.get("shrink_cpu", 0.0))
            self.results[int(k)] = r
        for f in state.get("findings", []):
            fd = Finding(**f)
            if fd.design == "differential":  # checkpoints before 2026-11-26 kept a ")"
                fd.signature = fd.signature.removesuffix(")")
            if not (self.out / f"{fd.key()}.scn").exists():  # re-keyed, or deleted
                write_atomic(self.out / f"{fd.key()}.scn", finding_text(fd, self.designs))
            self.findings[fd.key()] = fd
        return set(self.results)

    def save(self) -> None:
        if self.out is None:
            return
        state = {"params": self.params(),
                 "shards": {str(k): {"ops": r.ops, "scenarios": r.scenarios,
                                     "op_kinds": dict(r.op_kinds),
                                     "transitions": {d: dict(c) for d, c in r.transitions.items()},
                                     "cpu": round(r.cpu, 3)}
                            for k, r in self.results.items()},
                 "findings": [f.__dict__ for f in self.findings.values()]}
        write_atomic(self.out / "campaign.json", json.dumps(state, indent=1, sort_keys=True))

    def record_finding(self, f: Finding) -> None:
        """Keep ``f`` if it is the first of its kind, of a lower seed than the
        one kept, or the shrunk form of the one kept; O(1) plus the write."""
        k = f.key()
        old = self.findings.get(k)
        if old is None and self.first_finding is None:
            self.first_finding = time.monotonic() - self.started
        if old is None or f.seed < old.seed or (
                f.seed == old.seed and f.shrunk and not old.shrunk):
            self.findings[k] = f
            if self.out is not None:
                write_atomic(self.out / f"{k}.scn", finding_text(f, self.designs))

    def record(self, r: ShardResult) -> None:
        for f in r.findings:
            self.record_finding(f)
        self.results[r.shard] = r
        self.save()

    # -- running ---------------------------------------------------------------------------
    def total_ops(self) -> int:
        return sum(r.ops for r in self.results.values())

    def done(self) -> bool:
        if self.ops is not None:
            return self.total_ops() >= self.ops
        return time.monotonic() - self.started >= (self.seconds or 0)

    def shard_ids(self, skip: set[int]) -> Iterator[int]:
        k = 0
        while True:
            if k not in skip:
                yield k
            k += 1

    def needed_shards(self, skip: set[int]) -> int | None:
        """With --ops, exactly how many shards (so the run is reproducible)."""
        if self.ops is None:
            return None
        per = self.ops_per_scenario * self.per_shard
        return -(-self.ops // per)

    def run(self) -> None:
        if (self.ops is None) == (self.seconds is None):
            raise UsageError("give exactly one of --ops N or --seconds N")
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
        skip = self.load()
        self.resumed_ops = self.total_ops()
        self.started = time.monotonic()
        n = self.needed_shards(skip)
        todo: Iterable[int] = ([k for k in range(n) if k not in skip] if n is not None
                               else self.shard_ids(skip))
        # shards never shrink (see the module docstring): the campaign does, at the end
        args = (self.designs, self.seed, self.ops_per_scenario, self.per_shard)
        stop = (lambda: False) if n is not None else self.done
        last = 0.0
        for r in self._execute(run_shard, ((k, *args) for k in todo), stop):
            self.record(r)
            now = time.monotonic()
            if self.progress and now - last >= 1.0:
                last = now
                self.progress(self.status())
            if n is None and self.done():
                break
        self.shards_wall = time.monotonic() - self.started
        if self.progress:
            self.progress(self.status())
        if self.shrink:
            self.shrink_all()

    def shrink_all(self) -> None:
        """Shrink every finding kept unshrunk, one task per finding, on the
        campaign's workers; each is recorded (file and checkpoint) when done."""
        todo = sorted((f for f in self.findings.values() if not f.shrunk),
                      key=lambda f: (f.design, f.signature))
        if not todo:
            return
        if self.progress:
            self.progress(f"shrinking {len(todo)} finding(s)")
        t0 = time.monotonic()
        for f in self._execute(shrink_finding, ((f, self.designs) for f in todo),
                               lambda: False):
            self.record_finding(f)
            self.save()
            self.shrunk_now += 1
            self.shrink_wall = time.monotonic() - t0
            if self.progress:
                self.progress(f"shrunk {f.design}: {f.signature}: {f.original_lines} -> "
                              f"{len(f.lines)} lines")

    def _execute(self, fn: Callable[..., T], calls: Iterable[tuple[Any, ...]],
                 stop: Callable[[], bool]) -> Iterator[T]:
        """``fn(*args)`` for each ``args`` of ``calls``, results as they come;
        no new call is started once ``stop()``."""
        if self.dask:
            yield from _run_dask(self.dask, fn, calls, stop)
        elif self.jobs <= 1:
            for args in calls:
                yield fn(*args)
                if stop():
                    return
        else:
            yield from _run_pool(self.jobs, fn, calls, stop)

    def status(self) -> str:
        el = max(1e-9, time.monotonic() - self.started)
        ops = self.total_ops()
        rate = (ops - self.resumed_ops) / el
        return (f"[{el:7.1f}s] {ops:,} ops ({rate:,.0f} ops/s), "
                f"{sum(r.scenarios for r in self.results.values()):,} scenarios, "
                f"{len(self.findings)} findings")

    def summary(self) -> list[str]:
        el = max(1e-9, time.monotonic() - self.started)
        ops = self.total_ops()
        scen = sum(r.scenarios for r in self.results.values())
        per = Counter(f.design for f in self.findings.values())
        kinds: Counter[str] = Counter()
        trans: dict[str, Counter[str]] = {}
        for r in self.results.values():
            kinds.update(r.op_kinds)
            for d, c in r.transitions.items():
                trans.setdefault(d, Counter()).update(c)
        checked = ops * len(self.designs)
        timed = [r for r in self.results.values() if r.cpu > 0]
        check_cpu = sum(r.cpu for r in timed)
        timed_checked = sum(r.ops for r in timed) * len(self.designs)
        now = ops - self.resumed_ops
        out = [f"campaign: {', '.join(self.designs)}; seed {self.seed}; {len(self.results)} shards",
               f"ops: {ops:,} scenario ops ({scen:,} scenarios of {self.ops_per_scenario}), "
               f"each checked under {len(self.designs)} design(s): {checked:,} checked ops",
               f"this run: {now:,} scenario ops in {self.shards_wall or el:.1f}s wall "
               f"({now / (self.shards_wall or el):,.0f} ops/s; a scenario is checked up to "
               "its first violation)"
               + (f", resumed from {self.resumed_ops:,}" if self.resumed_ops else "")]
        if check_cpu > 0:
            out.append(f"checking: {timed_checked:,} checked ops in {check_cpu:,.1f} CPU-s "
                       f"= {timed_checked / check_cpu:,.0f} checked ops/s per core"
                       + (f" ({len(timed)} of {len(self.results)} shards timed)"
                          if len(timed) < len(self.results) else ""))
        if self.shrunk_now:
            out.append(f"shrinking: {self.shrunk_now} finding(s) in {self.shrink_wall:.1f}s wall")
        out += ["findings: " + (", ".join(f"{d} {per.get(d, 0)}" for d in
                                          self.designs + (["differential"]
                                                          if len(self.designs) > 1 else [])))
                + (f" (the first new one after {self.first_finding:.1f}s)"
                   if self.first_finding is not None else ""),
                "coverage of op kinds: " + ", ".join(f"{k} {v:,}" for k, v in kinds.most_common())]
        for d, c in trans.items():
            out.append(f"coverage of {d} transitions: "
                       + (", ".join(f"{k} {v:,}" for k, v in sorted(c.items())) or "none"))
        for f in sorted(self.findings.values(), key=lambda f: (f.design, f.signature)):
            where = f" -> {self.out / (f.key() + '.scn')}" if self.out else ""
            out.append(f"finding {f.design}: {f.signature} ({len(f.lines)} lines, "
                       f"seed {f.seed}){where}")
        return out


def _run_pool(jobs: int, fn: Callable[..., T], calls: Iterable[tuple[Any, ...]],
              stop: Callable[[], bool]) -> Iterator[T]:
    """Calls on ``jobs`` local processes, at most two queued per process.
    A worker that dies (killed, out of memory) stops the campaign with a
    clear error instead of waiting for its result forever; the checkpoint
    keeps every finished shard."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"))
    try:
        pending: set[Future[T]] = set()
        it = iter(calls)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * jobs and not stop():
                args = next(it, None)
                if args is None:
                    exhausted = True
                    break
                pending.add(pool.submit(fn, *args))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    raise RmaplabError("a fuzzing worker process died (killed?); the finished "
                                       "shards are kept: run the same command to resume") from None
    except BaseException:
        # interrupted (Ctrl-C, SIGTERM, a dead worker): stop the workers now
        # rather than let them finish their shard unobserved
        _terminate_workers(pool)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _terminate_workers(pool: Any) -> None:
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    for proc in list(getattr(pool, "_processes", {}).values()):
        proc.terminate()


def _run_dask(address: str, fn: Callable[..., T], calls: Iterable[tuple[Any, ...]],
              stop: Callable[[], bool]) -> Iterator[T]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise UsageError("--dask needs the optional extra: pip install 'rmaplab[dask]'") from None
    try:
        client = Client(address, timeout=20)
    except (OSError, TimeoutError, ValueError) as e:
        raise RmaplabError(f"--dask {address}: cannot reach the scheduler ({e})") from None
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        it = iter(calls)
        futures = []
        for args in it:
            futures.append(client.submit(fn, *args, pure=False))
            if len(futures) >= 2 * n_workers:
                break
        ac = as_completed(futures)
        for fut in ac:
            yield fut.result()
            if stop():
                continue
            nxt = next(it, None)
            if nxt is not None:
                ac.add(client.submit(fn, *nxt, pure=False))
    finally:
        client.close()


def progress_to_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
