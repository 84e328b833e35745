"""VMA flags with the values of include/linux/mm.h (x86_64, Linux 6.18).

Only the flags that change what rmaplab models are defined.  ``VM_SOFTDIRTY``
is 0 because CONFIG_MEM_SOFT_DIRTY is off on the kernels rmaplab validates
against (so it never takes part in merge decisions there).
"""

from __future__ import annotations

VM_READ = 0x00000001
VM_WRITE = 0x00000002
VM_EXEC = 0x00000004
VM_SHARED = 0x00000008
VM_MAYREAD = 0x00000010
VM_MAYWRITE = 0x00000020
VM_MAYEXEC = 0x00000040
VM_MAYSHARE = 0x00000080
VM_DONTCOPY = 0x00020000
VM_DONTEXPAND = 0x00040000
VM_ACCOUNT = 0x00100000
VM_NORESERVE = 0x00200000
VM_WIPEONFORK = 0x02000000
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000
VM_SOFTDIRTY = 0

VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
VM_MAY_ALL = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC

# /proc/PID/smaps "VmFlags" mnemonics (fs/proc/task_mmu.c show_smap_vma_flags)
_MNEMONICS = (
    (VM_READ, "rd"), (VM_WRITE, "wr"), (VM_EXEC, "ex"), (VM_SHARED, "sh"),
    (VM_MAYREAD, "mr"), (VM_MAYWRITE, "mw"), (VM_MAYEXEC, "me"), (VM_MAYSHARE, "ms"),
    (VM_DONTCOPY, "dc"), (VM_DONTEXPAND, "de"), (VM_ACCOUNT, "ac"), (VM_NORESERVE, "nr"),
    (VM_WIPEONFORK, "wf"), (VM_HUGEPAGE, "hg"), (VM_NOHUGEPAGE, "nh"),
)


def vmflags_str(flags: int) -> str:
    """Flags as smaps shows them, e.g. ``'rd wr mr mw me ac'``.

    >>> vmflags_str(VM_READ | VM_WRITE | VM_MAY_ALL | VM_ACCOUNT)
    'rd wr mr mw me ac'
    """
    return " ".join(name for bit, name in _MNEMONICS if flags & bit)


def prot_to_vm(prot: int) -> int:
    """PROT_READ/WRITE/EXEC (1/2/4) to VM_READ/WRITE/EXEC (calc_vm_prot_bits)."""
    return prot & VM_ACCESS_FLAGS
