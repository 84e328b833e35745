"""Exact counts of live ``anon_vma`` and ``anon_vma_chain`` objects on the
running kernel.

Two methods, chosen by :func:`make_counter`:

``trace`` (default where tracefs is available)
    A private tracefs instance records ``kmem:kmem_cache_alloc`` and
    ``kmem:kmem_cache_free`` for the scenario's processes only
    (``set_event_pid`` with the ``event-fork`` option, so every forked
    worker is followed).  anon_vma events are those of the ``anon_vma``
    cache (it has a constructor, so SLUB never merges it).  On 6.18 the
    ``anon_vma_chain`` cache is merged with other 64-byte caches
    (``/sys/kernel/slab/anon_vma_chain`` is a link to ``:A-0000064``), so its
    events are recognised by call site instead: the functions of mm/rmap.c
    that allocate (``anon_vma_clone``, ``anon_vma_fork``,
    ``__anon_vma_prepare``) and free (``unlink_anon_vmas``,
    ``__anon_vma_prepare``, ``anon_vma_fork``) chains.  The count is
    allocations minus frees: exact, and immune to the rest of the machine.

``slab``
    Write ``1`` to ``/sys/kernel/slab/<cache>/shrink`` and read
    ``/sys/kernel/slab/<cache>/objects``: after a shrink this counts live
    objects, machine-wide.  Other activity shifts the 64-byte cache, so the
    runner repeats a run until readings agree.
"""

from __future__ import annotations

import atexit
import os
import re
from pathlib import Path

from rmaplab.errors import KernelUnavailable

SLAB = Path("/sys/kernel/slab")
TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))

#: Functions (mm/rmap.c, Linux 6.18) whose kmem_cache events concern chains.
AVC_ALLOC_SITES = frozenset({"anon_vma_clone", "anon_vma_fork", "__anon_vma_prepare"})
AVC_FREE_SITES = frozenset({"unlink_anon_vmas", "__anon_vma_prepare", "anon_vma_fork"})
_EVENT = re.compile(r"(kmem_cache_alloc|kmem_cache_free): call_site=([^+\s]+)\S* ptr=\S+ name=(\S+)")


