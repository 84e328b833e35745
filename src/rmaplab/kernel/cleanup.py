"""Remove what a killed rmaplab run left behind (tracefs instances, temp dirs).

A run killed with SIGKILL cannot clean up: its private tracefs instance
(``rmaplab_<pid>_<n>``, see :mod:`rmaplab.kernel.counters` and
:mod:`rmaplab.trace.record`) keeps its events enabled and its ring buffer
allocated, and its temporary directory stays in /tmp.  :func:`sweep_stale`,
called at the start of each recording, removes them when their owner is dead:

* instances ``rmaplab_<pid>_<n>`` and directories ``rmaplab-t-<pid>-*`` (and
  ``rmaplab-k-<pid>-*``) carry their owner's pid: they are stale when no
  process has that pid, or when the process that has it started after the
  object was created (the pid was reused);
* directories ``rmaplab-k-*`` made by the kernel runner carry no pid.  The
  runner creates and removes them while it holds
  :func:`rmaplab.kernel.runner.kernel_lock`, so a caller that holds that lock
  may treat every such directory as stale, unless some process still has a
  file open in it or its working directory inside it (then it is kept).

:func:`sweep_stale` must be called with the kernel lock held.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from rmaplab.kernel.counters import tracefs_root

_INSTANCE = re.compile(r"rmaplab_(\d+)_\d+$")
_TMP_PID = re.compile(r"rmaplab-[tk]-(\d+)-")


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def _start_time(pid: int) -> float | None:
    """Wall-clock start time of process ``pid`` (None: no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    ticks = int(stat.rsplit(")", 1)[1].split()[19])
    return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")


def owner_dead(pid: int, created: float) -> bool:
    """True if process ``pid`` cannot be the owner of something made at ``created``."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    started = _start_time(pid)
    if started is None:
        return True
    if created < _boot_time():
        return False  # no usable creation time: only a dead pid counts
    return started > created + 2.0  # pid reused after the object was made


def _in_use(d: Path) -> bool:
    """Some process has a file open under ``d`` or its cwd there."""
    prefix = str(d)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        links = [proc / "cwd"]
        with contextlib.suppress(OSError):
            links += list((proc / "fd").iterdir())
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target == prefix or target.startswith(prefix + "/"):
                return True
    return False


def _remove_instance(d: Path) -> None:
    for rel, value in (("tracing_on", "0"), ("events/enable", "0"), ("set_event_pid", ""),
                       ("trace", "")):
        with contextlib.suppress(OSError):
            (d / rel).write_text(value)
    for _ in range(25):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)
    d.rmdir()


def _tmp_dirs() -> list[Path]:
    out = []
    for base in dict.fromkeys(("/tmp", tempfile.gettempdir())):
        with contextlib.suppress(OSError):
            out += sorted(p for p in Path(base).iterdir()
                          if p.name.startswith(("rmaplab-t-", "rmaplab-k-")) and p.is_dir()
                          and not p.is_symlink())
    return out


def sweep_stale() -> list[str]:
    """Remove stale rmaplab tracefs instances and temp directories; say what.

    Returns one description per removed object (``tracefs instance
    /sys/kernel/tracing/instances/rmaplab_123_1 (owner 123 dead)``).  Objects
    that cannot be removed are reported with ``could not remove`` and left.
    """
    done: list[str] = []
    root = tracefs_root()
    if root is not None:
        inst = root / "instances"
        with contextlib.suppress(OSError):
            for d in sorted(inst.iterdir()):
                m = _INSTANCE.match(d.name)
                if not m:
                    continue
                pid = int(m.group(1))
                try:
                    created = d.stat().st_mtime
                except OSError:
                    continue
                if not owner_dead(pid, created):
                    continue
                try:
                    _remove_instance(d)
                    done.append(f"tracefs instance {d} (owner {pid} dead)")
                except OSError as e:
                    done.append(f"could not remove tracefs instance {d}: {e.strerror or e}")
    for d in _tmp_dirs():
        m = _TMP_PID.match(d.name)
        try:
            created = d.stat().st_mtime
        except OSError:
            continue
        if m:
            pid = int(m.group(1))
            if not owner_dead(pid, created):
                continue
            why = f"owner {pid} dead"
        else:
            if _in_use(d):
                continue
            why = "left by a kernel run"
        shutil.rmtree(d, ignore_errors=True)
        if d.exists():
            done.append(f"could not remove temporary directory {d}")
        else:
            done.append(f"temporary directory {d} ({why})")
    return done
