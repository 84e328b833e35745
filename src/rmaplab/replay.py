"""``rmaplab replay``: a real program's trace (``rmaplab trace``,
docs/trace-format.md) driven through the machine model under every design,
with the classic column compared, call site by call site, with the
anon_vma / anon_vma_chain allocations the kernel itself made during the same
run.

One pass over the trace feeds every design's machine in lockstep (the trace
is parsed once).  Each event becomes the kernel path it records:

=====================  =====================================================
trace event            machine path
=====================  =====================================================
``exec``               ``do_execve`` with the recorded layout (fs/exec.c)
``fork``               ``copy_process`` with the clone flags (kernel/fork.c)
``exit``               ``exit_task`` -> ``mmput`` (kernel/exit.c)
``F`` (page fault)     ``fault_at`` -> ``handle_mm_fault`` (arch/x86/mm/fault.c)
``ret mmap``           ``do_mmap`` at the address the kernel returned
``ret munmap``         ``do_munmap`` (mm/vma.c)
``ret mprotect``       ``do_mprotect`` (mm/mprotect.c; also pkey_mprotect)
``ret madvise``        ``do_madvise`` (mm/madvise.c)
``ret mremap``         ``do_mremap``; a move the kernel placed goes where it
                       did (``Machine.chosen_area``)
``ret brk``            ``do_brk`` (mm/mmap.c)
``ret mlock*``         ``do_mlock`` / ``do_munlock`` / ``do_mlockall``
``ret shmat/shmdt``    a shared file mapping / its unmapping (ipc/shm.c)
``snap``               the kernel's present anonymous pages compared with
                       the model's; pages the kernel populated without a
                       fault (GUP: futexes, O_DIRECT) are faulted in
=====================  =====================================================

After every modelled syscall the model's VMAs in the syscall's range are
compared with the ones the kernel left there (start, end, permissions); a
difference is a *layout divergence*, counted and shown with its trace line.
Other traced syscalls (``mseal``, ``mbind``, ``userfaultfd``...) are counted
as not modelled, and their effect on the layout, if any, shows up as a
divergence.

The kernel's side comes from the trace's ``A``/``D`` events: every
allocation and free of an anon_vma or chain by a traced task, except the
root's pre-exec mm (a copy of the tracer's: its objects were allocated
before the trace, and its frees carry flag ``x``).  The classic design
counts its allocations and frees by the same call-site names
(:attr:`rmaplab.designs.classic.ClassicDesign.kmem`).

Complexity: O(events) per design, each event O(log VMAs) plus the work of the
kernel path it replays; the trace is streamed (O(1) memory per event), the
machines hold the live state only.  A second pass, to each design's memory
peak, measures rmap walk cost there (``walks=False`` skips it).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmaplab.designs import make_design
from rmaplab.errors import ScenarioError
from rmaplab.machine.exec import ExecVma
from rmaplab.machine.flags import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_SHARED,
    VM_EXEC,
    VM_MAY_ALL,
    VM_MAYSHARE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    flags_from_mnemonics,
)
from rmaplab.machine.folio import File
from rmaplab.machine.fork import CLONE_VM
from rmaplab.machine.machine import Machine
from rmaplab.machine.madvise import ADVICE_BY_NUMBER
from rmaplab.machine.mm import Mm, Task
from rmaplab.machine.pagetable import PmdMap, Pte, SwapPte
from rmaplab.trace.format import (
    Alloc,
    Call,
    Exec,
    Exit,
    Fault,
    Fork,
    Free,
    Ret,
    Snap,
    Start,
    TraceReader,
    Vma,
    read_header,
)

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
#: x86 page-fault error code: the access was a write (X86_PF_WRITE)
X86_PF_WRITE = 0x2
#: shmat(2) flag
SHM_RDONLY = 0o10000
#: mmap(2) flag the model does not model
MAP_HUGETLB = 0x40000
#: divergences kept, with their lines, per design
KEEP = 8

#: syscalls whose effect is modelled (the others are counted, not replayed)
MODELLED = ("mmap", "munmap", "mprotect", "pkey_mprotect", "madvise", "mremap", "brk",
            "mlock", "mlock2", "munlock", "mlockall", "munlockall", "shmat", "shmdt")
#: task syscalls whose effect comes through other events (fork, exec, exit)
THROUGH_EVENTS = ("clone", "clone3", "fork", "vfork", "execve", "execveat", "exit",
                  "exit_group")


def _pages_up(nbytes: int) -> int:
    return (nbytes + PAGE_SIZE - 1) >> PAGE_SHIFT


def _s32(v: int) -> int:
    """An ``int`` argument from its 64-bit register."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _perms(flags: int) -> str:
    """``/proc/PID/maps``' permission column (show_map_vma)."""
    return (("r" if flags & VM_READ else "-") + ("w" if flags & VM_WRITE else "-")
            + ("x" if flags & VM_EXEC else "-") + ("s" if flags & VM_MAYSHARE else "p"))


@dataclass
class KernelSide:
    """What the kernel allocated and freed during the trace (its ``A``/``D``
    events, the root's pre-exec mm excluded), and the live peak."""

    sites: Counter[str] = field(default_factory=Counter)
    live: Counter[str] = field(default_factory=Counter)
    #: the largest number of live objects at any moment (inside syscalls too)
    peak: Counter[str] = field(default_factory=Counter)
    #: the largest number between events when no traced syscall is in
    #: flight (where the model is compared: before each non-kmem event, so
    #: a syscall's objects count once it returned)
    peak_between: Counter[str] = field(default_factory=Counter)
    excluded: int = 0


