"""The kernel lock (rmaplab.kernel.runner.kernel_lock): mutual exclusion
across processes, an announcement naming the holder, running under a
caller's own flock, and no lock file left in /tmp afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HOLD = """
import sys, time
from rmaplab.kernel.runner import kernel_lock
with kernel_lock():
    print("got", flush=True)
    time.sleep(float(sys.argv[1]))
print("released", flush=True)
"""


def _env(lock: Path) -> dict[str, str]:
    return {**os.environ, "RMAPLAB_KERNEL_LOCK": str(lock)}


def test_second_holder_waits_names_the_first_and_nothing_is_left(tmp_path: Path) -> None:
    lock = tmp_path / "k.lock"
    a = subprocess.Popen([sys.executable, "-c", HOLD, "1.5"], env=_env(lock),
                         stdout=subprocess.PIPE, text=True)
    assert a.stdout is not None and a.stdout.readline().strip() == "got"
    t0 = time.monotonic()
    b = subprocess.run([sys.executable, "-c", HOLD, "0"], env=_env(lock), capture_output=True,
                       text=True, timeout=60)
    waited = time.monotonic() - t0
    a.wait(timeout=60)
    assert b.returncode == 0 and b.stdout.split() == ["got", "released"]
    assert f"held by pid {a.pid}" in b.stderr
    assert waited > 0.5  # it did wait for A
    assert not lock.exists()  # the last holder removed it


def test_three_in_a_row_stay_exclusive(tmp_path: Path) -> None:
    """Removing the file on release must not let two holders in at once: each
    holder appends its start and end to a log; the intervals never overlap."""
    lock, log = tmp_path / "k.lock", tmp_path / "log"
    prog = f"""
import time
from rmaplab.kernel.runner import kernel_lock
for _ in range(5):
    with kernel_lock(announce=False):
        with open({str(log)!r}, "a") as f:
            f.write("in\\n")
        time.sleep(0.02)
        with open({str(log)!r}, "a") as f:
            f.write("out\\n")
"""
    ps = [subprocess.Popen([sys.executable, "-c", prog], env=_env(lock)) for _ in range(3)]
    for p in ps:
        assert p.wait(timeout=120) == 0
    lines = log.read_text().split()
    assert len(lines) == 30 and lines == ["in", "out"] * 15
    assert not lock.exists()


@pytest.mark.skipif(shutil.which("flock") is None, reason="util-linux flock not installed")
def test_runs_under_the_callers_flock(tmp_path: Path) -> None:
    lock = tmp_path / "k.lock"
    r = subprocess.run(["flock", str(lock), sys.executable, "-c", HOLD, "0"], env=_env(lock),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.split() == ["got", "released"], r.stderr
    assert "waiting" not in r.stderr
