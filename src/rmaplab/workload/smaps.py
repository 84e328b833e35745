"""Parse ``/proc/PID/smaps`` dumps into typed VMA records.

>>> vs = parse_smaps_text('''\\
... 12c00000-12c40000 rw-p 00000000 00:00 0   [anon:dalvik-main space]
... Anonymous:           256 kB
... Shared_Dirty:         16 kB
... VmFlags: rd wr mr mw me ac
... ''', "x.smaps")
>>> v = vs[0]; (v.pages, v.anon_kb, v.shared_kb, v.kind)
(64, 256, 16, 'anon')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from rmaplab.errors import ScenarioError

_HEAD = re.compile(r"([0-9a-f]+)-([0-9a-f]+) ([-r][-w][-x][ps]) ([0-9a-f]+) (\S+) (\d+)\s*(.*)$")
SPECIAL = ("[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]", "[vectors]", "[sigpage]",
           "[uprobes]")


@dataclass
class SmapsVma:
    """One VMA of an smaps dump (sizes in kB, as smaps prints them)."""

    start: int
    end: int
    perms: str
    offset: int
    inode: int
    name: str
    line: int
    anon_kb: int = 0
    swap_kb: int = 0
    shared_clean_kb: int = 0
    shared_dirty_kb: int = 0
    private_dirty_kb: int = 0
    flags: set[str] = field(default_factory=set)

    @property
    def pages(self) -> int:
        return (self.end - self.start) // 4096

    @property
    def shared_kb(self) -> int:
        return self.shared_clean_kb + self.shared_dirty_kb

    @property
    def private(self) -> bool:
        return self.perms[3] == "p"

    @property
    def kind(self) -> str:
        """'special' (vdso...), 'device' (VM_IO/VM_PFNMAP), 'shared',
        'file' (private file-backed) or 'anon' (private anonymous)."""
        if self.name in SPECIAL:
            return "special"
        if self.flags & {"io", "pf"}:
            return "device"
        if not self.private:
            return "shared"
        if self.inode != 0 and self.name.startswith("/"):
            return "file"
        return "anon"

    @property
    def faulted(self) -> bool:
        """Holds anonymous pages (present or swapped): has an anon_vma today."""
        return self.private and (self.anon_kb > 0 or self.swap_kb > 0)

    @property
    def inherited(self) -> bool:
        """Anonymous pages shared with another process: only fork shares
        anonymous pages (KSM aside), so the VMA came from the zygote.  For a
        private file VMA only dirty shared pages are anonymous (COW'd)."""
        if not self.faulted:
            return False
        if self.kind == "anon":
            return self.shared_kb > 0
        if self.kind == "file":
            return self.shared_dirty_kb > 0
        return False


def parse_smaps_text(text: str, path: str) -> list[SmapsVma]:
    vmas: list[SmapsVma] = []
    cur: SmapsVma | None = None
    keys = {"Anonymous": "anon_kb", "Swap": "swap_kb", "Shared_Clean": "shared_clean_kb",
            "Shared_Dirty": "shared_dirty_kb", "Private_Dirty": "private_dirty_kb"}
    for n, line in enumerate(text.splitlines(), 1):
        m = _HEAD.match(line)
        if m:
            s, e = int(m.group(1), 16), int(m.group(2), 16)
            if e <= s or s % 4096 or e % 4096:
                raise ScenarioError(path, n, f"bad VMA range {m.group(1)}-{m.group(2)}")
            cur = SmapsVma(s, e, m.group(3), int(m.group(4), 16), int(m.group(6)),
                           m.group(7).strip(), n)
            vmas.append(cur)
            continue
        if not line.strip():
            continue
        if cur is None:
            raise ScenarioError(path, n, "smaps field before the first VMA line")
        key, sep, val = line.partition(":")
        if not sep:
            raise ScenarioError(path, n, f"not an smaps line: {line[:40]!r}")
        if key == "VmFlags":
            cur.flags = set(val.split())
        elif key in keys:
            try:
                setattr(cur, keys[key], int(val.split()[0]))
            except (ValueError, IndexError):
                raise ScenarioError(path, n, f"bad {key} value {val.strip()!r}") from None
    if not vmas:
        raise ScenarioError(path, 1, "no VMA found (not an smaps dump?)")
    for a, b in zip(vmas, vmas[1:]):
        if b.start < a.end:
            raise ScenarioError(path, b.line, "VMAs overlap or are out of order")
    return vmas


def parse_smaps(path: str | Path) -> list[SmapsVma]:
    """Parse a ``/proc/PID/smaps`` dump (gzip-compressed if it ends in .gz)."""
    import gzip
    import zlib

    p = str(path)
    try:
        raw = Path(p).read_bytes()
        if p.endswith(".gz"):
            raw = gzip.decompress(raw)
    except OSError as e:
        raise ScenarioError(p, 0, f"cannot read: {getattr(e, 'strerror', None) or e}") from None
    except (EOFError, zlib.error) as e:
        raise ScenarioError(p, 0, f"not a gzip file or truncated: {e}") from None
    return parse_smaps_text(raw.decode(errors="replace"), p)
