"""A live-kernel run killed with SIGKILL leaves its tracefs instance and temp
directory; the next run that takes the kernel lock removes them and says so
(rmaplab.kernel.runner.kernel_lock -> rmaplab.kernel.cleanup.sweep_stale)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from conftest import leftovers

ROOT = Path(__file__).resolve().parents[1]


def _leftovers_of(pid: int) -> list[str]:
    inst = Path("/sys/kernel/tracing/instances")
    mine = [p.name for p in inst.glob(f"rmaplab_{pid}_*")] if inst.is_dir() else []
    return mine + [p.name for p in Path("/tmp").glob(f"rmaplab-k-{pid}-*")]


def test_kernel_run_killed_then_swept(clean_kernel: None, tmp_path: Path) -> None:
    scn = tmp_path / "long.scn"
    r = subprocess.run([sys.executable, "-m", "rmaplab", "generate", "--seed", "7", "--ops",
                        "4000"], capture_output=True, text=True, check=True)
    scn.write_text(r.stdout)
    p = subprocess.Popen([sys.executable, "-m", "rmaplab", "kernel", str(scn)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(_leftovers_of(p.pid)) < 2 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.02)
    assert p.poll() is None, "the run ended before it could be killed: make it longer"
    p.kill()
    p.wait()
    left = _leftovers_of(p.pid)
    assert any(x.startswith("rmaplab_") for x in left) and any(
        x.startswith("rmaplab-k-") for x in left), left
    time.sleep(0.5)  # the workers die with their parent (PDEATHSIG)
    small = tmp_path / "small.scn"
    small.write_text("P0 mmap @0 4 rw\nP0 write 0..3\nmeasure\n")
    r = subprocess.run([sys.executable, "-m", "rmaplab", "kernel", str(small)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "removed stale" in r.stderr and str(p.pid) in r.stderr
    assert _leftovers_of(p.pid) == [] and leftovers() == []
