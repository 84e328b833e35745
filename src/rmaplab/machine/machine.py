"""The machine: tasks, their address spaces, page tables, folios and swap.

The machine knows nothing of any rmap design; it calls the design's hooks
(:class:`rmaplab.machine.design.Design`) where the kernel touches anonymous
rmap state.  Its code is split along the kernel's files, one mixin each:

=====================  ==========================================================
``memory.py``          mm/memory.c: faults, COW, swap-in, zap, copy_page_range,
                       free_pgtables
``huge_memory.py``     mm/huge_memory.c: THP faults and COW, PMD splits
``vma_ops.py``         mm/vma.c: split, merge, copy_vma, do_vmi_munmap
``mmap.py``            mm/mmap.c: mmap, populate, get_unmapped_area, exit_mmap
``mprotect.py``        mm/mprotect.c
``madvise.py``         mm/madvise.c
``mremap.py``          mm/mremap.c
``mlock.py``           mm/mlock.c: mlock, mlock2, mlockall, munlock(all)
``fork.py``            kernel/fork.c: copy_process (mm part), dup_mmap, exit
``exec.py``            fs/exec.c: the new mm of execve, from a recorded layout
``rmap.py``            mm/rmap.c, mm/migrate.c: the rmap walkers, ground truth
this module            locks, folios, the swap device, arena entry points
=====================  ==========================================================

Two levels of entry points: the kernel-level ``do_*`` methods take an
:class:`~rmaplab.machine.mm.Mm` and virtual page numbers (the replay of real
traces uses them); the arena methods (:meth:`Machine.mmap`,
:meth:`Machine.touch`, ...) take a task name and arena page numbers, as
scenario lines do, and return 0 or a negative errno, like the kernel.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from rmaplab.machine.config import KernelConfig
from rmaplab.machine.constants import ARENA_END_VPN, ARENA_VPN, HPAGE_PMD_NR
from rmaplab.machine.exec import ExecOps
from rmaplab.machine.flags import (
    MAP_ANONYMOUS,
    MAP_FIXED_NOREPLACE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    VM_EXEC,
    VM_READ,
    VM_WRITE,
)
from rmaplab.machine.folio import File, Folio, SwapSlot
from rmaplab.machine.fork import ForkOps
from rmaplab.machine.huge_memory import HugeMemoryOps
from rmaplab.machine.madvise import MadviseOps
from rmaplab.machine.memory import MemoryOps
from rmaplab.machine.mlock import MlockOps
from rmaplab.machine.mm import Mm, Task
from rmaplab.machine.mmap import MmapOps
from rmaplab.machine.mprotect import MprotectOps
from rmaplab.machine.mremap import MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE, MremapOps
from rmaplab.machine.pagetable import PageTables, PmdMap, Pte, SwapPte
from rmaplab.machine.rmap import RmapOps
from rmaplab.machine.sync import Sync
from rmaplab.machine.vma import Vma
from rmaplab.machine.vma_ops import VmaOps

if TYPE_CHECKING:
    from rmaplab.machine.design import Design

EFAULT = errno.EFAULT


class Machine(MemoryOps, HugeMemoryOps, VmaOps, MmapOps, MprotectOps, MadviseOps,
              MremapOps, MlockOps, ForkOps, ExecOps, RmapOps):
    """Tasks, address spaces and folios, driven by system calls.

    >>> from rmaplab.designs import make_design
    >>> m = Machine(make_design("classic"))
    >>> m.mmap("P0", 0, 16), m.touch("P0", 0, 3, write=True), m.mprotect("P0", 4, 7, 1)
    (0, 0, 0)
    >>> m.maps("P0")
    [(0, 3, 'rw-'), (4, 7, 'r--'), (8, 15, 'rw-')]
    >>> m.fork("P0", "P1"), m.design.measure()
    (0, {'anon_vma': 4, 'avc': 9})
    """

    def __init__(self, design: Design, config: KernelConfig | None = None,
                 sync: Sync | None = None) -> None:
        self.design = design
        self.config = config or KernelConfig()
        self.sync = sync or Sync()
        self.next_vma_id = 0
        self.next_folio_id = 0
        self.next_mm_id = 0
        self.next_slot_id = 0
        #: live tasks by name, live mms by id
        self.tasks: dict[str, Task] = {}
        self.mms: dict[int, Mm] = {}
        self.files: dict[str, File] = {}
        #: live anonymous folios by id
        self.anon_folios: dict[int, Folio] = {}
        #: swap slots in use (count > 0 or in the swap cache)
        self.swap_slots = 0
        #: a replay's override of get_unmapped_area (vpn), consumed by it
        self.chosen_area: int | None = None
        self.zero_page = Folio(-1, 1, anon=False, zero=True)
        self.huge_zero_page = Folio(-2, HPAGE_PMD_NR, anon=False, zero=True)
        design.attach(self)
        mm = self.new_mm("P0", None)
        self.mms[mm.id] = mm
        self.tasks["P0"] = Task("P0", mm)

    # ------------------------------------------------------------------ basics
    def new_mm(self, name: str, parent: Mm | None) -> Mm:
        self.next_mm_id += 1
        return Mm(self.next_mm_id, name, parent)

    def task(self, name: str) -> Task:
        try:
            return self.tasks[name]
        except KeyError:
            raise KeyError(f"no live task {name}") from None

    def mm(self, name: str) -> Mm:
        """The mm of live task ``name``."""
        return self.task(name).mm

    def file(self, name: str) -> File:
        f = self.files.get(name)
        if f is None:
            f = self.files[name] = File(name, 1)
        return f

    def new_folio(self, nr: int, anon: bool) -> Folio:
        self.next_folio_id += 1
        f = Folio(self.next_folio_id, nr, anon)
        if anon:
            self.anon_folios[f.id] = f
        return f

    def folio_put(self, folio: Folio) -> None:
        """Free an anonymous folio nothing references any more (no mapping,
        no pin, not in the swap cache)."""
        if (folio.anon and not folio.mapcount and not folio.pins and folio.swap is None
                and not folio.freed):
            folio.freed = True
            del self.anon_folios[folio.id]
            self.design.folio_freed(folio)

    def page_cache(self, file: File, index: int) -> Folio:
        f = file.cache.get(index)
        if f is None:
            f = file.cache[index] = self.new_folio(1, anon=False)
            f.file = file
            f.index = index
        return f

    # ------------------------------------------------------------------ locks
    def mmap_read_lock(self, mm: Mm) -> None:
        self.sync.lock(("mmap", mm.name), "r")

    def mmap_read_unlock(self, mm: Mm) -> None:
        self.sync.unlock(("mmap", mm.name))

    def mmap_write_lock(self, mm: Mm) -> None:
        self.sync.lock(("mmap", mm.name))

    def mmap_write_unlock(self, mm: Mm) -> None:
        """``mmap_write_unlock()``: also ends every VMA write lock taken under
        it (``vma_end_write_all``)."""
        sync = self.sync
        if mm.write_locked:
            for v in mm.write_locked:
                sync.unlock(("vma", v.id))
            mm.write_locked.clear()
        sync.unlock(("mmap", mm.name))

    def vma_start_write(self, vma: Vma) -> None:
        """``vma_start_write()``: the VMA stays write-locked until the mmap
        write lock is released (only tracked when an explorer watches)."""
        if self.sync.active and vma not in vma.mm.write_locked:
            self.sync.lock(("vma", vma.id))
            vma.mm.write_locked.append(vma)

    def vm_area_free(self, vma: Vma) -> None:
        """``vm_area_free()``: the VMA object goes (a design may keep it)."""
        vma.detached = True
        self.design.vm_area_free(vma)

    # ------------------------------------------------------------------- swap
    def add_to_swap(self, folio: Folio) -> list[SwapSlot]:
        """``folio_alloc_swap()`` + ``add_to_swap_cache()``: a slot per page."""
        slots = []
        for i in range(folio.nr):
            self.next_slot_id += 1
            s = SwapSlot(self.next_slot_id)
            s.folio, s.page = folio, i
            slots.append(s)
        folio.swap = slots
        self.swap_slots += len(slots)
        return slots

    def swap_cache_add(self, folio: Folio, slots: list[SwapSlot]) -> None:
        """A folio read in for ``slots`` enters the swap cache."""
        folio.swap = slots
        for i, s in enumerate(slots):
            s.folio, s.page = folio, i

    def delete_from_swap_cache(self, folio: Folio) -> None:
        """``__remove_mapping()`` / ``folio_free_swap()``'s end: the folio
        leaves the swap cache; slots no swap entry refers to are freed."""
        assert folio.swap is not None
        for s in folio.swap:
            s.folio = None
            if not s.count:
                self.swap_slots -= 1
        folio.swap = None
        self.folio_put(folio)

    def folio_free_swap(self, folio: Folio) -> bool:
        """``folio_free_swap()``: drop the swap-cache copy if no swap entry
        refers to any of its slots (``folio_swapped``)."""
        if folio.swap is None or any(s.count for s in folio.swap):
            return False
        self.delete_from_swap_cache(folio)
        return True

    def swap_free(self, slot: SwapSlot) -> None:
        """``swap_free()``: one swap entry referring to ``slot`` is gone."""
        slot.count -= 1
        assert slot.count >= 0
        if not slot.count and slot.folio is None:
            self.swap_slots -= 1

    def free_swap_and_cache(self, slot: SwapSlot) -> None:
        """``free_swap_and_cache()`` (zap of a swap entry): drop the entry;
        if no entry refers to the slot any more and its swap-cache folio is
        not mapped, free that folio too (``__try_to_reclaim_swap``)."""
        self.swap_free(slot)
        f = slot.folio
        if not slot.count and f is not None and not f.mapcount:
            self.folio_free_swap(f)

    # ----------------------------------------- arena entry points (scenarios)
    def touch(self, proc: str, first: int, last: int, write: bool) -> int:
        """Touch one byte per page of arena pages [first, last], in order,
        each a fault under the mmap read lock.  Returns 0, or -EFAULT at the
        first page that faults (SIGSEGV/SIGBUS)."""
        mm = self.mm(proc)
        vmas = mm.vmas
        sync = self.sync
        act = sync.active
        vma: Vma | None = None
        for vpn in range(ARENA_VPN + first, ARENA_VPN + last + 1):
            if act:
                self.mmap_read_lock(mm)
            if vma is None or not (vma.start <= vpn < vma.end) or vma.detached:
                vma = vmas.find(vpn)
            r = -EFAULT if vma is None else self.handle_mm_fault(mm, vma, vpn, write)
            if act:
                self.mmap_read_unlock(mm)
            if r:
                return r
        return 0

    def mmap(self, proc: str, start: int, npages: int, prot: int = 3, shared: bool = False,
             file: str | None = None, off: int = 0, populate: bool = False) -> int:
        """``mmap(MAP_FIXED_NOREPLACE)`` of arena pages [start, start+npages);
        a scenario's file grows first to ``off + npages`` pages."""
        f = None
        if file is not None:
            f = self.file(file)
            f.size = max(f.size, off + npages)
        flags = (MAP_SHARED if shared else MAP_PRIVATE) | MAP_FIXED_NOREPLACE
        if f is None:
            flags |= MAP_ANONYMOUS
        if populate:
            flags |= MAP_POPULATE
        return self.do_mmap(self.mm(proc), ARENA_VPN + start, npages, prot, flags, f, off)

    def munmap(self, proc: str, first: int, last: int) -> int:
        """``munmap()`` of arena pages [first, last]."""
        mm = self.mm(proc)
        self.mmap_write_lock(mm)
        self.do_munmap(mm, ARENA_VPN + first, ARENA_VPN + last + 1)
        self.mmap_write_unlock(mm)
        return 0

    def mprotect(self, proc: str, first: int, last: int, prot: int) -> int:
        """``mprotect()`` of arena pages [first, last]."""
        return self.do_mprotect(self.mm(proc), ARENA_VPN + first, ARENA_VPN + last + 1, prot)

    def madvise(self, proc: str, first: int, last: int, advice: str) -> int:
        """``madvise()`` of arena pages [first, last] (advice by name)."""
        return self.do_madvise(self.mm(proc), ARENA_VPN + first, ARENA_VPN + last + 1, advice)

    def mremap(self, proc: str, old: int, old_len: int, new_len: int,
               new: int | None = None, dontunmap: bool = False, maymove: bool = True) -> int:
        """``mremap()`` of arena pages; ``new`` set means MREMAP_FIXED."""
        flags = (MREMAP_MAYMOVE if maymove else 0) | (MREMAP_DONTUNMAP if dontunmap else 0)
        if new is not None:
            flags |= MREMAP_FIXED
        return self.do_mremap(self.mm(proc), ARENA_VPN + old, old_len, new_len, flags,
                              ARENA_VPN + new if new is not None else 0)

    def fork(self, proc: str, child: str) -> int:
        """``fork()``: a new process with a copy of ``proc``'s mm."""
        self.copy_process(self.task(proc), child)
        return 0

    def exit(self, proc: str) -> int:
        """``exit()`` of task ``proc`` (its mm goes with its last user)."""
        self.exit_task(self.task(proc))
        return 0

    def maps(self, proc: str) -> list[tuple[int, int, str]]:
        """VMAs of ``proc`` inside the arena: (first page, last page, 'rwx')."""
        out = []
        for v in self.mm(proc).vmas:
            if v.start >= ARENA_VPN and v.end <= ARENA_END_VPN:
                f = v.flags
                out.append((v.start - ARENA_VPN, v.end - 1 - ARENA_VPN,
                            ("r" if f & VM_READ else "-") + ("w" if f & VM_WRITE else "-")
                            + ("x" if f & VM_EXEC else "-")))
        return out

    def folio_at(self, proc: str, page: int) -> Folio | None:
        """The anonymous folio arena page ``page`` of ``proc`` maps, if any."""
        e = self.mm(proc).pt.entry(ARENA_VPN + page)
        if e is None or type(e) not in (Pte, PmdMap) or not e.folio.anon:  # type: ignore
            return None
        return e.folio  # type: ignore[union-attr]

    # ------------------------------------------------------------ self-check
    def check_structures(self) -> list[str]:
        """Violations of the machine's own invariants (VMA trees, page
        tables inside VMAs, folio map counts, swap counts).  O(VMAs + entries)."""
        errs: list[str] = []
        counts: dict[int, int] = {}
        swaps: dict[int, int] = {}
        slots: dict[int, SwapSlot] = {}
        for mm in self.mms.values():
            try:
                mm.vmas.check()
            except AssertionError as broken:
                errs.append(f"{mm.name}: VMA tree broken: {broken}")
            pt = mm.pt
            inside = 0
            pmds: set[int] = set()
            for v in mm.vmas:
                if v.mm is not mm:
                    errs.append(f"{mm.name}: VMA {v.id} of {v.mm.name} in its tree")
                for b, e in pt.tables_in(v.start, v.end):
                    if isinstance(e, PmdMap):
                        if b in pmds:
                            continue
                        pmds.add(b)
                        base = b * HPAGE_PMD_NR
                        if not (v.start <= base and base + HPAGE_PMD_NR <= v.end):
                            errs.append(f"{mm.name}: PMD at {base:#x} crosses a VMA boundary")
                        inside += 1
                        f = e.folio
                        if not f.zero and type(e) is PmdMap:
                            counts[id(f)] = counts.get(id(f), 0) + 1
                        continue
                    lo = v.start if v.start > b * HPAGE_PMD_NR else b * HPAGE_PMD_NR
                    hi = v.end if v.end < (b + 1) * HPAGE_PMD_NR else (b + 1) * HPAGE_PMD_NR
                    for vpn, x in PageTables.ptes_in(e, lo, hi):
                        inside += 1
                        if type(x) is SwapPte:
                            swaps[x.slot.id] = swaps.get(x.slot.id, 0) + 1
                            slots[x.slot.id] = x.slot
                            continue
                        if type(x) is not Pte:
                            continue
                        f = x.folio
                        if f.zero:
                            continue
                        counts[id(f)] = counts.get(id(f), 0) + 1
                        if f.anon and f.freed:
                            errs.append(f"{mm.name}: freed folio {f.id} still mapped at {vpn:#x}")
            total = sum(1 if type(t) is not dict else len(t) for t in pt.pmd.values())
            if total != inside:
                errs.append(f"{mm.name}: {total - inside} page(s) mapped outside any VMA")
        for f in self.anon_folios.values():
            if counts.get(id(f), 0) != f.mapcount:
                errs.append(f"folio {f.id}: mapcount {f.mapcount} but "
                            f"{counts.get(id(f), 0)} mappings")
            mc = f.mm_counts
            if mc is not None and sum(mc.values()) != f.mapcount:
                errs.append(f"folio {f.id}: per-mm map counts {sum(mc.values())} "
                            f"but mapcount {f.mapcount}")
        for sid, n in swaps.items():
            if slots[sid].count != n:
                errs.append(f"swap slot {sid}: count {slots[sid].count} but {n} swap entries")
        return errs