@dataclass
class DesignRun:
    """One design's replay: its machine, what it did, where it diverged."""

    design: str
    machine: Machine
    tasks: dict[int, Task] = field(default_factory=dict)
    divergences: int = 0
    first: list[str] = field(default_factory=list)
    #: layout differences while another task of the mm was inside a syscall
    #: (its effect is in the kernel's layout, not yet in the model's)
    concurrent: int = 0
    #: munmaps/mremaps of one thread applied before another thread's call
    #: that reused their range
    reordered: int = 0
    #: user-mode faults the model refused (SIGSEGV/SIGBUS in the model)
    refused_faults: int = 0
    #: kernel-mode faults the model refused: the kernel's exception fixup
    #: (copy_to_user into a read-only page returns -EFAULT to the syscall)
    kernel_efaults: int = 0
    #: faults beyond a file's recorded size (it grew: the file is extended)
    files_grown: int = 0
    synced_pages: int = 0
    model_only_pages: int = 0
    agreeing_pages: int = 0
    peak_bytes: int = -1
    peak_event: int = 0
    peak: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: the largest number of live objects of each kind, at any sample
    peak_objects: Counter[str] = field(default_factory=Counter)
    walks: list[int] | None = None
    #: ``check_machine`` runs (``check_every``) and the first violation found
    checks: int = 0
    violation: str | None = None

    def diverge(self, line: int, what: str) -> None:
        self.divergences += 1
        if len(self.first) < KEEP:
            self.first.append(f"line {line}: {what}")


@dataclass
class ReplayResult:
    """Everything ``rmaplab replay`` prints, for one trace."""

    path: str
    header: dict[str, Any]
    events: int
    applied: Counter[str]
    not_modelled: Counter[str]
    kernel: KernelSide
    runs: dict[str, DesignRun]
    seconds: float


