"""mm/mprotect.c: mprotect(2) (Linux 6.18)."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from rmaplab.machine.flags import (
    VM_ACCESS_FLAGS,
    VM_ACCOUNT,
    VM_NORESERVE,
    VM_PKEY_MASK,
    VM_PKEY_SHIFT,
    VM_SHARED,
    VM_WRITE,
    prot_to_vm,
)
from rmaplab.machine.pagetable import PageTables, PmdMap, Pte

if TYPE_CHECKING:
    from rmaplab.machine.mm import Mm
    from rmaplab.machine.vma import Vma

ENOMEM, EACCES, EINVAL = errno.ENOMEM, errno.EACCES, errno.EINVAL


class MprotectOps:
    """mm/mprotect.c, as a mixin of :class:`rmaplab.machine.machine.Machine`."""

    if TYPE_CHECKING:
        def vma_modify_flags(self, prev: Vma | None, vma: Vma, start: int, end: int,
                             flags: int) -> Vma: ...
        def mmap_write_lock(self, mm: Mm) -> None: ...
        def mmap_write_unlock(self, mm: Mm) -> None: ...

    def do_mprotect(self, mm: Mm, start: int, end: int, prot: int, pkey: int = -1) -> int:
        """``do_mprotect_pkey()`` on pages [start, end): ENOMEM (nothing done)
        if ``start`` is not mapped; applied VMA by VMA up to a hole, then
        ENOMEM; EACCES where the new protection exceeds VM_MAY*.  ``pkey``
        (``pkey_mprotect``; -1: ``mprotect``, which keeps each VMA's key, as
        x86's ``arch_override_mprotect_pkey`` does outside execute-only
        mappings) goes into the VM_PKEY_BIT* flags (arch/x86: bits 32..35),
        so VMAs of different keys neither merge nor stay one VMA."""
        if pkey > 15:
            return -EINVAL  # mm_pkey_is_allocated() fails: 16 keys on x86
        self.mmap_write_lock(mm)
        try:
            return self._mprotect(mm, start, end, prot, pkey)
        finally:
            self.mmap_write_unlock(mm)

    def _mprotect(self, mm: Mm, start: int, end: int, prot: int, pkey: int = -1) -> int:
        vma = mm.vmas.find_vma(start)
        if vma is None or vma.start >= end or vma.start > start:
            return -ENOMEM
        prev = vma if start > vma.start else mm.vmas.prev(vma)
        nstart = start
        tmp = vma.start
        newprot = prot_to_vm(prot)
        while vma is not None and vma.start < end:
            if vma.start != tmp:
                return -ENOMEM
            newflags = newprot | (vma.flags & ~VM_ACCESS_FLAGS)
            if pkey >= 0:
                newflags = (newflags & ~VM_PKEY_MASK) | (pkey << VM_PKEY_SHIFT)
            if (newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS:
                return -EACCES
            tmp = min(vma.end, end)
            vma = self.mprotect_fixup(vma, prev, nstart, tmp, newflags)
            prev = vma
            tmp = vma.end
            nstart = tmp
            vma = mm.vmas.find_vma(nstart)
        if tmp < end:
            return -ENOMEM
        return 0

    def mprotect_fixup(self, vma: Vma, prev: Vma | None, start: int, end: int,
                       newflags: int) -> Vma:
        """``mprotect_fixup()``: VM_ACCOUNT rules, then ``vma_modify_flags``.
        Making a private mapping writable adds VM_ACCOUNT; making it read-only
        drops VM_ACCOUNT only for an anonymous VMA without anon_vma."""
        oldflags = vma.flags
        if newflags == oldflags:
            return vma
        if newflags & VM_WRITE:
            if not oldflags & (VM_ACCOUNT | VM_WRITE | VM_SHARED | VM_NORESERVE):
                newflags |= VM_ACCOUNT
        elif oldflags & VM_ACCOUNT and vma.is_anonymous() and vma.anon_vma is None:
            newflags &= ~VM_ACCOUNT
        vma = self.vma_modify_flags(prev, vma, start, end, newflags)
        vma.flags = newflags
        self.change_protection(vma, start, end)
        return vma

    def change_protection(self, vma: Vma, start: int, end: int) -> None:
        """``change_protection()``: write-protect, or make exclusive anonymous
        pages (and shared pages) writable (MM_CP_TRY_CHANGE_WRITABLE); swap
        and migration entries are left as they are."""
        writable = bool(vma.flags & VM_WRITE)
        shared = bool(vma.flags & VM_SHARED)
        for _b, e in vma.mm.pt.tables_in(start, end):
            if type(e) is PmdMap:
                e.write = writable and not e.folio.zero and (shared or bool(e.folio.excl & 1))
                continue
            if type(e) is not dict:
                continue
            for _vpn, pte in PageTables.ptes_in(e, start, end):
                if type(pte) is not Pte:
                    continue
                f = pte.folio
                pte.write = writable and not f.zero and (
                    shared or (f.anon and bool(f.excl >> pte.idx & 1)))
