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
VM_GROWSDOWN = 0x00000100
VM_LOCKED = 0x00002000
VM_DONTCOPY = 0x00020000
VM_DONTEXPAND = 0x00040000
VM_ACCOUNT = 0x00100000
VM_NORESERVE = 0x00200000
VM_LOCKONFAULT = 0x00080000
VM_WIPEONFORK = 0x02000000
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000
VM_SOFTDIRTY = 0

VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT
VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
VM_MAY_ALL = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC

# /proc/PID/smaps "VmFlags" mnemonics (fs/proc/task_mmu.c show_smap_vma_flags)
_MNEMONICS = tuple(sorted((
    (VM_READ, "rd"), (VM_WRITE, "wr"), (VM_EXEC, "ex"), (VM_SHARED, "sh"),
    (VM_MAYREAD, "mr"), (VM_MAYWRITE, "mw"), (VM_MAYEXEC, "me"), (VM_MAYSHARE, "ms"),
    (VM_GROWSDOWN, "gd"), (VM_LOCKED, "lo"), (VM_DONTCOPY, "dc"), (VM_DONTEXPAND, "de"),
    (VM_LOCKONFAULT, "lf"), (VM_ACCOUNT, "ac"), (VM_NORESERVE, "nr"),
    (VM_WIPEONFORK, "wf"), (VM_HUGEPAGE, "hg"), (VM_NOHUGEPAGE, "nh"),
)))


def vmflags_str(flags: int) -> str:
    """Flags as smaps shows them, e.g. ``'rd wr mr mw me ac'``.

    >>> vmflags_str(VM_READ | VM_WRITE | VM_MAY_ALL | VM_ACCOUNT)
    'rd wr mr mw me ac'
    """
    return " ".join(name for bit, name in _MNEMONICS if flags & bit)


def prot_to_vm(prot: int) -> int:
    """PROT_READ/WRITE/EXEC (1/2/4) to VM_READ/WRITE/EXEC (calc_vm_prot_bits)."""
    return prot & VM_ACCESS_FLAGS


# mmap(2) flags (include/uapi/linux/mman.h, asm-generic/mman-common.h, x86_64)
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_SHARED_VALIDATE = 0x03
MAP_TYPE = 0x0F
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_GROWSDOWN = 0x0100
MAP_LOCKED = 0x2000
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_STACK = 0x20000
MAP_FIXED_NOREPLACE = 0x100000
