"""kernel/fork.c and mm/mmap.c ``dup_mmap``: fork, clone, exit of tasks (Linux 6.18)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rmaplab.machine.flags import VM_DONTCOPY, VM_LOCKED_MASK, VM_NOHUGEPAGE, VM_WIPEONFORK
from rmaplab.machine.mm import Mm, Task
from rmaplab.machine.vma import Vma

if TYPE_CHECKING:
    from rmaplab.machine.design import Design
    from rmaplab.machine.sync import Sync

#: clone(2) flags that matter for the mm
CLONE_VM = 0x00000100
CLONE_VFORK = 0x00004000
CLONE_THREAD = 0x00010000


class ForkOps:
    """kernel/fork.c, as a mixin of :class:`rmaplab.machine.machine.Machine`."""

    if TYPE_CHECKING:
        design: Design
        sync: Sync
        next_vma_id: int
        tasks: dict[str, Task]
        mms: dict[int, Mm]

        def new_mm(self, name: str, parent: Mm | None) -> Mm: ...
        def copy_page_range(self, dst: Vma, src: Vma) -> None: ...
        def exit_mmap(self, mm: Mm) -> None: ...
        def vma_start_write(self, vma: Vma) -> None: ...
        def mmap_write_lock(self, mm: Mm) -> None: ...
        def mmap_write_unlock(self, mm: Mm) -> None: ...

    def copy_process(self, parent: Task, name: str, clone_flags: int = 0) -> Task:
        """``copy_process()``'s mm part (``copy_mm``): with CLONE_VM the new
        task shares the mm (a thread, a vfork child); otherwise ``dup_mm``
        copies it (``dup_mmap``)."""
        if name in self.tasks:
            raise ValueError(f"task {name} exists")
        pmm = parent.mm
        if clone_flags & CLONE_VM:
            pmm.users += 1
            task = Task(name, pmm)
        else:
            cmm = self.new_mm(name, pmm)
            # dup_mm(): a copy of the mm_struct; mm_init() keeps only
            # VM_INIT_DEF_MASK (VM_NOHUGEPAGE) of def_flags
            cmm.start_brk, cmm.brk = pmm.start_brk, pmm.brk
            cmm.def_flags = pmm.def_flags & VM_NOHUGEPAGE
            self.mms[cmm.id] = cmm
            self.dup_mmap(pmm, cmm)
            task = Task(name, cmm)
        self.tasks[name] = task
        return task

    def dup_mmap(self, pmm: Mm, cmm: Mm) -> None:
        """``dup_mmap()``: under both mmap write locks, the child's maple
        tree starts as a copy of the parent's (``__mt_dup``); for every
        parent VMA (write-locked, ``vma_start_write``): a VM_DONTCOPY one is
        cleared from the child's tree; otherwise ``vm_area_dup``, then no
        anon_vma for VM_WIPEONFORK or ``anon_vma_fork``, VM_LOCKED* cleared,
        the copy stored over the parent's entry, and ``copy_page_range``
        when the parent VMA has an anon_vma (``vma_needs_copy``).
        O(VMAs + copied entries)."""
        design = self.design
        sync = self.sync
        act = sync.active
        self.mmap_write_lock(pmm)
        self.mmap_write_lock(cmm)
        sync.point("dup_mmap_start")
        design.dup_mmap_start(pmm, cmm)
        parent_vmas = pmm.vmas.snapshot()
        tree = cmm.vmas
        tree.load(parent_vmas)  # __mt_dup()
        fork_vma = design.anon_vma_fork
        copy = self.copy_page_range
        vid = self.next_vma_id
        j = 0  # the position of the parent's entry in the child's tree
        for vma in parent_vmas:
            if act:
                self.vma_start_write(vma)
            flags = vma.flags
            if flags & VM_DONTCOPY:
                tree.remove_at(j)  # vma_iter_clear_gfp()
                continue
            if act:  # another thread may have allocated VMAs meanwhile
                vid = self.next_vma_id
            vid += 1  # vm_area_dup()
            if act:
                self.next_vma_id = vid
            tmp = Vma(vid, cmm, vma.start, vma.end, vma.pgoff, flags & ~VM_LOCKED_MASK,
                      vma.file)
            tmp.name = vma.name
            tmp.anon_off = vma.anon_off
            if flags & VM_WIPEONFORK:
                tmp.anon_vma = None
            else:
                tmp.anon_vma = vma.anon_vma
                if act:
                    sync.point(f"anon_vma_fork(VMA {vma.id})")
                fork_vma(tmp, vma)
                if act:
                    sync.note(f"-> child VMA {tmp.id}: {design.anchor_name(tmp.anon_vma)}")
            tree.replace_at(j, tmp)  # vma_iter_bulk_store()
            j += 1
            if not flags & VM_WIPEONFORK and vma.anon_vma is not None:
                copy(tmp, vma)
        if not act:
            self.next_vma_id = vid
        sync.point("dup_mmap_end")
        design.dup_mmap_end(pmm, cmm)
        self.mmap_write_unlock(cmm)
        self.mmap_write_unlock(pmm)

    def exit_task(self, task: Task) -> None:
        """``do_exit()`` -> ``exit_mm()`` -> ``mmput()``: the last user of
        the mm tears it down (``exit_mmap``)."""
        del self.tasks[task.name]
        self.mmput(task.mm)

    def mmput(self, mm: Mm) -> None:
        mm.users -= 1
        if mm.users == 0:
            self.exit_mmap(mm)
            del self.mms[mm.id]