class Replayer:
    """Feeds one trace's events to one machine per design.

    :param designs: design names (``rmaplab designs``), each replayed on its
        own :class:`~rmaplab.machine.machine.Machine` whose
        :class:`~rmaplab.machine.config.KernelConfig` has the recording
        machine's THP mode.
    """

    def __init__(self, designs: list[str], thp: str = "madvise", path: str = "",
                 check_every: int = 0) -> None:
        from rmaplab.machine.config import KernelConfig

        self.path = path
        #: run the oracle (rmaplab.check.check_machine) every this many events
        #: and at each exit snapshot (0: never; -1: after every event but the
        #: faults and kmem events, i.e. every syscall, fork, exec, exit and
        #: snapshot: a fault only adds mappings, checked at the next one)
        self.check_every = check_every
        self.runs: dict[str, DesignRun] = {}
        for d in designs:
            m = Machine(make_design(d), KernelConfig(thp=thp))
            m.exit_task(m.tasks["P0"])  # the model's default first process
            self.runs[d] = DesignRun(d, m)
        self.kernel = KernelSide()
        self.applied: Counter[str] = Counter()
        self.not_modelled: Counter[str] = Counter()
        self.calls: dict[int, Call] = {}
        self.root: int | None = None
        self.root_pre_exec = False
        self.foreign: set[int] = set()
        self.index = 0
        self._dirty = False
        #: tasks between ``call execve`` and its ``exec``: their faults build
        #: the new mm, whose resulting pages the ``exec`` layout lists
        self.in_execve: set[int] = set()
        #: tasks at their exit stop: the mm goes after the ``snap`` that may
        #: follow (``exit e`` precedes the kernel's teardown of the mm)
        self.exiting: list[int] = []
        #: tasks inside a traced syscall (call seen, ret not yet): the kernel
        #: has done part of it, the model none; peaks of live objects are
        #: compared only at moments when no syscall is in flight
        self.in_flight: set[int] = set()
        self.current = 0
        #: (tid, call line) of munmaps applied before their ret
        self.early: set[tuple[int, int]] = set()
        self._ahead: dict[tuple[int, int], Ret | None] = {}

    # ---------------------------------------------------------------- driver
    def feed(self, e: Any, stop_at: dict[str, int] | None = None) -> None:
        """Apply one event to every machine (``stop_at``: designs whose
        replay ends before event index ``stop_at[d]``)."""
        kind = type(e)
        if kind is not Alloc and kind is not Free and not self.in_flight:
            k = self.kernel
            for kk, n in k.live.items():
                if n > k.peak_between[kk]:
                    k.peak_between[kk] = n
            # a task at its exit stop still faults (mm_release's write of
            # clear_child_tid, robust futexes) before its mm goes: only another
            # kind of event ends the exits
            if self.exiting and kind is not Snap and kind is not Fault:
                self._flush_exits(stop_at)
        if kind is Fault:
            self._fault(e, stop_at)
        elif kind is Alloc or kind is Free:
            if kind is Free and e.tid in self.exiting:
                self._flush_exits(stop_at)  # its mm's teardown has begun in the kernel
            self._kmem(e)
        else:
            if self._dirty:  # faults only allocate: the peak is before a non-fault event
                self._sample()
            handler = _HANDLERS.get(kind)
            if handler is not None:
                for run in self._live_runs(stop_at):
                    handler(self, run, e)
            if kind is Call:
                self.calls[e.tid] = e
                if e.name not in ("exit", "exit_group"):
                    self.in_flight.add(e.tid)
                if e.name in ("execve", "execveat"):
                    self.in_execve.add(e.tid)
                    if e.tid == self.root:
                        self.root_pre_exec = False
            elif kind is Exec:
                self.in_execve.discard(e.old_tid)
                if e.old_tid != e.tid:  # the execve returns in the leader's tid
                    self.in_flight.discard(e.old_tid)
                    self.in_flight.add(e.tid)
                    if e.old_tid in self.calls:
                        self.calls[e.tid] = self.calls.pop(e.old_tid)
            elif kind is Ret:
                self.in_flight.discard(e.tid)
                if e.name in ("execve", "execveat"):
                    self.in_execve.discard(e.tid)  # a failed execve
            elif kind is Exit:
                self.in_flight.discard(e.tid)
            self._sample()
            ce = self.check_every
            if ce and (ce < 0 or kind is Snap or self.index % ce == 0):
                self._check(e.line)
        self.index += 1

    def _check(self, line: int) -> None:
        from rmaplab.check import check_machine

        for run in self.runs.values():
            if run.violation is None:
                run.checks += 1
                errs = check_machine(run.machine)
                if errs:
                    run.violation = f"line {line}: {errs[0]}"

    def _live_runs(self, stop_at: dict[str, int] | None) -> list[DesignRun]:
        if stop_at is None:
            return list(self.runs.values())
        return [r for d, r in self.runs.items() if self.index < stop_at.get(d, 1 << 62)]

    def _sample(self) -> None:
        self._dirty = False
        for run in self.runs.values():
            mem = run.machine.design.memory()
            total = sum(b for _n, b in mem.values())
            if not self.in_flight:
                po = run.peak_objects
                for kind, (n, _b) in mem.items():
                    if n > po[kind]:
                        po[kind] = n
            if total > run.peak_bytes:
                run.peak_bytes, run.peak_event, run.peak = total, self.index, mem

    # ---------------------------------------------------------------- kernel
    def _kmem(self, e: Alloc | Free) -> None:
        k = self.kernel
        if type(e) is Alloc:
            if e.tid == self.root and self.root_pre_exec:
                self.foreign.add(e.ptr)
                k.excluded += 1
                return
            k.sites[f"A {e.kind} {e.site}"] += 1
            k.live[e.kind] += 1
            if k.live[e.kind] > k.peak[e.kind]:
                k.peak[e.kind] = k.live[e.kind]
        else:
            assert type(e) is Free
            if not e.traced or e.ptr in self.foreign:
                self.foreign.discard(e.ptr)
                k.excluded += 1
                return
            k.sites[f"D {e.kind} {e.site}"] += 1
            k.live[e.kind] -= 1

    # ------------------------------------------------------------ task events
    def _start(self, run: DesignRun, e: Start) -> None:
        m = run.machine
        self.root = e.tid
        self.root_pre_exec = True
        mm = m.new_mm(f"T{e.tid}", None)
        m.mms[mm.id] = mm
        t = Task(f"T{e.tid}", mm)
        m.tasks[t.name] = t
        run.tasks[e.tid] = t
        self._count(run, "start")

    def _fork(self, run: DesignRun, e: Fork) -> None:
        parent = run.tasks.get(e.tid)
        if parent is None:
            run.diverge(e.line, f"fork by unknown task {e.tid}")
            return
        run.tasks[e.child] = run.machine.copy_process(parent, f"T{e.child}",
                                                      e.flags & CLONE_VM)
        self._count(run, "fork" if not e.flags & CLONE_VM else "clone(CLONE_VM)")

    def _exec(self, run: DesignRun, e: Exec) -> None:
        m = run.machine
        if e.old_tid != e.tid:  # a non-leader thread exec'd: it takes the leader's tid
            t = run.tasks.pop(e.old_tid, None)
            if t is None:
                run.diverge(e.line, f"exec by unknown task {e.old_tid}")
                return
            del m.tasks[t.name]
            t.name = f"T{e.tid}"
            m.tasks[t.name] = t
            run.tasks[e.tid] = t
        t = run.tasks.get(e.tid)
        if t is None:
            run.diverge(e.line, f"exec by unknown task {e.tid}")
            return
        layout = [self._exec_vma(m, v) for v in e.vmas]
        m.do_execve(t, layout, e.start_brk >> PAGE_SHIFT)
        self._count(run, "exec")
        self._check_layout(run, e.line, t.mm, [(0, 1 << 52)], e.vmas, "exec")

    def _exec_vma(self, m: Machine, v: Vma) -> ExecVma:
        start, end = v.start >> PAGE_SHIFT, v.end >> PAGE_SHIFT
        if v.vmflags:
            flags = flags_from_mnemonics(list(v.vmflags))
        else:  # not read: the permissions, as mmap would set them
            flags = _perm_flags(v.perms) | VM_MAY_ALL
        f = self._file(m, v)
        pgoff = (v.pgoff >> PAGE_SHIFT) if f is not None else start
        pages = [start + i for lo, hi, _k in (v.anon or ()) for i in range(lo, hi + 1)]
        return ExecVma(start, end, flags, pgoff, f, v.path or None, pages)

    @staticmethod
    def _file(m: Machine, v: Vma) -> File | None:
        """The model's file for a VMA's (device, inode), sized as recorded."""
        if not v.inode:
            return None
        f = m.file(f"{v.dev}:{v.inode}")
        f.ident = (int(v.dev.split(":")[0], 16) << 20 | int(v.dev.split(":")[1], 16), v.inode)
        if v.file_size is not None:
            f.size = max(f.size, _pages_up(v.file_size))
        if "/SYSV" in v.path or v.path.startswith("/dev/zero") or "memfd:" in v.path:
            f.shmem = True
        return f

    def _exit(self, run: DesignRun, e: Exit) -> None:
        if run is next(iter(self.runs.values())):
            self.exiting.append(e.tid)

    def _flush_exits(self, stop_at: dict[str, int] | None) -> None:
        """``do_exit`` -> ``exit_mm`` of the tasks whose exit stop was seen."""
        for tid in self.exiting:
            for run in self._live_runs(stop_at):
                t = run.tasks.pop(tid, None)
                if t is None:
                    continue  # the old leader of an exec'ing thread group, replaced
                run.machine.exit_task(t)
                self._count(run, "exit")
        self.exiting.clear()
        self._sample()

    def _snap(self, run: DesignRun, e: Snap) -> None:
        """The kernel's present anonymous pages of the mm against the model's;
        the kernel's extra pages were populated without a fault (GUP) and
        are faulted in, the model's extra ones counted."""
        t = run.tasks.get(e.tid)
        if t is None:
            return
        m, mm = run.machine, t.mm
        model = _anon_pages(mm)
        kernel: set[int] = set()
        for v in e.vmas:
            start = v.start >> PAGE_SHIFT
            for lo, hi, _k in v.anon or ():
                kernel.update(range(start + lo, start + hi + 1))
        run.agreeing_pages += len(model & kernel)
        run.model_only_pages += len(model - kernel)
        for vpn in sorted(kernel - model):
            vma = mm.vmas.find(vpn)
            if vma is not None and not m.force_write_fault(mm, vma, vpn):
                run.synced_pages += 1
        self._count(run, "snap")

    def _fault(self, e: Fault, stop_at: dict[str, int] | None) -> None:
        if (e.tid == self.root and self.root_pre_exec) or e.tid in self.in_execve:
            self.applied["fault in execve (in the layout)"] += 1
            self.index += 1
            return
        vpn, write = e.addr >> PAGE_SHIFT, bool(e.error_code & X86_PF_WRITE)
        for run in self._live_runs(stop_at):
            t = run.tasks.get(e.tid)
            if t is None:
                run.diverge(e.line, f"fault by unknown task {e.tid}")
                continue
            m = run.machine
            if m.fault_at(t.mm, vpn, write):
                vma = t.mm.vmas.find(vpn)
                f = vma.file if vma is not None else None
                if f is not None and vma is not None and vma.linear_page_index(vpn) >= f.size:
                    # the file grew since it was mapped (write(), ftruncate():
                    # not traced): the page exists, as the kernel found it
                    f.size = vma.linear_page_index(vpn) + 1
                    run.files_grown += 1
                    if not m.fault_at(t.mm, vpn, write):
                        continue
                if e.user:
                    run.refused_faults += 1
                else:
                    run.kernel_efaults += 1
        self.applied["fault"] += 1
        self._dirty = True
        self.index += 1

    # -------------------------------------------------------------- syscalls
    def _ret(self, run: DesignRun, e: Ret) -> None:
        call = self.calls.get(e.tid)
        if call is None or call.name != e.name:
            run.diverge(e.line, f"ret {e.name} without its call")
            return
        if e.name in THROUGH_EVENTS:
            return
        fn = _SYSCALLS.get(e.name)
        if fn is None:
            if run is next(iter(self.runs.values())):
                self.not_modelled[e.name] += 1
            return
        t = run.tasks.get(e.tid)
        if t is None:
            run.diverge(e.line, f"{e.name} by unknown task {e.tid}")
            return
        self.current = e.tid
        if (e.tid, call.line) in self.early:  # done already, before another's call
            if run is list(self.runs.values())[-1]:
                self.early.discard((e.tid, call.line))
            a = call.args
            ranges = [(a[0], a[0] + a[1])] + ([(e.ret, e.ret + a[2])] if e.name == "mremap"
                                              else [])
        else:
            if e.name in ("mmap", "mremap", "shmat") and e.ret >= 0:
                self._vacated_first(run, t.mm, e)
            ranges = fn(self, run, t.mm, call.args, e)
        self._count(run, e.name)
        if ranges:
            self._check_layout(run, e.line, t.mm, ranges, e.vmas, e.name)

    def _vacated_first(self, run: DesignRun, mm: Mm, e: Ret) -> None:
        """Another thread's ``munmap`` or moving ``mremap``, still in flight,
        whose source range holds the address this call returned, completed
        first: the kernel serialised it under the mmap lock, then gave its
        space to this call.  It is applied now, a munmap from its arguments,
        an mremap with the result its own ``ret`` will show (read ahead in
        the trace); its ``ret`` then only checks the layout."""
        lo = e.ret
        for tid in list(self.in_flight):
            c = self.calls.get(tid)
            if c is None or tid == e.tid or c.name not in ("munmap", "mremap"):
                continue
            t = run.tasks.get(tid)
            if t is None or t.mm is not mm or not c.args[0] <= lo < c.args[0] + c.args[1]:
                continue
            if c.name == "munmap":
                self._munmap(run, mm, c.args, Ret(tid, e.time, "munmap", 0, (), e.line))
            else:
                ahead = self._ret_ahead(tid, c.line)
                if ahead is None or ahead.ret < 0 or ahead.ret == c.args[0]:
                    continue  # it failed or stayed in place: it vacated nothing
                self._mremap(run, mm, c.args, ahead)
            self.early.add((tid, c.line))
            run.reordered += 1

    def _ret_ahead(self, tid: int, call_line: int) -> Ret | None:
        """The ``ret`` of the syscall ``tid`` entered at ``call_line``, read
        ahead in the trace (O(trace) per use; used only for races between
        threads of one mm, a handful per trace); cached."""
        key = (tid, call_line)
        if key not in self._ahead:
            found = None
            for ev in TraceReader(self.path, allow_incomplete=True):
                if ev.line > call_line and type(ev) is Ret and ev.tid == tid:
                    found = ev
                    break
            self._ahead[key] = found
        return self._ahead[key]

    def _count(self, run: DesignRun, what: str) -> None:
        if run is next(iter(self.runs.values())):
            self.applied[what] += 1

    def _check_layout(self, run: DesignRun, line: int, mm: Mm, ranges: list[tuple[int, int]],
                      vmas: tuple[Vma, ...], what: str) -> None:
        """The model's VMAs meeting ``ranges`` (bytes) against the kernel's."""
        kernel = {(v.start >> PAGE_SHIFT, v.end >> PAGE_SHIFT, v.perms) for v in vmas}
        model: set[tuple[int, int, str]] = set()
        for lo, hi in ranges:
            lo_p, hi_p = lo >> PAGE_SHIFT, _pages_up(hi)
            if hi_p <= lo_p:
                continue
            for v in mm.vmas.overlapping(lo_p, hi_p):
                model.add((v.start, v.end, _perms(v.flags)))
        if kernel != model and any(
                tid != self.current and (t := run.tasks.get(tid)) is not None and t.mm is mm
                for tid in self.in_flight):
            run.concurrent += 1
        elif kernel != model:
            def show(s: set[tuple[int, int, str]]) -> str:
                return " ".join(f"{a << PAGE_SHIFT:x}-{b << PAGE_SHIFT:x} {p}"
                                for a, b, p in sorted(s)) or "nothing"
            run.diverge(line, f"after {what}: kernel has {show(kernel - model)}, "
                        f"model {show(model - kernel)}")

    def _mmap(self, run: DesignRun, mm: Mm, a: tuple[int, ...], e: Ret
              ) -> list[tuple[int, int]]:
        if e.ret < 0:
            return []
        length, prot, flags, off = a[1], _s32(a[2]), _s32(a[3]), a[5]
        if flags & MAP_HUGETLB:
            self.not_modelled["mmap(MAP_HUGETLB)"] += 1
            return [(e.ret, e.ret + length)]
        m = run.machine
        f = None
        if not flags & MAP_ANONYMOUS:
            at = next((v for v in e.vmas if v.start <= e.ret < v.end), None)
            f = self._file(m, at) if at is not None else None
        r = self._do_mmap(m, mm, e.ret >> PAGE_SHIFT, _pages_up(length), prot, flags, f,
                          off >> PAGE_SHIFT, e.line, run)
        if r:
            run.diverge(e.line, f"the model's mmap failed ({r}) where the kernel's did not")
        return [(e.ret, e.ret + length)]

    @staticmethod
    def _do_mmap(m: Machine, mm: Mm, vpn: int, npages: int, prot: int, flags: int,
                 f: File | None, pgoff: int, line: int, run: DesignRun) -> int:
        try:
            return m.do_mmap(mm, vpn, npages, prot, flags, f, pgoff)
        except ValueError:
            # the kernel found [vpn, vpn+npages) free and the model did not
            run.diverge(line, "the kernel mapped where the model still has VMAs")
            return m.do_mmap(mm, vpn, npages, prot, flags | MAP_FIXED, f, pgoff)

    def _munmap(self, run: DesignRun, mm: Mm, a: tuple[int, ...], e: Ret
                ) -> list[tuple[int, int]]:
        start, length = a[0], a[1]
        if e.ret == 0 and length:
            m = run.machine
            m.mmap_write_lock(mm)
            m.do_munmap(mm, start >> PAGE_SHIFT, _pages_up(start + length))
            m.mmap_write_unlock(mm)
        return [(start, start + length)]

    def _mprotect(self, run: DesignRun, mm: Mm, a: tuple[int, ...], e: Ret
                  ) -> list[tuple[int, int]]:
        start, length, prot = a[0], a[1], _s32(a[2])
        pkey = _s32(a[3]) if e.name == "pkey_mprotect" else -1
        if length:
            r = run.machine.do_mprotect(mm, start >> PAGE_SHIFT, _pages_up(start + length),
                                        prot, pkey)
            if (r == 0) != (e.ret == 0):
                run.diverge(e.line, f"mprotect returned {r} in the model, {e.ret} in the kernel")
        return [(start, start + length)]

    def _madvise(self, run: DesignRun, mm: Mm, a: tuple[int, ...], e: Ret
                 ) -> list[tuple[int, int]]:
        start, length, advice = a[0], a[1], ADVICE_BY_NUMBER.get(_s32(a[2]))
        if advice is None:
            self.not_modelled[f"madvise({_s32(a[2])})"] += 1
            return [(start, start + length)]
        if length and e.ret == 0:
            r = run.machine.do_madvise(mm, start >> PAGE_SHIFT, _pages_up(start + length),
                                       advice)
            if r:
                run.diverge(e.line, f"madvise {advice} returned {r} in the model, 0 in the kernel")
        return [(start, start + length)]

    def _mremap(self, run: DesignRun, mm: Mm, a: tuple[int, ...], e: Ret
                ) -> list[tuple[int, int]]:
        old, old_len, new_len, flags, new = a[0], a[1], a[2], _s32(a[3]), a[4]
        if e.ret < 0:
            return [(old, old + old_len)]
        m = run.machine
        if e.ret != old:
            m.chosen_area = e.ret >> PAGE_SHIFT
        r = m.do_mremap(mm, old >> PAGE_SHIFT, _pages_up(old_len), _pages_up(new_len), flags,
                        new >> PAGE_SHIFT)
        m.chosen_area = None
        if r:
            run.diverge(e.line, f"mremap failed in the model ({r}), not in the kernel")
        return [(old, old + old_len), (e.ret, e.ret + new_len)]

    def _brk(self, run: DesignRun, mm: Mm, a: tuple[int, ...], e: Ret
             ) -> list[tuple[int, int]]:
        if a[0] == 0 or mm.start_brk is None:
            return []  # brk(0) asks for the break
        old = mm.brk or mm.start_brk
        got = run.machine.do_brk(mm, _pages_up(a[0]))
        if got != _pages_up(e.ret):
            run.diverge(e.line, f"brk is at {got << PAGE_SHIFT:#x} in the model, "
                        f"{_pages_up(e.ret) << PAGE_SHIFT:#x} in the kernel")
        return [(mm.start_brk << PAGE_SHIFT, max(old, got) << PAGE_SHIFT)]

    def _mlock(self, run: DesignRun, mm: Mm, a: tuple[int, ...], e: Ret
               ) -> list[tuple[int, int]]:
        start, length = a[0], a[1]
        lo, hi = start >> PAGE_SHIFT, _pages_up(start + length)
        m = run.machine
        if e.ret == 0 and hi > lo:
            if e.name == "munlock":
                m.do_munlock(mm, lo, hi)
            else:
                m.do_mlock(mm, lo, hi, _s32(a[2]) if e.name == "mlock2" else 0)
        return [(start, start + length)]

    def _mlockall(self, run: DesignRun, mm: Mm, a: tuple[int, ...], e: Ret
                  ) -> list[tuple[int, int]]:
        if e.ret == 0:
            if e.name == "munlockall":
                run.machine.do_munlockall(mm)
            else:
                run.machine.do_mlockall(mm, _s32(a[0]))
        return [(0, 1 << 52)]

    def _shmat(self, run: DesignRun, mm: Mm, a: tuple[int, ...], e: Ret
               ) -> list[tuple[int, int]]:
        if e.ret < 0:
            return []
        at = next((v for v in e.vmas if v.start <= e.ret < v.end), None)
        if at is None:
            run.diverge(e.line, "shmat: the trace has no VMA at the address returned")
            return []
        m = run.machine
        f = self._file(m, at)
        prot = 1 if _s32(a[2]) & SHM_RDONLY else 3
        self._do_mmap(m, mm, at.start >> PAGE_SHIFT, (at.end - at.start) >> PAGE_SHIFT, prot,
                      MAP_SHARED, f, at.pgoff >> PAGE_SHIFT, e.line, run)
        return [(at.start, at.end)]

    def _shmdt(self, run: DesignRun, mm: Mm, a: tuple[int, ...], e: Ret
               ) -> list[tuple[int, int]]:
        """``shmdt()``: unmap the segment's VMAs from the one at the address on."""
        if e.ret != 0:
            return []
        vpn = a[0] >> PAGE_SHIFT
        first = mm.vmas.find(vpn)
        if first is None or first.start != vpn or first.file is None:
            run.diverge(e.line, "shmdt: no shared segment at that address in the model")
            return []
        end = first.end
        for v in mm.vmas.overlapping(first.end, 1 << 52):
            if v.start != end or v.file is not first.file:
                break
            end = v.end
        m = run.machine
        m.mmap_write_lock(mm)
        m.do_munmap(mm, vpn, end)
        m.mmap_write_unlock(mm)
        return [(vpn << PAGE_SHIFT, end << PAGE_SHIFT)]


