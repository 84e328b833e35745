"""fs/exec.c and fs/binfmt_elf.c: a task's new mm at execve (Linux 6.18).

The model does not load ELF files: a trace records the layout the kernel
built (every VMA with its flags, file and offset, and the anonymous pages
already present) and :meth:`ExecOps.do_execve` builds the same mm: the
VMAs are inserted as ``insert_vm_struct`` / ``vm_mmap`` / ``vm_brk_flags``
leave them (no merging: the kernel's VMAs are already the result of its
merges), then each present anonymous page is faulted in with a write, in
address order, which is what the kernel did during execve (``copy_strings``
into the stack through ``get_user_pages_remote``; ``padzero`` of the last
page of the ELF data segments, a COW of a private file page): each such
VMA prepares its anon_vma.  The old mm goes (``exec_mmap`` -> ``mmput``).

Approximations, each harmless for anon rmap: an anonymous VMA's vm_pgoff
is taken as its start (``/proc/PID/maps`` prints 0 for anonymous VMAs; the
stack's real pgoff is its position before ``relocate_vma_down``); the order
of the exec-time faults is by address, not the kernel's (stack first), which
changes nothing since none of those VMAs can share an anon_vma
(``find_mergeable_anon_vma`` needs the same file and linear pgoffs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rmaplab.machine.mm import Task

if TYPE_CHECKING:
    from rmaplab.machine.folio import File
    from rmaplab.machine.mm import Mm
    from rmaplab.machine.vma import Vma


@dataclass
class ExecVma:
    """One VMA of a new mm: pages [start, end), flags, file and pgoff."""

    start: int
    end: int
    flags: int
    pgoff: int
    file: File | None = None
    name: str | None = None
    #: pages present as anonymous memory when the new program starts
    anon_pages: list[int] = field(default_factory=list)


class ExecOps:
    """fs/exec.c, as a mixin of :class:`rmaplab.machine.machine.Machine`."""

    if TYPE_CHECKING:
        mms: dict[int, Mm]

        def new_mm(self, name: str, parent: Mm | None) -> Mm: ...
        def new_vma(self, mm: Mm, start: int, end: int, pgoff: int, flags: int,
                    file: File | None) -> Vma: ...
        def handle_mm_fault(self, mm: Mm, vma: Vma, vpn: int, write: bool) -> int: ...
        def mmput(self, mm: Mm) -> None: ...
        def force_write_fault(self, mm: Mm, vma: Vma, vpn: int) -> int: ...

    def do_execve(self, task: Task, layout: list[ExecVma], start_brk: int | None = None,
                  brk: int | None = None) -> Mm:
        """``execve()`` of ``task`` with the new mm's ``layout``: the task gets
        a new mm (not a fork child), the old one loses a user."""
        old = task.mm
        mm = self.new_mm(task.name, None)
        mm.start_brk = start_brk
        mm.brk = brk if brk is not None else start_brk
        self.mms[mm.id] = mm
        for e in sorted(layout, key=lambda e: e.start):
            v = self.new_vma(mm, e.start, e.end, e.pgoff, e.flags, e.file)
            v.name = e.name
            mm.vmas.insert(v)
        for e in sorted(layout, key=lambda e: e.start):
            if not e.anon_pages:
                continue
            found = mm.vmas.find(e.start)
            assert found is not None
            for vpn in sorted(e.anon_pages):
                self.force_write_fault(mm, found, vpn)
        task.mm = mm
        self.mmput(old)
        return mm
