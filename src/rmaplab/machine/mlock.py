"""mm/mlock.c: mlock(2), mlock2(2), munlock(2), mlockall(2), munlockall(2) (Linux 6.18).

Locking changes VMA flags (VM_LOCKED, VM_LOCKONFAULT), so it splits and
merges VMAs like mprotect (``mlock_fixup`` -> ``vma_modify_flags``), and it
populates what it locks unless MLOCK_ONFAULT/MCL_ONFAULT (``__mm_populate``:
write faults on private writable VMAs, which prepares their anon_vmas).
The mlocked state of pages (PG_mlocked, the unevictable LRU) has no rmap
effect and is not modelled.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from rmaplab.machine.constants import TASK_SIZE_VPN
from rmaplab.machine.flags import (
    VM_HUGETLB,
    VM_LOCKED,
    VM_LOCKED_MASK,
    VM_LOCKONFAULT,
    VM_SPECIAL,
)

if TYPE_CHECKING:
    from rmaplab.machine.mm import Mm
    from rmaplab.machine.vma import Vma

ENOMEM, EINVAL = errno.ENOMEM, errno.EINVAL
MLOCK_ONFAULT = 0x01
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4


class MlockOps:
    """mm/mlock.c, as a mixin of :class:`rmaplab.machine.machine.Machine`."""

    if TYPE_CHECKING:
        def vma_modify_flags(self, prev: Vma | None, vma: Vma, start: int, end: int,
                             flags: int) -> Vma: ...
        def mm_populate(self, mm: Mm, start: int, end: int) -> None: ...
        def mmap_write_lock(self, mm: Mm) -> None: ...
        def mmap_write_unlock(self, mm: Mm) -> None: ...

    def mlock_fixup(self, vma: Vma, prev: Vma | None, start: int, end: int,
                    newflags: int) -> Vma:
        """``mlock_fixup()``: special, hugetlb VMAs keep their flags."""
        if newflags == vma.flags or vma.flags & (VM_SPECIAL | VM_HUGETLB):
            return vma
        vma = self.vma_modify_flags(prev, vma, start, end, newflags)
        vma.flags = newflags
        return vma

    def apply_vma_lock_flags(self, mm: Mm, start: int, end: int, lock: int) -> int:
        """``apply_vma_lock_flags()``: ENOMEM if ``start`` is not mapped;
        VMA by VMA up to a hole, then ENOMEM."""
        vma = mm.vmas.find(start)  # vma_iter_load()
        if vma is None:
            return -ENOMEM
        prev = vma if start > vma.start else mm.vmas.prev(vma)
        nstart = start
        tmp = vma.start
        while vma is not None and vma.start < end:
            if vma.start != tmp:
                return -ENOMEM
            newflags = (vma.flags & ~VM_LOCKED_MASK) | lock
            tmp = min(vma.end, end)
            vma = self.mlock_fixup(vma, prev, nstart, tmp, newflags)
            prev = vma
            tmp = vma.end
            nstart = tmp
            vma = mm.vmas.find_vma(nstart)
        return -ENOMEM if tmp < end else 0

    def do_mlock(self, mm: Mm, start: int, end: int, flags: int = 0) -> int:
        """``do_mlock()`` of pages [start, end) (mlock2 ``flags``:
        MLOCK_ONFAULT), then ``__mm_populate`` unless on-fault."""
        if flags & ~MLOCK_ONFAULT:
            return -EINVAL
        lock = VM_LOCKED | (VM_LOCKONFAULT if flags & MLOCK_ONFAULT else 0)
        self.mmap_write_lock(mm)
        try:
            r = self.apply_vma_lock_flags(mm, start, end, lock)
        finally:
            self.mmap_write_unlock(mm)
        if r:
            return r
        if not flags & MLOCK_ONFAULT:
            self.mm_populate(mm, start, end)
        return 0

    def do_munlock(self, mm: Mm, start: int, end: int) -> int:
        self.mmap_write_lock(mm)
        try:
            return self.apply_vma_lock_flags(mm, start, end, 0)
        finally:
            self.mmap_write_unlock(mm)

    def do_mlockall(self, mm: Mm, flags: int) -> int:
        """``mlockall()`` -> ``apply_mlockall_flags()``: MCL_FUTURE sets the
        mm's default flags; MCL_CURRENT locks every VMA (then populates all
        unless MCL_ONFAULT).  MCL_ONFAULT alone is EINVAL."""
        if not flags or flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) or flags == MCL_ONFAULT:
            return -EINVAL
        to_add = VM_LOCKED | (VM_LOCKONFAULT if flags & MCL_ONFAULT else 0)
        self.mmap_write_lock(mm)
        try:
            mm.def_flags &= ~VM_LOCKED_MASK
            if flags & MCL_FUTURE:
                mm.def_flags |= to_add
            if flags & MCL_CURRENT:
                self._lock_all(mm, to_add)
        finally:
            self.mmap_write_unlock(mm)
        if flags & MCL_CURRENT and not flags & MCL_ONFAULT:
            self.mm_populate(mm, 0, TASK_SIZE_VPN)
        return 0

    def do_munlockall(self, mm: Mm) -> int:
        self.mmap_write_lock(mm)
        try:
            mm.def_flags &= ~VM_LOCKED_MASK
            self._lock_all(mm, 0)
        finally:
            self.mmap_write_unlock(mm)
        return 0

    def _lock_all(self, mm: Mm, lock: int) -> None:
        prev = None
        for vma in mm.vmas.snapshot():
            if vma.detached:  # merged away by an earlier fixup
                continue
            newflags = (vma.flags & ~VM_LOCKED_MASK) | lock
            prev = self.mlock_fixup(vma, prev, vma.start, vma.end, newflags)