def _perm_flags(perms: str) -> int:
    f = (VM_READ if perms[0] == "r" else 0) | (VM_WRITE if perms[1] == "w" else 0)
    f |= VM_EXEC if perms[2] == "x" else 0
    return f | (VM_MAYSHARE | VM_SHARED if perms[3] == "s" else 0)


def _anon_pages(mm: Mm) -> set[int]:
    """Pages of ``mm`` mapping anonymous memory, present or swapped out (what
    PAGEMAP_SCAN reports as a trace's ANON field)."""
    out: set[int] = set()
    for vpn, e in mm.pt.entries():
        t = type(e)
        if t is Pte:
            if e.folio.anon and not e.folio.zero:  # type: ignore[union-attr]
                out.add(vpn)
        elif t is PmdMap:
            if e.folio.anon and not e.folio.zero:  # type: ignore[union-attr]
                out.update(range(vpn, vpn + 512))
        elif t is SwapPte:
            out.add(vpn)
    return out


_HANDLERS: dict[type, Any] = {
    Start: Replayer._start, Fork: Replayer._fork, Exec: Replayer._exec,
    Exit: Replayer._exit, Snap: Replayer._snap, Ret: Replayer._ret,
}
_SYSCALLS: dict[str, Any] = {
    "mmap": Replayer._mmap, "munmap": Replayer._munmap, "mprotect": Replayer._mprotect,
    "pkey_mprotect": Replayer._mprotect, "madvise": Replayer._madvise,
    "mremap": Replayer._mremap, "brk": Replayer._brk, "mlock": Replayer._mlock,
    "mlock2": Replayer._mlock, "munlock": Replayer._mlock, "mlockall": Replayer._mlockall,
    "munlockall": Replayer._mlockall, "shmat": Replayer._shmat, "shmdt": Replayer._shmdt,
}
assert set(_SYSCALLS) == set(MODELLED)