class Counter:
    """Counts of live (anon_vma, anon_vma_chain) objects since :meth:`start`."""

    def start(self, root_pid: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def read(self) -> tuple[int, int]:  # pragma: no cover - interface
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


def tracefs_root() -> Path | None:
    """The mounted tracefs, mounting it at /sys/kernel/tracing if needed."""
    for p in TRACEFS_CANDIDATES:
        if (p / "instances").is_dir():
            return p
    p = TRACEFS_CANDIDATES[0]
    if p.is_dir() and os.geteuid() == 0:
        os.system(f"mount -t tracefs nodev {p} >/dev/null 2>&1")
        if (p / "instances").is_dir():
            # leave the machine as we found it: unmount what we mounted
            atexit.register(_umount_tracefs, p)
            return p
    return None


def _umount_tracefs(p: Path) -> None:
    """Undo :func:`tracefs_root`'s mount, unless someone else uses it now."""
    if (p / "instances").is_dir() and not any((p / "instances").iterdir()):
        os.system(f"umount {p} >/dev/null 2>&1")


def parse_trace(text: str) -> tuple[int, int]:
    """Net (anon_vma, anon_vma_chain) allocations in a tracefs ``trace`` dump.

    >>> parse_trace('''
    ... w-1 [000] ..... 1.0: kmem_cache_alloc: call_site=__anon_vma_prepare+0x5/0x9 ptr=0x1 name=anon_vma bytes_req=96
    ... w-1 [000] ..... 1.0: kmem_cache_alloc: call_site=__anon_vma_prepare+0x9/0x9 ptr=0x2 name=fs_cache bytes_req=64
    ... w-1 [000] ..... 1.1: kmem_cache_alloc: call_site=copy_fs_struct+0x1/0x9 ptr=0x3 name=fs_cache bytes_req=64
    ... w-1 [000] ..... 1.2: kmem_cache_free: call_site=unlink_anon_vmas+0x1/0x9 ptr=0x2 name=fs_cache
    ... ''')
    (1, 0)
    """
    av = avc = 0
    for m in _EVENT.finditer(text):
        ev, site, name = m.group(1), m.group(2), m.group(3)
        alloc = ev == "kmem_cache_alloc"
        if name == "anon_vma":
            av += 1 if alloc else -1
        elif alloc and site in AVC_ALLOC_SITES:
            avc += 1
        elif not alloc and site in AVC_FREE_SITES:
            avc -= 1
    return av, avc


class TraceCounter(Counter):
    """Counts by tracing kmem_cache events of the scenario's process tree."""

    _seq = 0

    def __init__(self, root: Path) -> None:
        TraceCounter._seq += 1
        self.dir = root / "instances" / f"rmaplab_{os.getpid()}_{TraceCounter._seq}"

    def _w(self, rel: str, value: str) -> None:
        (self.dir / rel).write_text(value)

    def start(self, root_pid: int) -> None:
        if self.dir.exists():
            self.stop()
        self.dir.mkdir()
        self._w("tracing_on", "0")
        self._w("buffer_size_kb", "16384")
        self._w("options/event-fork", "1")
        self._w("set_event_pid", str(root_pid))
        sites = sorted(AVC_ALLOC_SITES | AVC_FREE_SITES)
        filt = " || ".join(['name == "anon_vma"'] + [f"call_site.function == {s}" for s in sites])
        for ev in ("kmem_cache_alloc", "kmem_cache_free"):
            try:
                self._w(f"events/kmem/{ev}/filter", filt)
            except OSError:
                pass  # older kernels: no .function filters; classify in userspace
            self._w(f"events/kmem/{ev}/enable", "1")
        self._w("tracing_on", "1")

    def read(self) -> tuple[int, int]:
        text = (self.dir / "trace").read_text()
        if "LOST" in text and "EVENTS]" in text:
            raise KernelUnavailable(f"trace buffer overflowed in {self.dir}")
        return parse_trace(text)

    def stop(self) -> None:
        if not self.dir.exists():
            return
        try:
            self._w("tracing_on", "0")
            for ev in ("kmem_cache_alloc", "kmem_cache_free"):
                self._w(f"events/kmem/{ev}/enable", "0")
        except OSError:
            pass
        try:
            self.dir.rmdir()
        except OSError:
            pass


class SlabCounter(Counter):
    """Counts by shrinking the slab caches and reading their object counts."""

    CACHES = ("anon_vma", "anon_vma_chain")

    def __init__(self) -> None:
        self.base = (0, 0)

    @staticmethod
    def _read(cache: str) -> int:
        d = SLAB / cache
        (d / "shrink").write_text("1")
        return int((d / "objects").read_text().split()[0])

    @classmethod
    def _objects(cache_cls, cache: str) -> int:
        """Shrink and read until two readings 10 ms apart agree (anon_vma is
        SLAB_TYPESAFE_BY_RCU: emptied slabs are freed after a grace period)."""
        import time

        prev = cache_cls._read(cache)
        for _ in range(100):
            time.sleep(0.01)
            cur = cache_cls._read(cache)
            if cur == prev:
                return cur
            prev = cur
        return prev

    def snapshot(self) -> tuple[int, int]:
        a, c = self.CACHES
        return self._objects(a), self._objects(c)

    def start(self, root_pid: int) -> None:
        self.base = self.snapshot()

    def read(self) -> tuple[int, int]:
        a, c = self.snapshot()
        return a - self.base[0], c - self.base[1]

    def stop(self) -> None:
        pass


def unavailable_reason(method: str = "trace") -> str | None:
    """Why the live kernel cannot be measured here, or None if it can."""
    if os.geteuid() != 0:
        return "the live-kernel runner needs root (it writes /sys/kernel/slab/*/shrink and tracefs)"
    if not (SLAB / "anon_vma" / "objects").exists():
        return "/sys/kernel/slab/anon_vma is absent (kernel without SLUB sysfs)"
    if method == "trace" and tracefs_root() is None:
        return "tracefs is not available (try --method slab)"
    return None


def make_counter(method: str) -> Counter:
    """A counter for ``method`` ('trace' or 'slab'); raises KernelUnavailable."""
    why = unavailable_reason(method)
    if why:
        raise KernelUnavailable(why)
    if method == "trace":
        root = tracefs_root()
        assert root is not None
        return TraceCounter(root)
    if method == "slab":
        return SlabCounter()
    raise KernelUnavailable(f"unknown counting method {method!r}: use trace or slab")
