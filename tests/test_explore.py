"""The interleaving explorer: litmus verdicts, replay, the state cache, the
lock-order and deadlock checks, and bad input.

Each litmus file states its expected verdict per design on its
``# expect:`` line; the first test checks every one of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rmaplab.cli import main
from rmaplab.errors import ScenarioError
from rmaplab.explore.explorer import (
    SAMPLE,
    explore,
    explore_random,
    load_litmus,
    parse_litmus,
    run_schedule,
    table,
)
from rmaplab.explore.locks import LockTable
from rmaplab.explore.world import Model

LITMUS = sorted((Path(__file__).parent.parent / "scenarios" / "litmus").glob("*.lit"))
CASES = [(p, d, v) for p in LITMUS for d, v in load_litmus(p).expectations().items()]


def test_the_litmus_directory_is_complete() -> None:
    names = {p.stem for p in LITMUS}
    assert {"fork-vs-walk", "mremap-vs-walk", "split-vs-walk", "munmap-vs-migration",
            "thp-split-vs-walk"} <= names
    assert all(load_litmus(p).expectations() for p in LITMUS)


@pytest.mark.parametrize("path,design,want", CASES,
                         ids=[f"{p.stem}-{d}" for p, d, _ in CASES])
def test_litmus_verdict(path: Path, design: str, want: str) -> None:
    r = explore(load_litmus(path), design, bound=3)
    assert r.verdict == want, r.violation
    assert r.complete


def test_fork_vs_walk_retry_is_what_makes_lazy_correct() -> None:
    """The issue's acceptance case: the missed-mapping interleaving exists
    for lazy-noretry, not for lazy or classic, and its printed schedule
    replays to the same violation."""
    lit = load_litmus(LITMUS[[p.stem for p in LITMUS].index("fork-vs-walk")])
    bad = explore(lit, "lazy-noretry", bound=3)
    assert bad.verdict == "VIOLATION"
    assert "still maps folio" in bad.violation and "P1" in bad.violation
    again = run_schedule(lit, "lazy-noretry", bad.schedule)
    assert again.violation == bad.violation
    # the same schedule under lazy: the retry walks the anon_vma and unmaps P1
    fixed = run_schedule(lit, "lazy", bad.schedule[:-1])
    assert fixed.verdict == "PASS"


@pytest.mark.parametrize("name", ["split-vs-walk", "thp-split-vs-walk", "merge-vs-walk"])
@pytest.mark.parametrize("design", ["classic", "lazy", "cowctx"])
def test_state_cache_loses_nothing(name: str, design: str) -> None:
    """With the cache off every schedule within the bound is run: the
    verdict must be the same (a cache keyed on too little once hid a miss)."""
    lit = load_litmus(LITMUS[[p.stem for p in LITMUS].index(name)])
    cached = explore(lit, design, bound=3)
    full = explore(lit, design, bound=3, cache=False)
    assert full.complete
    assert cached.verdict == full.verdict
    assert cached.executions <= full.executions


def test_unbounded_search_terminates_and_agrees() -> None:
    lit = parse_litmus(SAMPLE, "sample.lit")
    for d in ("classic", "lazy", "lazy-noretry"):
        assert explore(lit, d, bound=None).verdict == explore(lit, d, bound=3).verdict


def test_random_mode_finds_the_noretry_race() -> None:
    lit = parse_litmus(SAMPLE, "sample.lit")
    r = explore_random(lit, "lazy-noretry", runs=3000, depth=3, seed=1)
    assert r.verdict == "VIOLATION"
    assert run_schedule(lit, "lazy-noretry", r.schedule).violation == r.violation
    assert explore_random(lit, "lazy", runs=300, seed=1).verdict == "PASS"


def test_lock_order_and_deadlock_are_both_detected() -> None:
    """lazy-folio-lock takes the folio lock under the PTL: the order check
    reports it; with the check off, the walker (folio lock, then PTL) and
    fork (PTL, then folio lock) deadlock."""
    lit = parse_litmus(SAMPLE, "sample.lit")
    r = explore(lit, "lazy-folio-lock", bound=3)
    assert r.violation.startswith("lock order: A takes folio")
    r = explore(lit, "lazy-folio-lock", bound=3, model=Model(lock_order=False))
    assert r.violation.startswith("deadlock: A waits for folio")
    assert "held by B" in r.violation


def test_lock_table_modes() -> None:
    t = LockTable()
    t.acquire("A", ("mmap", "P0"), "r")
    assert t.available(("mmap", "P0"), "r") and not t.available(("mmap", "P0"), "x")
    assert t.order_violation("A", ("folio", 1)) is None
    t.acquire("A", ("anon_vma", 3), "r")
    assert "anon_vma 3" in (t.order_violation("A", ("vma", 2)) or "")
    t.release("A", ("anon_vma", 3))
    assert t.order_violation("A", ("vma", 2)) is None


def test_table_marks_unexpected_verdicts() -> None:
    text = SAMPLE.replace("init:", "# expect: lazy-noretry=PASS\ninit:")
    lines, ok = table([parse_litmus(text, "x.lit")], ["classic", "lazy-noretry"], 3)
    assert not ok
    assert "(expected PASS)" in lines[2]
    assert any(line.startswith("- x / lazy-noretry: try_to_unmap") for line in lines)


@pytest.mark.parametrize("text,msg", [
    ("init:\nP0 mmap @0 8 rw\n", "needs at least one 'thread X:' line"),
    ("init:\nP0 mmap @0 8 rw\nthread A: P0 frob\n", "unknown op 'frob'"),
    ("init:\nP0 mmap @0 8 rw\nthread A: P0 fork\n", "fork takes the new process name"),
    ("init:\nP0 mmap @0 8 rw\nthread A: P0 try_to_unmap 0\n", "maps no anonymous folio"),
    ("init:\nP0 mmap @0 8 rw\nthread A: P0 split 0\n", "unknown op 'split'"),
    ("init:\nP0 mmap @0 8 rw\nthread A: P3 exit\n", "undefined process P3"),
    ("init:\nP0 mmap @0 8 rw\nthread A: P0 mprotect 0..7 rq\n", "bad protection"),
    ("init:\nP0 mmap @0 8 rw\nthread A: measure\n", "not an operation of a process"),
    ("init:\nP0 mmap @0 8 rw\nthread A: P0 exit\nthread A: P0 exit\n", "defined twice"),
    ("thread A: P0 exit\n", "threads come after an 'init:' section"),
    ("# expect: classic=MAYBE\ninit:\nP0 mmap @0 8 rw\nthread A: P0 exit\n", "bad expect entry"),
    ("init:\nP0 mmap @0 8 zz\nthread A: P0 exit\n", "bad.lit:2:"),
])
def test_bad_litmus_is_one_line_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            text: str, msg: str) -> None:
    f = tmp_path / "bad.lit"
    f.write_text(text)
    assert main(["explore", "--design", "classic", str(f)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and msg in err and "bad.lit:" in err


def test_cli_explore_prints_trace_and_replays(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "s.lit"
    f.write_text(SAMPLE)
    assert main(["explore", "--design", "classic,lazy-noretry", str(f)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("PASS: classic: ")
    assert "VIOLATION: lazy-noretry: try_to_unmap (B) completed" in out
    assert "thread A: P0 fork P1" in out and "| thread B: P0 try_to_unmap 0" in out
    sched = next(line for line in out.splitlines() if line.startswith("schedule: "))
    assert main(["explore", "--design", "lazy-noretry", "--schedule", sched[10:], str(f)]) == 1
    assert "=> VIOLATION: try_to_unmap (B)" in capsys.readouterr().out
    assert main(["explore", "--design", "lazy", "--schedule", "C", str(f)]) == 2
    assert "schedule step 1 (C) is not possible" in capsys.readouterr().err


def test_scenario_error_for_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_litmus(tmp_path / "missing.lit")


def test_three_threads_in_random_mode() -> None:
    """The larger litmus (three threads) under PCT: the lazy stale migration
    entry is found, the other designs pass the sampled schedules."""
    lit = load_litmus(LITMUS[0].parent / "large" / "fork-migrate-referenced.lit")
    want = lit.expectations()
    for d in ("classic", "lazy", "cowctx"):
        r = explore_random(lit, d, runs=150, depth=3, seed=2)
        assert r.verdict == want[d], r.violation


def test_map_count_consistency_catches_a_path_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """A zap that drops a present PTE's mapping twice (the kind of bug the
    explorer's own paths once had): the machine's self-check at the end of
    an execution reports it as a model error."""
    from rmaplab.machine.machine import Machine

    real = Machine.drop_mapping

    def twice(self, mm, folio, n=1):  # type: ignore[no-untyped-def]
        real(self, mm, folio, n)
        if self.sync.active:
            real(self, mm, folio, n)

    monkeypatch.setattr(Machine, "drop_mapping", twice)
    lit = parse_litmus("init:\nP0 mmap @0 8 rw\nP0 write 0..0\nP0 fork P1\n"
                       "thread A: P1 munmap 0..7\nthread B: P0 read 4..4\n", "double-drop.lit")
    r = explore(lit, "classic", 3)
    assert r.violation == "model error: P0: freed folio 1 still mapped at 0x6f0000000", r.violation


def test_every_kind_of_violation_is_reported_with_its_schedule() -> None:
    """exit-vs-walk under lazy fails two ways: freed page tables and freed
    maple tree nodes; each reported schedule replays to its violation."""
    lit = load_litmus(LITMUS[[p.stem for p in LITMUS].index("exit-vs-walk")])
    r = explore(lit, "lazy", bound=None, every=True)
    kinds = [r.violation] + [o.violation for o in r.others]
    assert any("page table" in k for k in kinds) and any("mm_mt" in k for k in kinds)
    for x in [r, *r.others]:
        assert run_schedule(lit, "lazy", x.schedule).violation == x.violation


def test_rcu_table_free_protects_only_rcu_readers() -> None:
    """The PoC's walk holds RCU around rmap_one: with RCU-freed page tables
    (this kernel's config) reading a freed table is no use after free, without
    them it is; the lazy walk reads outside RCU and fails either way."""
    lit = load_litmus(LITMUS[[p.stem for p in LITMUS].index("munmap-vs-walk")])

    def kinds(design: str, model: Model) -> list[str]:
        r = explore(lit, design, bound=None, every=True, model=model)
        return [x.violation for x in [r, *r.others] if r.verdict == "VIOLATION"]

    assert not any("page table" in k for k in kinds("cowctx-poc-shortcut", Model()))
    assert any("page table" in k
               for k in kinds("cowctx-poc-shortcut", Model(rcu_table_free=False)))
    assert any("page table" in k for k in kinds("lazy", Model()))


LARGE = sorted((Path(__file__).parent.parent / "scenarios" / "litmus" / "large").glob("*.lit"))
ALONE = [(p, t.name, d) for p in LITMUS + LARGE for t in load_litmus(p).threads
         for d in load_litmus(p).expectations()]


@pytest.mark.parametrize("path,thread,design", ALONE,
                         ids=[f"{p.stem}-{t}-{d}" for p, t, d in ALONE])
def test_a_thread_run_alone_is_the_sequential_model(path: Path, thread: str, design: str) -> None:
    """The explorer cannot drift from the model: a litmus thread run alone,
    step by step under the explorer's scheduler, leaves exactly the state
    'rmaplab run' leaves for the init lines and that thread's line."""
    from rmaplab.designs import make_design
    from rmaplab.explore.explorer import Execution, Litmus, machine_state
    from rmaplab.machine.machine import Machine
    from rmaplab.scenario.ast import Scenario
    from rmaplab.scenario.run import run_scenario

    lit = load_litmus(path)
    ts = next(t for t in lit.threads if t.name == thread)
    ex = Execution(Litmus(lit.path, lit.header, lit.init, [ts]), design)
    steps = 0
    while not ex.done():
        ex.step(thread)
        steps += 1
    assert steps > 0
    m = Machine(make_design(design))
    run_scenario(Scenario(lit.path, lit.init.ops + [ts.op]), machine=m)
    assert machine_state(ex.m) == machine_state(m)
    assert ex.m.design.measure() == m.design.measure()