def replay(path: str | Path, designs: list[str], *, walks: bool = True,
           allow_incomplete: bool = False, progress: Any = None,
           check_every: int = 0) -> ReplayResult:
    """Replay the trace at ``path`` through ``designs``.

    Raises :class:`~rmaplab.errors.ScenarioError` (file and line) for a bad
    or, unless ``allow_incomplete``, incomplete trace.
    """
    t0 = time.perf_counter()
    path = str(path)
    header: dict[str, Any] = read_header(path)
    if not header.get("complete") and not allow_incomplete:
        why = "; ".join(str(r) for r in header.get("incomplete_reasons", []) or ["?"])
        raise ScenarioError(path, 1, f"incomplete trace ({why}); "
                            "replay it anyway with --allow-incomplete")
    thp = _thp_mode(str(header.get("thp", "madvise")))
    rp = Replayer(designs, thp, path, check_every)
    for e in TraceReader(path, allow_incomplete=allow_incomplete):
        rp.feed(e)
        if progress is not None and rp.index & 0xFFFF == 0:
            progress.step(0xFFFF)
    rp._flush_exits(None)
    rp._sample()
    if walks:
        _walks_at_peaks(path, designs, thp, rp, allow_incomplete)
    return ReplayResult(path, header, rp.index, rp.applied, rp.not_modelled, rp.kernel,
                        rp.runs, time.perf_counter() - t0)


