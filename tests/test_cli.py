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
