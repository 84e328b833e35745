"""An Android-like workload built from real app ``/proc/PID/smaps`` dumps.

``rmaplab workload android --apps 24`` writes a scenario in which zygote
processes fork apps, each app's address space being one of the real dumps
(shared/data/android-smaps: 2.9k-4.1k VMAs each), scaled into the scenario
language.  Where every parameter comes from:

* VMAs, their order, permissions, backing (anonymous, private file, shared,
  device) and offsets: the dumps, one VMA per dump VMA except ``[vdso]``,
  ``[vvar]`` and the like (kernel special mappings, not modellable).
* Which VMAs hold anonymous pages (and so, today, an anon_vma): the dump's
  ``Anonymous:`` or ``Swap:`` field.
* Which VMAs the app inherited from the zygote: those whose anonymous
  pages are shared (``Shared_Clean``/``Shared_Dirty`` > 0 for anonymous
  VMAs, ``Shared_Dirty`` > 0 for private file VMAs): only fork shares
  anonymous pages (KSM aside).  Inherited VMAs whose pages the app has all
  COW'd cannot be told apart and are built by the app itself (this
  undercounts fork-child VMAs: conservative for today's design).
* Which inherited VMAs the app wrote to (COW): ``Private_Dirty`` > 0.
* ``VmFlags``: ``dc`` -> MADV_DONTFORK, ``wf`` -> MADV_WIPEONFORK, ``hg``/``nh``
  -> MADV_(NO)HUGEPAGE; ``nr`` (MAP_NORESERVE) is not in the scenario
  language and is dropped.
* Apps per dump: the dumps are used in turn (24 apps = 6 of each); each dump
  comes from a different device, so each gets its own zygote process.
* Apps that fork: ``--fork-fraction`` (default 0.41, "41% of top apps fork
  at run time", issue #3; apps fork to evade LMKD, linux-mm thread); a
  forking app forks one helper that COWs a page in up to 8 VMAs and lives on.
* File offsets: private file VMAs keep their real offsets (COW'd pages are
  keyed by file offset today and in the CoW context's remap tree); shared
  and device mappings get compressed ones.
* Scaling: each VMA becomes at most ``--max-pages`` pages (default 4) and
  at most ``--touch-pages`` pages are written (default 2); anon_vma and chain
  counts depend only on which VMAs are faulted, not on how many pages.
  Adjacent VMAs stay adjacent unless they would merge in the scenario (the
  real ones are kept apart by names or flags the language does not model),
  in which case a one-page gap separates them; real gaps become one page.
  Zygote VMAs go at the bottom of the arena, each app's own VMAs above.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from rmaplab.errors import UsageError
from rmaplab.machine.constants import HPAGE_PMD_NR
from rmaplab.workload.smaps import SmapsVma, parse_smaps

#: the four dumps that ship with rmaplab (gzip-compressed; see the README there)
DEFAULT_SMAPS_DIRS = (Path(__file__).resolve().parent / "data" / "android-smaps",)


@dataclass
class AndroidParams:
    apps: int = 24
    fork_fraction: float = 0.41
    seed: int = 1
    max_pages: int = 4
    touch_pages: int = 2
    smaps: list[Path] = field(default_factory=list)


def find_smaps(dir_: str | None) -> list[Path]:
    """The dumps to use: ``dir_`` or the ones shipped with rmaplab
    (``*.smaps`` or ``*.smaps.gz``)."""
    cands = [Path(dir_)] if dir_ else list(DEFAULT_SMAPS_DIRS)
    for d in cands:
        files = sorted([*d.glob("*.smaps"), *d.glob("*.smaps.gz")]) if d.is_dir() else []
        if files:
            return files
    where = dir_ or " or ".join(str(c) for c in DEFAULT_SMAPS_DIRS)
    raise UsageError(f"no *.smaps or *.smaps.gz dumps in {where}: pass --smaps DIR")


def _prot(perms: str) -> str:
    p = perms[:3].replace("-", "")
    return p or "none"


def _fname(profile: int, name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]", "_", name.strip("/"))[-60:] or "anon"
    return f"p{profile}.{s}"


def _would_merge(a: SmapsVma, b: SmapsVma) -> bool:
    """Could two adjacent dump VMAs merge once their names are gone?"""
    if a.perms != b.perms or a.kind != b.kind:
        return False
    if a.kind in ("anon", "device", "shared"):
        return a.name == b.name or a.kind == "anon"
    return a.name == b.name


class _Builder:
    def __init__(self, profile: int, vmas: list[SmapsVma], p: AndroidParams) -> None:
        self.profile = profile
        self.p = p
        self.vmas = [v for v in vmas if v.kind != "special"]
        self.zygote = [v for v in self.vmas if v.inherited]
        self.own = [v for v in self.vmas if not v.inherited]
        self.place: dict[int, tuple[int, int]] = {}  # id(v) -> (page, npages)
        self.file_off: dict[int, int] = {}
        self._scale_offsets()

    def _scale_offsets(self) -> None:
        """Private file VMAs keep their real file offset (in pages): where
        COW'd file pages sit in pgoff space matters to designs keyed by it
        (the CoW context's remap tree).  Shared and device mappings, never
        anonymous, get compressed offsets per file (contiguity kept)."""
        by_file: dict[str, list[SmapsVma]] = {}
        for v in self.vmas:
            if v.kind == "file":
                self.file_off[id(v)] = v.offset // 4096
            elif v.kind in ("shared", "device") and v.name:
                by_file.setdefault(v.name, []).append(v)
        for vs in by_file.values():
            vs.sort(key=lambda v: v.offset)
            pos = 0
            prev_end = None
            for v in vs:
                if prev_end is not None and v.offset != prev_end:
                    pos += 1
                self.file_off[id(v)] = pos
                pos += self.npages(v)
                prev_end = v.offset + (v.end - v.start)

    def npages(self, v: SmapsVma) -> int:
        return max(1, min(v.pages, self.p.max_pages))

    def layout(self, vmas: list[SmapsVma], base: int) -> int:
        pos = base
        prev: SmapsVma | None = None
        for v in vmas:
            if prev is not None and (v.start != prev.end or _would_merge(prev, v)):
                pos += 1
            n = self.npages(v)
            self.place[id(v)] = (pos, n)
            pos += n
            prev = v
        return pos

    def mmap_lines(self, proc: str, v: SmapsVma, writer: bool) -> list[str]:
        page, n = self.place[id(v)]
        prot = _prot(v.perms)
        first_prot = "rw" if writer and "w" not in prot else prot
        opts = [first_prot]
        if v.kind == "file":
            opts += [f"file={_fname(self.profile, v.name)}", f"off={self.file_off[id(v)]}"]
        elif v.kind in ("shared", "device"):
            opts.append("shared")
            if v.name and not v.name.startswith("[anon"):
                off = self.file_off.get(id(v), 0)
                opts += [f"file={_fname(self.profile, v.name)}", f"off={off}"]
        out = [f"{proc} mmap @{page} {n} {' '.join(opts)}"]
        last = page + n - 1
        if "dc" in v.flags:
            out.append(f"{proc} madvise {page}..{last} dontfork")
        if "wf" in v.flags and v.kind == "anon":
            out.append(f"{proc} madvise {page}..{last} wipeonfork")
        if "hg" in v.flags:
            out.append(f"{proc} madvise {page}..{last} hugepage")
        if "nh" in v.flags:
            out.append(f"{proc} madvise {page}..{last} nohugepage")
        return out

    def touch_lines(self, proc: str, v: SmapsVma, kb: int) -> list[str]:
        page, n = self.place[id(v)]
        k = max(1, min(n, self.p.touch_pages, -(-kb // 4)))
        return [f"{proc} write {page}..{page + k - 1}"]

    def finish_lines(self, proc: str, v: SmapsVma, writer: bool) -> list[str]:
        if writer and "w" not in _prot(v.perms):
            page, n = self.place[id(v)]
            return [f"{proc} mprotect {page}..{page + n - 1} {_prot(v.perms)}"]
        return []

    def build(self, proc: str, vmas: list[SmapsVma]) -> list[str]:
        out: list[str] = []
        for v in vmas:
            w = v.faulted
            out += self.mmap_lines(proc, v, w)
            if w:
                out += self.touch_lines(proc, v, max(v.anon_kb, v.swap_kb, 4))
            out += self.finish_lines(proc, v, w)
        return out


def generate_android(p: AndroidParams) -> str:
    """The workload scenario text (deterministic for given parameters)."""
    if p.apps < 1:
        raise UsageError("--apps must be at least 1")
    if not 0.0 <= p.fork_fraction <= 1.0:
        raise UsageError("--fork-fraction must be between 0 and 1")
    if not p.smaps:
        raise UsageError("no smaps dumps given")
    rng = random.Random(p.seed)
    builders = []
    for k, path in enumerate(p.smaps):
        b = _Builder(k, parse_smaps(path), p)
        top = b.layout(b.zygote, 0)
        app_base = -(-(top + 1) // HPAGE_PMD_NR) * HPAGE_PMD_NR
        b.layout(b.own, app_base)
        builders.append(b)
    lines = [
        "# Android-like workload generated by 'rmaplab workload android'",
        f"# apps={p.apps} fork_fraction={p.fork_fraction} seed={p.seed} "
        f"max_pages={p.max_pages} touch_pages={p.touch_pages}",
        "# dumps: " + ", ".join(f"{i}={s.name}" for i, s in enumerate(p.smaps)),
        "# P0 is init; P1..Pn are the zygotes (one per dump); then apps and helpers.",
    ]
    names = iter(f"P{i}" for i in range(1, 1_000_000))
    zygotes = []
    for b in builders:
        z = next(names)
        zygotes.append(z)
        lines.append(f"P0 fork {z}")
        lines += b.build(z, b.zygote)
    lines.append("measure")
    for i in range(p.apps):
        b = builders[i % len(builders)]
        z = zygotes[i % len(builders)]
        app = next(names)
        lines.append(f"{z} fork {app}")
        lines += b.build(app, b.own)
        for v in b.zygote:  # COW of inherited pages the app dirtied
            if v.private_dirty_kb > 0 and "w" in _prot(v.perms):
                lines += b.touch_lines(app, v, 4)
        if rng.random() < p.fork_fraction:
            helper = next(names)
            lines.append(f"{app} fork {helper}")
            faulted = [v for v in b.own if v.faulted and "w" in _prot(v.perms)
                       and "dc" not in v.flags and "wf" not in v.flags]
            for v in rng.sample(faulted, min(8, len(faulted))):
                lines += b.touch_lines(helper, v, 4)
    lines.append("measure")
    return "\n".join(lines) + "\n"