def _thp_mode(s: str) -> str:
    """``always [madvise] never`` -> ``madvise``."""
    if "[" in s:
        s = s[s.index("[") + 1:s.index("]")]
    return s if s in ("always", "madvise", "never") else "madvise"


def _walks_at_peaks(path: str, designs: list[str], thp: str, rp: Replayer,
                    allow_incomplete: bool) -> None:
    """Second pass: each design's machine up to (and including) the event of
    its memory peak, then one rmap walk of every mapped anonymous folio,
    counting the VMAs it examines (``cost["vmas"]``)."""
    stop = {d: r.peak_event + 1 for d, r in rp.runs.items()}
    again = Replayer(designs, thp, path)
    last = max(stop.values())
    for e in TraceReader(path, allow_incomplete=allow_incomplete):
        if again.index >= last:
            break
        again.feed(e, stop)
    from rmaplab.report import walk_vmas

    for d, run in again.runs.items():
        rp.runs[d].walks = walk_vmas(run.machine)


# ------------------------------------------------------------------ report
def kernel_vs_model(r: ReplayResult, design: str = "classic") -> list[tuple[str, int, int]]:
    """(what, kernel, model) rows: allocations and frees per call site, the
    comparison the replay's verdict (and exit status) rests on."""
    kmem = r.runs[design].machine.design.kmem
    return [(k, r.kernel.sites.get(k, 0), kmem.get(k, 0))
            for k in sorted(set(r.kernel.sites) | set(kmem))]


