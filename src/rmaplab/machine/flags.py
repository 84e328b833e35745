"""VMA flags with the values of include/linux/mm.h (x86_64, Linux 6.18).

The low 32 bits have the kernel's values.  Flags above bit 31 (shadow
stack, sealing, uffd minor, droppable...) exist in traces only: they get
distinct high bits here (:func:`flags_from_mnemonics`), which is all the
model needs of them (any difference stops a merge).  ``VM_SOFTDIRTY`` is 0
because CONFIG_MEM_SOFT_DIRTY is off on the kernels rmaplab validates
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
VM_UFFD_MISSING = 0x00000200
VM_PFNMAP = 0x00000400
VM_UFFD_WP = 0x00001000
VM_LOCKED = 0x00002000
VM_IO = 0x00004000
VM_SEQ_READ = 0x00008000
VM_RAND_READ = 0x00010000
VM_DONTCOPY = 0x00020000
VM_DONTEXPAND = 0x00040000
VM_ACCOUNT = 0x00100000
VM_NORESERVE = 0x00200000
VM_LOCKONFAULT = 0x00080000
VM_HUGETLB = 0x00400000
VM_SYNC = 0x00800000
VM_ARCH_1 = 0x01000000  # VM_PAT on x86
VM_WIPEONFORK = 0x02000000
VM_DONTDUMP = 0x04000000
VM_MIXEDMAP = 0x10000000
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000
VM_MERGEABLE = 0x80000000
VM_SOFTDIRTY = 0

#: never merged, never mlocked (include/linux/mm.h)
VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP

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
    (VM_UFFD_MISSING, "um"), (VM_PFNMAP, "pf"), (VM_UFFD_WP, "uw"), (VM_IO, "io"),
    (VM_SEQ_READ, "sr"), (VM_RAND_READ, "rr"), (VM_HUGETLB, "ht"), (VM_SYNC, "sf"),
    (VM_ARCH_1, "ar"), (VM_DONTDUMP, "dd"), (VM_MIXEDMAP, "mm"), (VM_MERGEABLE, "mg"),
)))
_BY_NAME = {name: bit for bit, name in _MNEMONICS}
#: mnemonics of flags above bit 31 seen in traces, given their own bits
_HIGH: dict[str, int] = {}


def flags_from_mnemonics(words: list[str]) -> int:
    """smaps ``VmFlags`` mnemonics to flags; an unknown mnemonic gets a bit
    of its own above bit 31.

    >>> hex(flags_from_mnemonics("rd wr mr mw me ac".split()))
    '0x100073'
    >>> flags_from_mnemonics(["ss"]) == flags_from_mnemonics(["ss"]) > 1 << 32
    True
    """
    f = 0
    for w in words:
        bit = _BY_NAME.get(w)
        if bit is None:
            bit = _HIGH.setdefault(w, 1 << (40 + len(_HIGH)))
        f |= bit
    return f


def vmflags_str(flags: int) -> str:
    """Flags as smaps shows them, e.g. ``'rd wr mr mw me ac'``.

    >>> vmflags_str(VM_READ | VM_WRITE | VM_MAY_ALL | VM_ACCOUNT)
    'rd wr mr mw me ac'
    """
    return " ".join(name for bit, name in _MNEMONICS if flags & bit)


def prot_to_vm(prot: int) -> int:
    """PROT_READ/WRITE/EXEC (1/2/4) to VM_READ/WRITE/EXEC (calc_vm_prot_bits)."""
    return prot & VM_ACCESS_FLAGS


#: x86 memory protection keys in vm_flags (VM_PKEY_BIT0..3 = VM_HIGH_ARCH_0..3,
#: include/linux/mm.h): bits 32..35
VM_PKEY_SHIFT = 32
VM_PKEY_MASK = 0xF << VM_PKEY_SHIFT


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
