"""mm/madvise.c: madvise(2) (Linux 6.18)."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from rmaplab.machine.flags import (
    VM_DONTCOPY,
    VM_DONTDUMP,
    VM_HUGEPAGE,
    VM_LOCKED,
    VM_MERGEABLE,
    VM_NOHUGEPAGE,
    VM_PFNMAP,
    VM_RAND_READ,
    VM_READ,
    VM_SEQ_READ,
    VM_SHARED,
    VM_WIPEONFORK,
    VM_WRITE,
)

if TYPE_CHECKING:
    from rmaplab.machine.config import KernelConfig
    from rmaplab.machine.mm import Mm
    from rmaplab.machine.vma import Vma

ENOMEM, EINVAL, EFAULT = errno.ENOMEM, errno.EINVAL, errno.EFAULT

#: advices that only change VMA flags: name -> (flags set, flags cleared)
FLAG_ADVICE = {
    "normal": (0, VM_RAND_READ | VM_SEQ_READ),
    "random": (VM_RAND_READ, VM_SEQ_READ), "sequential": (VM_SEQ_READ, VM_RAND_READ),
    "dontfork": (VM_DONTCOPY, 0), "dofork": (0, VM_DONTCOPY),
    "wipeonfork": (VM_WIPEONFORK, 0), "keeponfork": (0, VM_WIPEONFORK),
    "hugepage": (VM_HUGEPAGE, VM_NOHUGEPAGE), "nohugepage": (VM_NOHUGEPAGE, VM_HUGEPAGE),
    "dontdump": (VM_DONTDUMP, 0), "dodump": (0, VM_DONTDUMP),
    "mergeable": (VM_MERGEABLE, 0), "unmergeable": (0, VM_MERGEABLE),
}
#: advices with no effect on VMAs, page tables or rmap in the model: a hint
#: (willneed, cold), lazy freeing that only reclaim acts on (free), or work
#: of reclaim/khugepaged the model does not run (pageout without swap,
#: collapse), or a shmem hole punch (remove)
NO_EFFECT = ("willneed", "free", "remove", "cold", "pageout", "collapse")
#: MADV_* values (include/uapi/asm-generic/mman-common.h) -> name
ADVICE_BY_NUMBER = {
    0: "normal", 1: "random", 2: "sequential", 3: "willneed", 4: "dontneed", 8: "free",
    9: "remove", 10: "dontfork", 11: "dofork", 12: "mergeable", 13: "unmergeable",
    14: "hugepage", 15: "nohugepage", 16: "dontdump", 17: "dodump", 18: "wipeonfork",
    19: "keeponfork", 20: "cold", 21: "pageout", 22: "populate_read", 23: "populate_write",
    24: "dontneed_locked", 25: "collapse",
}


class MadviseOps:
    """mm/madvise.c, as a mixin of :class:`rmaplab.machine.machine.Machine`."""

    if TYPE_CHECKING:
        config: KernelConfig

        def zap(self, mm: Mm, lo: int, hi: int, reclaim_pt: bool = False,
                what: str = "zap") -> None: ...
        def handle_mm_fault(self, mm: Mm, vma: Vma, vpn: int, write: bool) -> int: ...
        def vma_modify_flags(self, prev: Vma | None, vma: Vma, start: int, end: int,
                             flags: int) -> Vma: ...
        def mmap_read_lock(self, mm: Mm) -> None: ...
        def mmap_read_unlock(self, mm: Mm) -> None: ...
        def mmap_write_lock(self, mm: Mm) -> None: ...
        def mmap_write_unlock(self, mm: Mm) -> None: ...

    def do_madvise(self, mm: Mm, start: int, end: int, advice: str) -> int:
        """``do_madvise()`` -> ``madvise_walk_vmas``: holes are skipped and
        reported as ENOMEM at the end; an error of one VMA stops the walk.
        Flag changes take the mmap lock for write, the rest for read."""
        if advice in ("populate_read", "populate_write"):
            return self.madvise_populate(mm, start, end, advice == "populate_write")
        write = advice in FLAG_ADVICE
        (self.mmap_write_lock if write else self.mmap_read_lock)(mm)
        try:
            return self._madvise_walk(mm, start, end, advice)
        finally:
            (self.mmap_write_unlock if write else self.mmap_read_unlock)(mm)

    def _madvise_walk(self, mm: Mm, start: int, end: int, advice: str) -> int:
        vma = mm.vmas.find_vma(start)
        prev = vma if vma is not None and start > vma.start else (
            mm.vmas.prev(vma) if vma is not None else mm.vmas.prev_of(start))
        unmapped = 0
        while True:
            if vma is None:
                return -ENOMEM
            if start < vma.start:
                unmapped = -ENOMEM
                start = vma.start
                if start >= end:
                    break
            tmp = min(vma.end, end)
            r, vma = self.madvise_vma(vma, prev, start, tmp, advice)
            if r:
                return r
            prev = vma
            tmp = max(tmp, vma.end)
            if tmp >= end:
                break
            start = tmp
            vma = mm.vmas.find_vma(vma.end)
        return unmapped

    def madvise_populate(self, mm: Mm, start: int, end: int, write: bool) -> int:
        """``madvise_populate()`` -> ``faultin_page_range``: fault in page by
        page; a hole stops with ENOMEM, a VMA the access is not allowed on
        (``check_vma_flags``) with EINVAL, a SIGBUS with EFAULT; pages before
        the failure stay populated."""
        self.mmap_read_lock(mm)
        try:
            vpn = start
            while vpn < end:
                vma = mm.vmas.find(vpn)
                if vma is None:
                    return -ENOMEM
                if write and not vma.flags & VM_WRITE:
                    return -EINVAL
                if not write and not vma.flags & VM_READ:
                    return -EINVAL
                for v in range(vpn, min(vma.end, end)):
                    if self.handle_mm_fault(mm, vma, v, write):
                        return -EFAULT  # VM_FAULT_SIGBUS (beyond the end of a file)
                vpn = min(vma.end, end)
            return 0
        finally:
            self.mmap_read_unlock(mm)

    def madvise_vma(self, vma: Vma, prev: Vma | None, start: int, end: int,
                    advice: str) -> tuple[int, Vma]:
        """``madvise_vma_behavior()`` for [start, end) inside ``vma``."""
        if advice in ("dontneed", "dontneed_locked"):
            # madvise_dontneed_free_valid_vma()
            if vma.flags & (VM_PFNMAP | (VM_LOCKED if advice == "dontneed" else 0)):
                return -EINVAL, vma
            self.zap(vma.mm, start, end, reclaim_pt=self.config.pt_reclaim)
            return 0, vma
        if advice in NO_EFFECT:
            return 0, vma
        try:
            set_, clear = FLAG_ADVICE[advice]
        except KeyError:
            raise ValueError(f"unknown madvise advice {advice!r}") from None
        if advice == "wipeonfork" and (vma.file is not None or vma.flags & VM_SHARED):
            return -EINVAL, vma
        flags = (vma.flags & ~clear) | set_
        if flags == vma.flags:  # madvise_update_vma(): nothing to change
            return 0, vma
        vma = self.vma_modify_flags(prev, vma, start, end, flags)
        vma.flags = flags
        return 0, vma