def peak_rows(r: ReplayResult, design: str = "classic") -> list[tuple[str, int, int]]:
    """(what, kernel, model): the most live objects of each kind at a moment
    when no traced syscall was in flight.  Exact for one task at a time;
    with tasks on several CPUs a teardown in the kernel interleaves with
    other tasks' work while the model does it at once, so a difference of a
    few objects is the trace's ordering, not the model (shown, not judged)."""
    run = r.runs[design]
    return [(f"peak live {kind} (between syscalls)", r.kernel.peak_between.get(kind, 0),
             run.peak_objects.get(key, 0))
            for kind, key in (("av", "anon_vma"), ("avc", "anon_vma_chain"))]


def format_result(r: ReplayResult) -> list[str]:
    """The text ``rmaplab replay`` prints for one trace."""
    h = r.header
    argv = " ".join(str(a) for a in h.get("argv", []))
    out = [f"{r.path}: {argv}",
           f"  recorded on Linux {h.get('kernel_release', '?')} ({h.get('machine', '?')}), "
           f"THP {_thp_mode(str(h.get('thp', '?')))}; {r.events:,} events replayed in "
           f"{r.seconds:.2f} s ({r.events / max(r.seconds, 1e-9):,.0f} events/s, "
           f"{len(r.runs)} design(s))"]
    applied = ", ".join(f"{k} {v:,}" for k, v in sorted(r.applied.items(), key=lambda x: -x[1]))
    out.append(f"  replayed: {applied}")
    if r.not_modelled:
        out.append("  not modelled: " + ", ".join(f"{k} {v:,}" for k, v in
                                                   sorted(r.not_modelled.items())))
    if "classic" in r.runs:
        rows = kernel_vs_model(r)
        same = all(k == m for _w, k, m in rows)
        out.append("  kernel vs classic model (kmem_cache_alloc/free by call site):"
                   + ("  all equal" if same else "  DIFFERENT"))
        out.append(f"    {'':34} {'kernel':>9} {'model':>9}")
        for what, k, m in rows:
            out.append(f"    {what:34} {k:9,} {m:9,}" + ("" if k == m else "   <-- differs"))
        for what, k, m in peak_rows(r):
            out.append(f"    {what:34} {k:9,} {m:9,}" + ("" if k == m else
                                                        "   (tasks ran concurrently)"))
        out.append("    the kernel's peak inside syscalls: "
                   + ", ".join(f"{k} {v:,}" for k, v in sorted(r.kernel.peak.items())))
    names = list(r.runs)
    kinds = sorted({k for run in r.runs.values() for k in run.peak})
    out.append("  memory at each design's peak (KB):")
    out.append("    " + f"{'object':18}" + "".join(f"{n:>14}" for n in names))
    for kind in kinds:
        out.append("    " + f"{kind:18}" + "".join(
            f"{r.runs[n].peak.get(kind, (0, 0))[1] / 1024:14,.2f}" for n in names))
    out.append("    " + f"{'total':18}" + "".join(f"{r.runs[n].peak_bytes / 1024:14,.2f}"
                                                   for n in names))
    if all(r.runs[n].walks is not None for n in names):
        out.append("    " + f"{'walk VMAs mean':18}" + "".join(
            f"{_mean(r.runs[n].walks):14.2f}" for n in names))
        out.append("    " + f"{'walk VMAs worst':18}" + "".join(
            f"{max(r.runs[n].walks or [0]):14}" for n in names))
    for n in names:
        run = r.runs[n]
        what = ("layout divergence(s) from the kernel" if n == "classic" else
                "layout difference(s) from the kernel (this design's own merge rules "
                "or a divergence)")
        out.append(f"  {n}: {run.divergences} {what}, {run.concurrent} while another thread's "
                   f"syscall was in flight ({run.reordered} munmap/mremap(s) applied before the "
                   f"call that reused their range); faults: {run.refused_faults} user fault(s) "
                   f"refused (SIGSEGV/SIGBUS in the model), {run.kernel_efaults} kernel-mode "
                   f"(-EFAULT), {run.files_grown} beyond a file's recorded size; snapshots: "
                   f"{run.agreeing_pages:,} pages agree, {run.synced_pages:,} populated "
                   f"without a fault, {run.model_only_pages:,} only in the model")
        for d in run.first:
            out.append(f"    {d}")
        if run.checks:
            out.append(f"    rmaplab check: {run.checks:,} checks of every mapped folio's walk, "
                       + (f"FAILED at {run.violation}" if run.violation else "no violation"))
    return out


