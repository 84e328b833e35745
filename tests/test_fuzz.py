"""Fuzzing campaigns: determinism, shrinking, resume, Dask, export to C."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CORPUS

from rmaplab.check import check_with_exit
from rmaplab.cli import main
from rmaplab.fuzz.campaign import Campaign, normalise, run_shard
from rmaplab.fuzz.export_c import export_c
from rmaplab.scenario.parse import parse_file, parse_text

FLAWED = ["lazy-single-address", "lazy-merge-any", "lazy-no-upgrade-on-mremap",
          "cowctx-poc-shortcut"]


def findings(c: Campaign) -> list[tuple[str, str, tuple[str, ...]]]:
    return sorted((f.design, f.signature, tuple(f.lines)) for f in c.findings.values())


@pytest.mark.parametrize("design", FLAWED)
def test_every_flawed_variant_is_found_and_shrunk_to_8_lines(design: str) -> None:
    c = Campaign([design], seed=1, ops=2000, ops_per_scenario=200, per_shard=10)
    c.run()
    assert c.findings, f"no finding for {design} in 2,000 ops"
    best = min(c.findings.values(), key=lambda f: len(f.lines))
    assert len(best.lines) <= 8, best.lines
    v = check_with_exit(parse_text("\n".join(best.lines) + "\n"), design)
    assert v is not None and normalise(str(v).split("; at line")[0]) == best.signature


def test_correct_designs_have_no_finding() -> None:
    r = run_shard(0, ["classic", "lazy", "cowctx"], seed=77, ops_per_scenario=150, per_shard=3)
    assert [f for f in r.findings if f.design != "differential"] == []
    assert r.scenarios == 3 and r.ops == 3 * 150


def test_same_seed_same_run_local_and_pool() -> None:
    a = Campaign(["lazy-merge-any"], seed=5, ops=1200, ops_per_scenario=100, per_shard=4,
                 shrink=False)
    a.run()
    b = Campaign(["lazy-merge-any"], seed=5, ops=1200, ops_per_scenario=100, per_shard=4, jobs=2,
                 shrink=False)
    b.run()
    assert findings(a) == findings(b) and a.total_ops() == b.total_ops() == 1200


def test_shrunk_findings_do_not_depend_on_the_scheduling() -> None:
    """The lowest seed of each kind is shrunk, once, after the shards."""
    runs = []
    for jobs in (1, 2):
        c = Campaign(["lazy-no-upgrade-on-mremap"], seed=3, ops=1600, ops_per_scenario=100,
                     per_shard=2, jobs=jobs)
        c.run()
        runs.append(c)
    a, b = runs
    assert findings(a) == findings(b) and len(a.findings) >= 2
    assert all(f.shrunk and len(f.lines) <= 8 for f in a.findings.values())
    assert a.shrunk_now == len(a.findings)
    # each kept finding is the lowest seed of its kind among the shards' reports
    for f in a.findings.values():
        seeds = [g.seed for r in a.results.values() for g in r.findings if g.key() == f.key()]
        assert f.seed == min(seeds)


def test_interrupted_campaign_resumes_without_losing_findings(tmp_path: Path) -> None:
    full = Campaign(["lazy-no-upgrade-on-mremap"], seed=3, ops=1600, ops_per_scenario=100,
                    per_shard=4, shrink=False)
    full.run()
    part = Campaign(["lazy-no-upgrade-on-mremap"], seed=3, ops=800, ops_per_scenario=100,
                    per_shard=4, out=tmp_path, shrink=False)
    part.run()  # "interrupted" half way
    assert (tmp_path / "campaign.json").exists()
    assert all((tmp_path / f"{k}.scn").exists() for k in part.findings)
    resumed = Campaign(["lazy-no-upgrade-on-mremap"], seed=3, ops=1600, ops_per_scenario=100,
                       per_shard=4, out=tmp_path, shrink=False)
    resumed.run()
    assert findings(resumed) == findings(full)
    text = next(tmp_path.glob("*.scn")).read_text()
    assert text.startswith("# rmaplab fuzz finding: lazy-no-upgrade-on-mremap")
    assert "# address space at the end:" in text
    sc = parse_file(next(tmp_path.glob("*.scn")))
    assert check_with_exit(sc, "lazy-no-upgrade-on-mremap") is not None
    # the rates printed are this run's: 800 ops resumed, 800 run now; the
    # per-core rate comes from the CPU time the shards recorded (checkpointed)
    summary = "\n".join(resumed.summary())
    assert "this run: 800 scenario ops" in summary and "resumed from 800" in summary
    assert re.search(r"checking: 1,600 checked ops in [\d.]+ CPU-s = [\d,]+ checked ops/s "
                     r"per core$", summary, re.M), summary
    state = json.loads((tmp_path / "campaign.json").read_text())
    assert all(v["cpu"] > 0 for v in state["shards"].values())


def test_dask_cluster_gives_the_local_findings(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    import dask

    # dask's scratch space (dask-scratch-space) goes with the test, not /tmp
    cfg = dask.config.set({"temporary-directory": str(tmp_path)})
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       local_directory=str(tmp_path))
    try:
        d = Campaign(["lazy-merge-any"], seed=9, ops=800, ops_per_scenario=100, per_shard=4,
                     dask=cluster.scheduler_address, shrink=False)
        d.run()
    finally:
        cluster.close()
        cfg.__exit__(None, None, None)
    local = Campaign(["lazy-merge-any"], seed=9, ops=800, ops_per_scenario=100, per_shard=4,
                     shrink=False)
    local.run()
    assert findings(d) == findings(local) and d.findings


def test_fuzz_cli_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuzz", "--design", "classic", "--ops", "10", "--seconds", "1"]) == 2
    assert "exactly one of --ops N or --seconds N" in capsys.readouterr().err
    assert main(["fuzz", "--design", "nope", "--ops", "10"]) == 2


@pytest.mark.kernel
def test_exported_c_program_reproduces_the_recording(live_kernel: None, tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    from rmaplab.kernel.record import read_recording
    from rmaplab.kernel.runner import kernel_lock

    path = CORPUS / "p36-ancestor-reuse.scn"
    src = tmp_path / "s.c"
    src.write_text(export_c(parse_file(path)))
    subprocess.run([cc, "-O2", "-o", str(tmp_path / "s"), str(src)], check=True)
    want = read_recording(path.with_suffix(".out"))
    got: list[str] = []
    for _ in range(3):
        with kernel_lock():
            got = subprocess.run([str(tmp_path / "s")], capture_output=True, text=True,
                                 check=True).stdout.splitlines()
        if got == want:
            break
    assert got == want


def test_a_crash_in_a_shard_is_an_internal_finding(monkeypatch):
    """A model or generator crash must not kill the campaign (it once hung
    the process pool): it becomes a finding that names the seed."""
    from rmaplab.fuzz import campaign

    def boom(seed, nops):
        raise ValueError(f"broken generator at seed {seed}")

    monkeypatch.setattr(campaign, "generate_scenario", boom)
    res = campaign.run_shard(0, ["classic"], 7, 10, per_shard=3)
    assert [f.design for f in res.findings] == ["internal"]
    assert res.findings[0].seed == 7
    assert "ValueError" in res.findings[0].signature


def test_scenario_error_survives_pickling():
    import pickle

    from rmaplab.errors import ScenarioError

    e = pickle.loads(pickle.dumps(ScenarioError("f.scn", 3, "bad range")))
    assert str(e) == "f.scn:3: bad range" and e.line == 3


def test_generated_ranges_stay_valid_near_the_window_end():
    """Seed 635 once produced '2060..2047' (a VMA grown past the window)."""
    from rmaplab.fuzz.generate import generate_scenario
    from rmaplab.scenario.parse import parse_text

    parse_text(generate_scenario(635, 200))


def test_sigterm_stops_a_campaign_like_ctrl_c(tmp_path: Path) -> None:
    """kill (or a batch system) must not lose the checkpoint or leave a traceback."""
    import signal
    import sys
    import time

    out = tmp_path / "camp"
    p = subprocess.Popen([sys.executable, "-m", "rmaplab", "fuzz", "--design", "classic",
                          "--seconds", "600", "--ops-per-scenario", "20", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "campaign.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    assert "run the same command to resume from" in err.splitlines()[-1]
    assert json.loads((out / "campaign.json").read_text())["shards"]


# A differential finding of the 1M-op campaign (seed 10): classic gives the
# two halves different anon_vmas (their flags differed at first fault), so
# they never merge and a grow across both fails; lazy merges them.
#
#   1193 1194
#   [ A ][ B ]   classic: two VMAs, mremap of both -> EFAULT
#   [   L    ]   lazy:    one VMA (same lazy root), mremap -> ok
DIFF_SEED10 = """\
P0 mmap @1193 2 rw
P0 madvise 0..1193 dontfork
P0 write 1193..1194
P0 madvise 0..1193 dofork
P0 mremap 1193 2 3
"""


def test_a_differential_finding_replays_with_check(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from rmaplab.fuzz.campaign import Finding, finding_text

    f = Finding("differential", "classic: error N: EFAULT; lazy: ok",
                "designs disagree at line 5 (classic: error 5: EFAULT; lazy: ok)", 10, 200,
                DIFF_SEED10.splitlines())
    text = finding_text(f, ["classic", "lazy"])
    assert "# replay: rmaplab check --design classic,lazy THIS_FILE" in text
    p = tmp_path / "d.scn"
    p.write_text(text)
    assert main(["check", "--design", "classic", str(p)]) == 0  # each design alone is fine
    assert main(["check", "--design", "classic,lazy", str(p)]) == 1
    out = capsys.readouterr().out
    n = text.splitlines().index("P0 mremap 1193 2 3") + 1  # the file's line number
    assert f"DIFFERENCE: {p}: designs disagree at line {n} (classic: error {n}: EFAULT; lazy: ok)" \
        in out, out
    assert main(["check", "--design", "classic,lazy", str(CORPUS / "p01-mmap-unfaulted.scn")]) == 0


# The differential findings kept in the corpus (recorded from the kernel):
# exactly these designs print something else than the kernel did.
DIFFERS = {"d01-flags-at-first-fault-keep-vmas-apart": {"lazy", "cowctx"},
           "d02-forked-vma-no-merge-with-new": {"cowctx"},
           "d03-neighbour-reuse-after-fork": {"lazy"}}


@pytest.mark.parametrize("name", sorted(DIFFERS))
def test_differential_findings_differ_from_the_kernel_in_the_stated_designs(name: str) -> None:
    from rmaplab.scenario.run import run_scenario

    sc = parse_file(CORPUS / f"{name}.scn")
    kernel = [ln for ln in (CORPUS / f"{name}.out").read_text().splitlines()
              if not ln.startswith("#")]
    differ = {d for d in ("classic", "lazy", "cowctx")
              if run_scenario(sc, design=d) != kernel}
    assert differ == DIFFERS[name]
    assert check_with_exit(sc, "lazy") is None and check_with_exit(sc, "cowctx") is None


def test_a_campaign_stopped_before_shrinking_resumes_by_shrinking(tmp_path: Path) -> None:
    def camp(shrink: bool) -> Campaign:
        return Campaign(["lazy-no-upgrade-on-mremap"], seed=3, ops=800, ops_per_scenario=100,
                        per_shard=4, out=tmp_path, shrink=shrink)

    first = camp(shrink=False)
    first.run()  # as if stopped once the shards were done
    assert first.findings and not any(f.shrunk for f in first.findings.values())
    assert "not shrunk (yet)" in next(tmp_path.glob("*.scn")).read_text()
    again = camp(shrink=True)
    again.run()
    assert again.resumed_ops == 800 and again.shrunk_now == len(first.findings)
    for k, f in again.findings.items():
        assert f.shrunk and f.seed == first.findings[k].seed and len(f.lines) <= 8
        text = (tmp_path / f"{k}.scn").read_text()
        assert f"shrunk to {len(f.lines)}" in text
        assert check_with_exit(parse_text(text), "lazy-no-upgrade-on-mremap") is not None


def test_a_finding_that_no_longer_fails_is_kept_not_shrunk() -> None:
    """A campaign resumed after a fix shrinks findings of the old code: they
    are kept, marked, and the campaign goes on (it used to stop with an
    AssertionError traceback)."""
    from rmaplab.fuzz.campaign import Finding, shrink_finding

    f = Finding("lazy", "rmap_walk of folio N (index N, N pages) misses page N mapped by P at "
                "page N", "old message", 1729, 3, ["P0 mmap @0 1 rw", "P0 write 0..0",
                                                   "P0 fork P1"], shrunk=False)
    g = shrink_finding(f, ["lazy"])
    assert g.shrunk and g.lines == f.lines
    assert g.message.startswith("old message [not shrunk: no longer fails this way")


def test_an_old_checkpoint_is_rekeyed_and_its_files_follow(tmp_path: Path) -> None:
    c = Campaign(["classic", "lazy"], seed=1, ops=200, ops_per_scenario=200, per_shard=1,
                 out=tmp_path)
    old = {"design": "differential", "signature": "classic: error N: EFAULT; lazy: ok)",
           "message": "designs disagree at line 5 (classic: error 5: EFAULT; lazy: ok)",
           "seed": 10, "original_lines": 200, "lines": DIFF_SEED10.splitlines()}
    (tmp_path / "campaign.json").write_text(json.dumps(
        {"params": c.params(), "shards": {}, "findings": [old]}))
    c.load()
    (f,) = c.findings.values()
    assert f.signature == "classic: error N: EFAULT; lazy: ok" and f.shrunk
    assert (tmp_path / f"{f.key()}.scn").read_text().startswith("# rmaplab fuzz finding")


def test_a_finding_names_the_line_its_file_fails_at(tmp_path: Path) -> None:
    """The header's 'at line L' is the line 'rmaplab check' reports for the
    file as written (it used to count the scenario without its header)."""
    import re

    from rmaplab.check import check_with_exit
    from rmaplab.scenario.parse import parse_file

    camp = Campaign(["lazy-single-address"], seed=1, ops=2000, out=tmp_path)
    camp.run()
    (f,) = tmp_path.glob("*.scn")
    head = re.search(r"^# violation: .*; at line (\d+) ", f.read_text(), re.M)
    assert head is not None
    v = check_with_exit(parse_file(f), "lazy-single-address")
    assert v is not None and v.line == int(head.group(1))
