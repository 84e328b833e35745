"""The command line: outputs, exit statuses, bad input never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from rmaplab.cli import main

EXAMPLE = ROOT / "scenarios" / "example.scn"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rmaplab", *args], capture_output=True,
                          text=True, cwd=ROOT)


def test_run_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "measure 12: anon_vma=1 avc=1"
    assert out[-1] == "measure 24: anon_vma=0 avc=0"


def test_several_files_get_headers(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "b.scn"
    f.write_text("P0 mmap @0 1\nmaps P0\n")
    assert main(["run", str(EXAMPLE), str(f)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"== {EXAMPLE}"
    assert f"== {f}" in out
    assert out[-1] == "maps P0: 0..0:rw-"


def test_bad_input_exit_2_one_line_nothing_on_stdout(tmp_path: Path) -> None:
    good = tmp_path / "good.scn"
    good.write_text("P0 mmap @0 1\nmeasure\n")
    bad = tmp_path / "bad.scn"
    bad.write_text("P0 mmap @0 1\nP3 write 0..0\n")
    r = run_cli("run", str(good), str(bad))
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"rmaplab: {bad}:2: undefined process P3: create it with 'Px fork P3' first"]
    assert "Traceback" not in r.stderr


def test_unknown_design_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--design", "nope", str(EXAMPLE)]) == 2
    assert "unknown design 'nope'" in capsys.readouterr().err


def test_check_reports_pass_and_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--design", "classic", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"PASS {EXAMPLE}", "1 passed, 0 failed"]


def test_kernel_without_root_says_so(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    import os

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["kernel", str(EXAMPLE)]) == 3
    err = capsys.readouterr().err
    assert "live kernel unavailable" in err and "needs root" in err


def test_generate_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    main(["generate", "--seed", "5", "--ops", "30"])
    a = capsys.readouterr().out
    main(["generate", "--seed", "5", "--ops", "30"])
    assert capsys.readouterr().out == a
    assert len(a.splitlines()) == 30


BAD_ARGS = [
    (["fuzz", "--design", "classic", "--ops", "-5"], "must be at least 1"),
    (["fuzz", "--design", "classic", "--ops", "0"], "must be at least 1"),
    (["fuzz", "--design", "classic", "--seconds", "-1"], "positive number of seconds"),
    (["fuzz", "--design", "classic", "--ops", "10", "--ops-per-scenario", "0"], "at least 1"),
    (["fuzz", "--design", "classic"], "exactly one of --ops N or --seconds N"),
    (["fuzz", "--design", "classic", "--ops", "10", "--out", "/etc/passwd"], "not a directory"),
    (["fuzz", "--design", "classic", "--ops", "10", "--out", "/proc/nope"], "cannot write"),
    (["fuzz", "--design", "classic", "--ops", "10", "--dask", "nonsense"], "scheduler address"),
    (["generate", "--ops", "-5"], "must be at least 1"),
    (["bench", "--vmas", "-1"], "must be at least 1"),
    (["bench", "--children", "0"], "must be at least 1"),
    (["explore", "--random", "-3", "x.lit"], "must be at least 0"),
    (["explore", "--depth", "0", "x.lit"], "must be at least 1"),
    (["kernel", "--repeat", "0", "x.scn"], "must be at least 1"),
    (["record", "--runs", "0", "x.scn"], "must be at least 1"),
    (["check", "--random", "10", "--ops-per-scenario", "0"], "must be at least 1"),
    (["check", "--random", "10", "scenarios/example.scn"], "give no FILE"),
    (["explore", "--table", "--random", "3", "scenarios/litmus/fork-vs-walk.lit"], "--table"),
    (["run", "--design", "lazy:", "scenarios/example.scn"], "nothing after ':'"),
    (["run", "--design", "lazy:foo=bar", "scenarios/example.scn"], "has no option 'foo'"),
    (["run", "--design", "lazy:merge=sometimes", "scenarios/example.scn"], "must be one of"),
    (["run", "--design", "classic:merge=upgrade", "scenarios/example.scn"], "options are none"),
    (["verdicts", "scenarios/example.scn"], "no '# expect:"),
    (["generate", "--ops", "\u0664"], "whole number"),
]


@pytest.mark.parametrize("argv,msg", BAD_ARGS, ids=[" ".join(a) for a, _ in BAD_ARGS])
def test_bad_arguments_are_one_line_and_exit_2(argv: list[str], msg: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors
        rc = e.code  # type: ignore[assignment]
    assert rc == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_bad_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for content in (b'{"params": ', b"\xff\xfe", b"[1, 2]"):
        (tmp_path / "campaign.json").write_bytes(content)
        assert main(["fuzz", "--design", "classic", "--ops", "10", "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "not a campaign checkpoint" in err and len(err.strip().splitlines()) == 1


def test_designs_lists_every_design(capsys: pytest.CaptureFixture[str]) -> None:
    from rmaplab.designs import DESIGNS

    assert main(["designs"]) == 0
    out = capsys.readouterr().out
    for name in DESIGNS:
        assert any(line.split()[0] == name for line in out.splitlines() if line[:1] != " ")
    assert "lazy [merge=same-root|keep-both|upgrade]" in out