def _mean(w: list[int] | None) -> float:
    return sum(w) / len(w) if w else 0.0


def _kinds(sites: Counter[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for kind, key in (("av", "anon_vma"), ("avc", "anon_vma_chain")):
        out[key] = {"alloc": sum(v for k, v in sites.items() if k.startswith(f"A {kind} ")),
                    "free": sum(v for k, v in sites.items() if k.startswith(f"D {kind} "))}
    return out


def result_json(r: ReplayResult) -> dict[str, Any]:
    """The result as JSON-able data (``rmaplab replay --json``): ``kernel``
    and ``model`` (the classic design) with alloc/free per kind and per
    call site, ``events``, ``processes``, ``wall_s``, then per design."""
    model = r.runs["classic"].machine.design.kmem if "classic" in r.runs else Counter()
    return {
        "kernel": {**_kinds(r.kernel.sites), "sites": dict(r.kernel.sites)},
        "model": ({**_kinds(model), "sites": dict(model)} if "classic" in r.runs else None),
        "processes": r.applied.get("start", 0) + r.applied.get("fork", 0),
        "tasks": (r.applied.get("start", 0) + r.applied.get("fork", 0)
                  + r.applied.get("clone(CLONE_VM)", 0)),
        "wall_s": round(r.seconds, 3),
        "trace": r.path, "argv": r.header.get("argv"), "events": r.events,
        "seconds": round(r.seconds, 3), "applied": dict(r.applied),
        "not_modelled": dict(r.not_modelled),
        "kernel_peaks": {"peak": dict(r.kernel.peak),
                   "peak_between_events": dict(r.kernel.peak_between),
                   "excluded_pre_exec": r.kernel.excluded},
        "kernel_vs_classic": ([{"what": w, "kernel": k, "model": m}
                               for w, k, m in kernel_vs_model(r)] if "classic" in r.runs
                              else None),
        "peaks_between_syscalls": ([{"what": w, "kernel": k, "model": m}
                                    for w, k, m in peak_rows(r)] if "classic" in r.runs
                                   else None),
        "designs": {n: {"peak_bytes": run.peak_bytes, "peak_event": run.peak_event,
                        "peak": {k: {"objects": v[0], "bytes": v[1]}
                                 for k, v in run.peak.items()},
                        "walks": ({"folios": len(run.walks), "mean_vmas": _mean(run.walks),
                                   "worst_vmas": max(run.walks or [0])}
                                  if run.walks is not None else None),
                        "divergences": run.divergences, "first_divergences": run.first,
                        "concurrent_differences": run.concurrent,
                        "munmaps_reordered": run.reordered,
                        "checks": run.checks, "violation": run.violation,
                        "refused_faults": run.refused_faults,
                        "kernel_efaults": run.kernel_efaults, "files_grown": run.files_grown,
                        "snapshot_pages": {"agree": run.agreeing_pages,
                                           "populated_without_fault": run.synced_pages,
                                           "model_only": run.model_only_pages}}
                    for n, run in r.runs.items()},
    }
