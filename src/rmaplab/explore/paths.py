"""Kernel paths as step functions over the machine and the designs.

Each path is a generator yielding :class:`~rmaplab.explore.world.Step`
objects at every lock acquire/release, RCU boundary and read or write of
shared state; the effects between two yields are atomic.  The paths call
the same design hooks as the sequential machine, at the same points, with
the locks the kernel holds around them:

* ``fork_path``: ``dup_mmap`` (mmap_lock of both mms, per VMA
  ``vma_start_write``, ``anon_vma_fork`` under the anon_vma root lock, then
  ``copy_page_range`` under both PTLs, one PTE at a time: ``try_dup`` and the
  ANON_VMA_LAZY mapping fix-up happen there).
* ``mremap_path``: ``move_vma`` (upgrade, ``copy_vma``, ``move_ptes`` under
  both PTLs with the mapping fix-up, ``take_rmap_locks`` when the new VMA
  sorts before the old in the anon_vma tree, then the source unmap).
* ``split_path``: ``__split_vma`` (``vma_prepare`` takes the anon_vma lock).
* ``munmap_path``: detach, zap under the PTL, ``unlink_anon_vmas`` under the
  anon_vma lock, ``free_pgtables``, free the VMA.
* ``thp_split_path``: ``__split_huge_pmd`` under the PMD lock.
* walkers: ``try_to_unmap``, ``try_to_migrate`` + ``remove_migration_ptes``
  and ``folio_referenced`` (with the folio lock, as their callers hold it),
  per design: the anon_vma tree under the root rwsem (classic); the lazy
  walk under RCU with VMA references and the retry of the 2026-06-03 reply
  (ANON_VMA_LAZY; migration takes ``vma_start_read``, patch 12); the
  context traversal (CoW context: ``mmap_read_trylock`` per context in the
  correct reading, RCU only in the PoC).
"""

from __future__ import annotations

from typing import Any

from rmaplab.designs.classic import AnonVma
from rmaplab.designs.cowctx import CowContext, CowContextDesign, vma_offset
from rmaplab.designs.lazy import LazyDesign, st
from rmaplab.explore.world import (
    MigrationEntry,
    Step,
    SwapEntry,
    Thread,
    World,
    do,
    lock,
    trylock,
    unlock,
)
from rmaplab.machine.constants import ARENA_VPN, HPAGE_PMD_NR
from rmaplab.machine.flags import VM_DONTCOPY, VM_WIPEONFORK
from rmaplab.machine.folio import Folio
from rmaplab.machine.mm import Mm
from rmaplab.machine.pagetable import PmdMap, Pte
from rmaplab.machine.vma import Vma

UNMAP, MIGRATE, REMOVE_MIGRATION, REFERENCED = "unmap", "migrate", "remove_migration", "referenced"


def ptl(mm: Mm, vpn: int) -> tuple[str, str, str, int]:
    """The split PTE lock of the page table covering ``vpn`` (one per PMD;
    named by its PMD's index in the arena)."""
    return ("ptl", mm.name, "pmd", (vpn - ARENA_VPN) >> 9)


def page(vpn: int) -> str:
    p = vpn - ARENA_VPN
    return f"page {p}" if p >= 0 else f"vpn {vpn:#x}"


def av_lock(av: AnonVma) -> tuple[str, int]:
    return ("anon_vma", av.root.id)


# ---------------------------------------------------------------- rmap_one
def unmap_count(mm: Mm, folio: Folio, n: int = 1) -> None:
    """A mapping of ``folio`` becomes a swap or migration entry: the map
    count drops, but the folio stays allocated (the swap cache or the
    migration holds a reference)."""
    folio.mapcount -= n
    mc = folio.mm_counts
    if mc is not None:
        mc[mm] -= n
        if not mc[mm]:
            del mc[mm]



def rmap_one(w: World, t: str, vma: Vma, base: int, folio: Folio, action: str,
             dst: Folio | None = None) -> Thread:
    """``page_vma_mapped_walk`` + the walker's ``rmap_one`` for one VMA."""
    mm = vma.mm
    lo, hi = max(vma.start, base), min(vma.end, base + folio.nr)
    yield do(f"look up {mm.name} VMA {vma.id} [{page(vma.start)}..{page(vma.end - 1)}] "
             f"for {page(base)}")
    if lo >= hi:
        w.note(t, "-> does not cover the folio")
        return False
    b = lo >> 9
    protected = w.model.rcu_table_free and w.locks.rcu.get(t, 0) > 0
    if (mm.id, b) in w.freed_tables and b not in mm.pt.pmd and not protected:
        w.violate(t, f"{t} walks the page table of VMA {vma.id} ({mm.name} {page(lo)}) "
                     "after free_pgtables freed it (use after free)")
        return False
    yield lock(ptl(mm, lo))
    yield do(f"rmap_one ({action}) {mm.name} {page(lo)}..{page(hi - 1)}",
             sleeps=action in (UNMAP, MIGRATE))
    found = False
    pt: dict[int, Any] = mm.pt.pmd  # page tables here also hold swap entries
    e = pt.get(b)
    if isinstance(e, PmdMap):
        if e.folio is folio and action in (UNMAP, MIGRATE):
            cls = SwapEntry if action == UNMAP else MigrationEntry
            pt[b] = {b * HPAGE_PMD_NR + i: cls(folio, i) for i in range(folio.nr)}
            unmap_count(mm, folio)
            found = True
        elif e.folio is folio:
            found = True
    elif e is not None:
        for vpn in range(lo, hi):
            x = e.get(vpn)
            if x is None:
                continue
            if action == REMOVE_MIGRATION:
                if type(x) is MigrationEntry and x.folio is folio and dst is not None:
                    e[vpn] = Pte(dst, x.idx, False)
                    dst.mapcount += 1
                    found = True
                continue
            if type(x) is not Pte or x.folio is not folio or x.idx != vpn - base:
                continue
            found = True
            if action == UNMAP:
                e[vpn] = SwapEntry(folio, x.idx)
                unmap_count(mm, folio)
            elif action == MIGRATE:
                e[vpn] = MigrationEntry(folio, x.idx)
                unmap_count(mm, folio)
            w.visited.setdefault(t, set()).add((mm.id, vpn))
    w.note(t, "-> found" if found else "-> nothing there")
    yield unlock(ptl(mm, lo))
    return found


# ------------------------------------------------------------------- walkers
def walk(w: World, t: str, folio: Folio, action: str, dst: Folio | None = None,
         handle: Any = None) -> Thread:
    """``rmap_walk(folio)`` for the design of the world; returns 'done' or
    'contended' (a trylock failed: the caller gives up, as reclaim does).
    A folio that is no longer mapped has nothing to walk
    (``folio_lock_anon_vma_read`` checks ``folio_mapped``)."""
    d = w.d
    if action != REMOVE_MIGRATION:
        yield do("folio_mapped?")
        if not folio.mapcount:
            w.note(t, "-> no: nothing to walk")
            return "done"
    if isinstance(d, CowContextDesign):
        return (yield from walk_cowctx(w, t, folio, action, dst, handle))
    if isinstance(d, LazyDesign):
        return (yield from walk_lazy(w, t, folio, action, dst, handle))
    return (yield from walk_classic(w, t, folio, action, dst, handle))


def walk_classic(w: World, t: str, folio: Folio, action: str, dst: Folio | None = None,
                 av: AnonVma | None = None) -> Thread:
    """``rmap_walk_anon``: the anon_vma tree under the root rwsem (read).
    ``folio_lock_anon_vma_read``: under RCU, read ``folio->mapping`` (the
    anon_vma is SLAB_TYPESAFE_BY_RCU: reading a freed one is legal), give up
    if it is gone (``atomic_inc_not_zero`` fails) or the folio is no longer
    mapped, take the root rwsem, check ``folio_mapped`` again."""
    if av is None:
        yield Step("rcu_lock", "rcu_read_lock")
        yield do("read folio->mapping (folio_lock_anon_vma_read)")
        av = (dst or folio).mapping
        w.note(t, f"= anon_vma {av.id}")
        if av.freed:
            w.note(t, "(atomic_inc_not_zero fails: gone, the folio is unmapped)")
            yield Step("rcu_unlock", "rcu_read_unlock")
            return "done"
        av.refcount += 1  # atomic_inc_not_zero(), still inside the RCU section
        yield Step("rcu_unlock", "rcu_read_unlock (anon_vma reference taken)")
    else:
        av.refcount += 1  # the caller's anchor reference (migration)
    if av.freed:
        w.violate(t, f"{t} uses freed anon_vma {av.id} (use after free)")
        return "done"
    yield lock(av_lock(av), "r")
    if action != REMOVE_MIGRATION:
        yield do("folio_mapped? (under the anon_vma lock)")
        if not folio.mapcount:
            w.note(t, "-> no: nothing to walk")
            yield unlock(av_lock(av))
            w.d.put_anon_vma(av)
            return "done"
    yield do(f"anon_vma {av.id} interval tree query")
    first = (dst or folio).index
    cands = [(a.vma, a.vma.start + (first - a.vma.pgoff))
             for a in av.index().overlapping(first, first + folio.nr - 1)]
    w.note(t, "-> " + (", ".join(f"{v.mm.name} VMA {v.id}" for v, _ in cands) or "none"))
    for vma, base in cands:
        yield from rmap_one(w, t, vma, base, folio, action, dst)
    yield unlock(av_lock(av))
    w.d.put_anon_vma(av)
    return "done"


def walk_lazy(w: World, t: str, folio: Folio, action: str, dst: Folio | None = None,
              handle: Any = None) -> Thread:
    """ANON_VMA_LAZY's ``rmap_walk_anon``: a lazy folio is found from its
    root VMA under RCU with VMA references (migration also takes
    ``vma_start_read``, patch 12); at the end the mapping is read again and,
    if it became an anon_vma meanwhile, the walk is done once more (the
    retry of wangtao's reply; ``lazy-noretry`` omits it)."""
    d = w.d
    target = dst or folio
    yield Step("rcu_lock", "rcu_read_lock")
    anchored = handle is not None  # migration holds a reference on it
    if handle is None:
        yield do("read folio->mapping")
        handle = target.mapping
        if not isinstance(handle, AnonVma) and handle.id in d.freed_roots:
            # vma_get() of a dead root fails: upgraded meanwhile, or unmapped
            w.note(t, f"= root VMA {handle.id}, gone (vma_get fails)")
            yield do("read folio->mapping again")
            handle = target.mapping
            if not isinstance(handle, AnonVma):
                w.note(t, "= unchanged: the folio is unmapped")
                yield Step("rcu_unlock", "rcu_read_unlock")
                return "done"
    w.note(t, f"= {_anchor_name(handle)}")
    if isinstance(handle, AnonVma):
        yield Step("rcu_unlock", "rcu_read_unlock")
        # an anon_vma folio: the classic walk (folio_lock_anon_vma_read
        # reads the mapping again and takes its reference under RCU)
        return (yield from walk_classic(w, t, folio, action, dst,
                                        handle if anchored else None))
    root = handle
    if root.id in d.freed_roots:
        w.violate(t, f"{t} reads freed root VMA {root.id} (use after free)")
        return "done"
    st(root).pins += 1  # vma_get(root): the root stays allocated
    yield do("mm_mt lookup from the root VMA's mapping base")
    if root.mm.id in w.named.get("mt_destroyed", set()):
        w.violate(t, f"{t} looks up the mm_mt of {root.mm.name}, whose nodes exit_mmap freed "
                     "(mt_clear_in_rcu, then __mt_destroy: RCU does not protect them)")
        return "done"
    addr = root.start - root.pgoff + target.index
    vmas = list(root.mm.vmas.overlapping(addr, addr + folio.nr))
    w.note(t, f"-> {page(addr)}: " + (", ".join(f"VMA {v.id}" for v in vmas) or "none")
           + " (vma_get)")
    yield Step("rcu_unlock", "rcu_read_unlock")
    for vma in vmas:
        if action in (MIGRATE, REMOVE_MIGRATION):
            yield lock(("vma", vma.id), "r")  # vma_start_read (patch 12)
            if vma.detached:
                w.note(t, "-> detached: vma_start_read fails, skip")
                yield unlock(("vma", vma.id))
                continue
        yield from rmap_one(w, t, vma, addr, folio, action, dst)
        if action in (MIGRATE, REMOVE_MIGRATION):
            yield unlock(("vma", vma.id))
    yield do(f"vma_put(root VMA {root.id})")
    rs = st(root)
    rs.pins -= 1
    if not rs.members and not rs.pins and root.detached:
        d.retained.discard(root)
        d.freed_roots.add(root.id)
    if getattr(d, "retry", True):
        yield do("read folio->mapping again (retry)")
        again = target.mapping
        if again is not handle and isinstance(again, AnonVma):
            w.note(t, f"= anon_vma {again.id}: upgraded meanwhile, walk again")
            return (yield from walk_classic(w, t, folio, action, dst))
        w.note(t, "-> unchanged")
    return "done"


def walk_cowctx(w: World, t: str, folio: Folio, action: str, dst: Folio | None = None,
                handle: Any = None) -> Thread:
    """``cow_context_walk``: the folio's context, then its descendants
    (post-order, newest child first; each children list is read when the
    walk gets there).  The correct reading pins each context's VMAs with
    ``mmap_read_trylock`` (a failed trylock makes the walk 'contended': the
    caller gives up, as reclaim does) and leaves RCU around ``rmap_one``,
    which may sleep; the PoC (``cowctx-poc-shortcut``) holds RCU only."""
    poc = w.d.shortcut == "poc"
    target = dst or folio
    if handle is None:
        yield do("read folio->cow_context")
        handle = target.mapping
    c0: CowContext = handle
    w.note(t, f"= context {c0.id}")
    if c0.freed:
        w.violate(t, f"{t} uses freed context {c0.id} (use after free)")
        return "done"
    yield Step("rcu_lock", "rcu_read_lock")

    def visit(cur: CowContext, first: bool) -> Thread:
        mm = cur.mm
        yield do(f"visit context {cur.id} ({mm.name if mm else 'mm gone'})")
        if mm is None or not mm.alive:
            return "continue"
        if not poc:
            ok = yield trylock(("mmap", mm.name), "r")
            if not ok:
                w.note(t, "-> contended: give up")
                return "contended"
            # read under the mmap lock: a folio exclusive to this mm cannot
            # become shared while it is held (only this mm's fork shares it)
            yield do("folio_maybe_mapped_shared? (before)")
        shared0 = w.m.folio_maybe_mapped_shared(folio)
        w.note(t, f"-> {'shared' if shared0 else 'exclusive'}")
        offs = [0] if (poc and first and not shared0) else [0] + sorted(
            cur.offsets(target.index, target.index + folio.nr - 1) - {0})
        found = False
        for off in offs:
            yield do(f"mm_mt lookup at offset {off}")
            base = target.index + off
            for vma in list(mm.vmas.overlapping(base, base + folio.nr)):
                if vma_offset(vma) != off:
                    continue
                if not poc:
                    yield Step("rcu_unlock", "rcu_read_unlock (context and mm pinned)")
                found = (yield from rmap_one(w, t, vma, base, folio, action, dst)) or found
                if not poc:
                    yield Step("rcu_lock", "rcu_read_lock")
        if not poc:
            yield unlock(("mmap", mm.name))
        yield do("folio_maybe_mapped_shared?")
        shared1 = w.m.folio_maybe_mapped_shared(folio)
        w.note(t, f"-> {'shared' if shared1 else 'exclusive'}")
        if poc and first and not shared0 and not shared1:
            return "stop"
        # correct reading: stop only once an exclusive folio was found, and
        # never when looking for migration entries (the map count does not
        # count them)
        if not poc and found and not shared0 and not shared1 and action != REMOVE_MIGRATION:
            return "stop"
        return "continue"

    r = yield from visit(c0, True)
    if r == "contended":
        yield Step("rcu_unlock", "rcu_read_unlock")
        return r
    if r == "continue":
        yield do(f"read children of context {c0.id}")
        stack = [(c0, list(c0.children))]
        w.note(t, f"-> {[c.id for c in c0.children]}")
        while stack:
            node, kids = stack[-1]
            if kids:
                child = kids.pop(0)
                yield do(f"read children of context {child.id}")
                stack.append((child, list(child.children)))
                continue
            stack.pop()
            if node is c0:
                break
            r = yield from visit(node, False)
            if r != "continue":
                break
    yield Step("rcu_unlock", "rcu_read_unlock")
    return "contended" if r == "contended" else "done"


def unpin(w: World, folio: Folio) -> None:
    folio.pins -= 1
    if folio.anon and not folio.mapcount and not folio.pins and not folio.freed:
        w.m.free_folio(folio)


def try_to_unmap(w: World, t: str, folio: Folio) -> Thread:
    """``try_to_unmap`` with the folio locked (as shrink_folio_list holds it).
    Reports 'success' when its walk completed without contention."""
    yield lock(("folio", folio.id))
    r = yield from walk(w, t, folio, UNMAP)
    w.results[t] = "success" if r == "done" else "contended"
    yield unlock(("folio", folio.id))
    unpin(w, folio)


def folio_referenced(w: World, t: str, folio: Folio) -> Thread:
    yield lock(("folio", folio.id))
    w.named[f"{t}:start"] = mappings_of(w, folio)
    r = yield from walk(w, t, folio, REFERENCED)
    w.named[f"{t}:end"] = mappings_of(w, folio)
    w.results[t] = "success" if r == "done" else "contended"
    yield unlock(("folio", folio.id))
    unpin(w, folio)


def migrate(w: World, t: str, folio: Folio) -> Thread:
    """``migrate_folio_unmap`` -> ``try_to_migrate``; ``move_to_new_folio``
    (the new folio inherits the old one's mapping and index); then
    ``remove_migration_ptes`` walks the new folio and replaces every
    migration entry of the old one."""
    yield lock(("folio", folio.id))
    yield do("folio_get_anon_vma: folio_mapped?")
    if not folio.mapcount:
        w.note(t, "-> no: move without unmapping, nothing to restore")
        w.results[t] = "success"
        yield unlock(("folio", folio.id))
        unpin(w, folio)
        return
    handle = folio.mapping
    get_anchor(w, handle)
    w.note(t, f"-> hold {_anchor_name(handle)}")
    r = yield from walk(w, t, folio, MIGRATE)
    yield do("folio_mapped(old)?")
    if folio.mapcount:
        w.note(t, "-> still mapped: migration fails, restore")
        new = folio
    else:
        yield do("move_to_new_folio: copy data, new folio takes mapping and index")
        new = w.m.new_folio(folio.nr, anon=True)
        new.mapping, new.index = folio.mapping, folio.index
        if isinstance(w.d, CowContextDesign) and isinstance(new.mapping, CowContext):
            new.mapping.refcnt += 1
    w.named[f"{t}:new"] = new
    r = yield from walk(w, t, folio, REMOVE_MIGRATION, dst=new,
                        handle=handle if not isinstance(w.d, CowContextDesign) else None)
    w.results[t] = "success" if r == "done" else "contended"
    put_anchor(w, handle)
    yield unlock(("folio", folio.id))
    unpin(w, folio)


def _anchor_name(x: Any) -> str:
    if isinstance(x, AnonVma):
        return f"anon_vma {x.id}"
    if isinstance(x, CowContext):
        return f"context {x.id}"
    return f"root VMA {x.id}"


def get_anchor(w: World, x: Any) -> None:
    """The reference migration keeps on the folio's rmap anchor."""
    if isinstance(x, AnonVma):
        x.refcount += 1
    elif isinstance(x, CowContext):
        x.refcnt += 1
    else:
        st(x).pins += 1


def put_anchor(w: World, x: Any) -> None:
    d = w.d
    if isinstance(x, AnonVma):
        d.put_anon_vma(x)
    elif isinstance(x, CowContext):
        d.put(x)
    else:
        rs = st(x)
        rs.pins -= 1
        if not rs.members and not rs.pins and x.detached:
            d.retained.discard(x)
            d.freed_roots.add(x.id)


# ---------------------------------------------------------------- mutators
def fork_path(w: World, t: str, parent: str, child: str) -> Thread:
    """``dup_mmap``."""
    m, d = w.m, w.d
    pmm = m.mm(parent)
    yield lock(("mmap", pmm.name))
    cmm = m._new_mm(child, pmm)
    w.named.setdefault("new_mms", []).append(cmm)
    yield lock(("mmap", cmm.name))
    yield do("dup_mmap_start")
    d.dup_mmap_start(pmm, cmm)
    for vma in list(pmm.vmas):
        if vma.flags & VM_DONTCOPY:
            continue
        yield lock(("vma", vma.id))
        m.next_vma_id += 1
        tmp = Vma(m.next_vma_id, cmm, vma.start, vma.end, vma.pgoff, vma.flags, vma.file)
        tmp.anon_vma = vma.anon_vma
        if vma.flags & VM_WIPEONFORK:
            tmp.anon_vma = None
        elif vma.anon_vma is not None:
            own = vma.anon_vma if isinstance(vma.anon_vma, AnonVma) else None
            if own is not None:
                yield lock(av_lock(own))
            yield do(f"anon_vma_fork(VMA {vma.id})")
            was = vma.anon_vma
            d.anon_vma_fork(tmp, vma)
            if was is not vma.anon_vma and isinstance(vma.anon_vma, AnonVma):
                w.note(t, f"(upgrades VMA {vma.id} to anon_vma {vma.anon_vma.id})")
            w.note(t, _anchor_note(tmp))
            if own is not None:
                yield unlock(av_lock(own))
        cmm.vmas.insert(tmp)
        if vma.anon_vma is not None and not vma.flags & VM_WIPEONFORK:
            yield from copy_page_range(w, t, tmp, vma)
        yield unlock(("vma", vma.id))
    m.procs[child] = cmm
    yield do("dup_mmap_end")
    d.dup_mmap_end(pmm, cmm)
    yield unlock(("mmap", cmm.name))
    yield unlock(("mmap", pmm.name))


def _anchor_note(vma: Vma) -> str:
    a = vma.anon_vma
    if a is None:
        return ""
    if isinstance(a, AnonVma):
        return f"-> child VMA {vma.id}: anon_vma {a.id}"
    return f"-> child VMA {vma.id}: no anon_vma of its own"


def copy_page_range(w: World, t: str, dst: Vma, src: Vma) -> Thread:
    """``copy_page_range``: per page table under both PTLs, one PTE (or
    huge PMD) a step, with ``try_dup`` (and the lazy mapping fix-up)."""
    d = w.d
    spmd, dpmd = src.mm.pt.pmd, dst.mm.pt.pmd
    for b in range(src.start >> 9, ((src.end - 1) >> 9) + 1):
        if b not in spmd:
            continue
        yield lock(ptl(src.mm, b << 9))
        yield lock(ptl(dst.mm, b << 9))
        e = spmd.get(b)
        if isinstance(e, PmdMap):
            yield do(f"copy_huge_pmd {page(b << 9)}")
            f = e.folio
            if not f.zero:
                e.write = False
                f.excl = 0
                d.dup_anon_rmap(f, src, dst)
            dpmd[b] = PmdMap(f, False)
            if not f.zero:
                f.mapcount += 1
                mc = f.mm_counts
                if mc is not None:
                    mc[dst.mm] = mc.get(dst.mm, 0) + 1
        elif e is not None:
            dt: dict[int, Any] = dpmd.setdefault(b, {})  # type: ignore[assignment]
            for vpn in sorted(v for v in e if src.start <= v < src.end):
                x = e[vpn]
                yield do(f"copy PTE {page(vpn)}")
                if isinstance(x, SwapEntry):
                    dt[vpn] = type(x)(x.folio, x.idx)  # copy_nonpresent_pte
                    w.note(t, f"({'migration' if isinstance(x, MigrationEntry) else 'swap'} entry)")
                    continue
                f = x.folio
                if f.anon:
                    f.excl &= ~(1 << x.idx)
                    x.write = False
                    fl = getattr(d, "fixup_folio_lock", False) and not isinstance(f.mapping,
                                                                                  AnonVma)
                    if fl:
                        yield lock(("folio", f.id))
                    d.dup_anon_rmap(f, src, dst)
                    if fl:
                        yield unlock(("folio", f.id))
                    w.note(t, "(try_dup; mapping now "
                              + (f"anon_vma {f.mapping.id})" if isinstance(f.mapping, AnonVma)
                                 else "unchanged)"))
                dt[vpn] = Pte(f, x.idx, False)
                if not f.zero:
                    f.mapcount += 1
                    if f.mm_counts is not None:
                        f.mm_counts[dst.mm] = f.mm_counts.get(dst.mm, 0) + 1
        yield unlock(ptl(dst.mm, b << 9))
        yield unlock(ptl(src.mm, b << 9))


def mremap_path(w: World, t: str, proc: str, old: int, n: int, new: int) -> Thread:
    """``move_vma`` of [old, old+n) to ``new`` (MREMAP_FIXED, no resize)."""
    m, d = w.m, w.d
    mm = m.mm(proc)
    addr, dest = ARENA_VPN + old, ARENA_VPN + new
    yield lock(("mmap", mm.name))
    vma = mm.vmas.find(addr)
    assert vma is not None, "mremap of an unmapped page"
    yield lock(("vma", vma.id))
    yield do(f"move_vma_start(VMA {vma.id})")
    d.move_vma_start(vma)
    own = vma.anon_vma if isinstance(vma.anon_vma, AnonVma) else None
    if own is not None:
        yield lock(av_lock(own))
    yield do("copy_vma")
    new_vma, vma = m.copy_vma(vma, dest, n, vma.pgoff + (addr - vma.start))
    w.note(t, f"-> VMA {new_vma.id} at {page(dest)}")
    if own is not None:
        yield unlock(av_lock(own))
    rmap_locked = own is not None and new_vma.pgoff <= vma.pgoff  # take_rmap_locks
    if own is not None and rmap_locked:
        yield lock(av_lock(own))
        w.note(t, "(take_rmap_locks: the new VMA sorts first)")
    pmd = mm.pt.pmd
    for vpn in range(addr, addr + n):
        b = vpn >> 9
        e = pmd.get(b)
        if not isinstance(e, dict) or vpn not in e:
            continue
        nv = vpn - addr + dest
        yield lock(ptl(mm, vpn))
        if (nv >> 9) != b:
            yield lock(ptl(mm, nv))
        yield do(f"move_ptes {page(vpn)} -> {page(nv)}")
        x = e.pop(vpn)
        pmd.setdefault(nv >> 9, {})[nv] = x  # type: ignore[index]
        if isinstance(x, Pte) and x.folio.anon:
            fl = getattr(d, "fixup_folio_lock", False) and not isinstance(x.folio.mapping,
                                                                          AnonVma)
            if fl:
                yield lock(("folio", x.folio.id))
            d.move_anon_pte(x.folio, vma, new_vma, vpn, nv)
            if fl:
                yield unlock(("folio", x.folio.id))
        if (nv >> 9) != b:
            yield unlock(ptl(mm, nv))
        yield unlock(ptl(mm, vpn))
    if own is not None and rmap_locked:
        yield unlock(av_lock(own))
    yield do(f"unmap the source {page(addr)}..{page(addr + n - 1)}")
    before = set(pmd)
    m.do_munmap(mm, addr, addr + n)
    w.freed_tables |= {(mm.id, b) for b in before - set(pmd)}
    yield unlock(("vma", vma.id))
    yield unlock(("mmap", mm.name))


def split_path(w: World, t: str, proc: str, at: int) -> Thread:
    """``__split_vma`` at page ``at`` (as mprotect of the upper part does)."""
    m = w.m
    mm = m.mm(proc)
    addr = ARENA_VPN + at
    yield lock(("mmap", mm.name))
    vma = mm.vmas.find(addr)
    assert vma is not None and vma.start < addr, "split point not inside a VMA"
    yield lock(("vma", vma.id))
    own = vma.anon_vma if isinstance(vma.anon_vma, AnonVma) else None
    if own is not None:
        yield lock(av_lock(own))  # vma_prepare(): anon_vma_lock_write
    yield do(f"__split_vma(VMA {vma.id}) at {page(addr)}")
    new = m.split_vma(vma, addr, False)
    w.note(t, f"-> VMA {vma.id} keeps [{page(vma.start)}..{page(vma.end - 1)}], "
              f"new VMA {new.id} [{page(new.start)}..{page(new.end - 1)}]")
    if own is not None:
        yield unlock(av_lock(own))
    yield unlock(("vma", vma.id))
    yield unlock(("mmap", mm.name))


def zap_vmas(w: World, mm: Mm, vmas: list[Vma], what: str) -> Thread:
    """``unmap_vmas`` / ``zap_page_range``: each page table under its PTL
    (present entries and the swap or migration entries our walkers leave)."""
    for v in vmas:
        for b in range(v.start >> 9, ((v.end - 1) >> 9) + 1):
            if b not in mm.pt.pmd:
                continue
            yield lock(ptl(mm, b << 9))
            yield do(f"{what} {page(max(v.start, b << 9))}..")
            table: Any = mm.pt.pmd[b]
            if isinstance(table, dict):  # non-present entries: no map count
                for vpn in [x for x, e in table.items()
                            if isinstance(e, SwapEntry) and v.start <= x < v.end]:
                    del table[vpn]
            w.m.zap(mm, max(v.start, b << 9), min(v.end, (b + 1) << 9))
            yield unlock(ptl(mm, b << 9))


def unlink_anon_vmas(w: World, v: Vma) -> Thread:
    """``unlink_anon_vmas`` under the anon_vma root lock (if it has one)."""
    own = v.anon_vma if isinstance(v.anon_vma, AnonVma) else None
    if own is not None:
        yield lock(av_lock(own))
    yield do(f"unlink_anon_vmas(VMA {v.id})")
    w.d.unlink_anon_vmas(v)
    if own is not None:
        yield unlock(av_lock(own))


def munmap_path(w: World, t: str, proc: str, first: int, last: int) -> Thread:
    """``do_vmi_munmap`` of whole VMAs in [first, last]."""
    m, d = w.m, w.d
    mm = m.mm(proc)
    lo, hi = ARENA_VPN + first, ARENA_VPN + last + 1
    yield lock(("mmap", mm.name))
    vmas = mm.vmas.overlapping(lo, hi)
    assert all(lo <= v.start and v.end <= hi for v in vmas), "munmap must cover whole VMAs"
    for v in vmas:
        yield lock(("vma", v.id))
    yield do("detach the VMAs from mm_mt")
    prev = mm.vmas.prev(vmas[0]) if vmas else None
    nxt = mm.vmas.next(vmas[-1]) if vmas else None
    for v in vmas:
        mm.vmas.remove(v)
        v.detached = True
    yield from zap_vmas(w, mm, vmas, "zap")
    for v in vmas:
        yield from unlink_anon_vmas(w, v)
    yield do("free_pgtables")
    floor = prev.end if prev else 0
    ceiling = nxt.start if nxt else 1 << 62
    before = set(mm.pt.pmd)
    for v in vmas:
        for b in range(v.start >> 9, ((v.end - 1) >> 9) + 1):
            if (b in mm.pt.pmd and b * HPAGE_PMD_NR >= floor
                    and (b + 1) * HPAGE_PMD_NR <= ceiling and not mm.pt.pmd[b]):
                del mm.pt.pmd[b]
    w.freed_tables |= {(mm.id, b) for b in before - set(mm.pt.pmd)}
    yield do("remove_vma")
    for v in vmas:
        d.vma_removed(v)
    for v in vmas:
        yield unlock(("vma", v.id))
    yield unlock(("mmap", mm.name))


def merge_path(w: World, t: str, proc: str, first: int, last: int, prot: int) -> Thread:
    """``mprotect`` of exactly one VMA [first, last] to flags that let it
    merge with a neighbour: ``vma_modify_flags`` -> ``vma_merge_existing_range``
    -> ``commit_merge``.  The merge is one step under the locks it holds:
    ``vma_start_write`` of the VMAs involved and, in ``vma_prepare``, the
    anon_vma write lock of the surviving VMA (when it has an anon_vma)."""
    m = w.m
    mm = m.mm(proc)
    lo = ARENA_VPN + first
    yield lock(("mmap", mm.name))
    vma = mm.vmas.find(lo)
    assert vma is not None
    group = [v for v in (mm.vmas.prev(vma), vma, mm.vmas.next(vma)) if v is not None]
    for v in group:
        yield lock(("vma", v.id))
    avs = {v.anon_vma.root.id: v.anon_vma for v in group if isinstance(v.anon_vma, AnonVma)}
    for av in avs.values():
        yield lock(av_lock(av))
    yield do(f"vma_modify_flags(VMA {vma.id}): merge")
    m.mprotect(proc, first, last, prot)
    w.note(t, "-> " + ", ".join(f"VMA {v.id} [{page(v.start)}..{page(v.end - 1)}]"
                                for v in mm.vmas))
    for av in avs.values():
        yield unlock(av_lock(av))
    for v in group:
        yield unlock(("vma", v.id))
    yield unlock(("mmap", mm.name))


def exit_path(w: World, t: str, proc: str) -> Thread:
    """``exit_mmap``: ``unmap_vmas`` under the mmap read lock; then, under the
    write lock, ``mt_clear_in_rcu``, ``free_pgtables`` (which write-locks
    each VMA, ``unlink_anon_vmas`` under the anon_vma lock, then frees the
    page tables), ``remove_vma`` and ``__mt_destroy``.  The VMAs stay in
    mm_mt (not detached) until the end."""
    m, d = w.m, w.d
    mm = m.mm(proc)
    vmas = list(mm.vmas)
    yield lock(("mmap", mm.name), "r")
    yield from zap_vmas(w, mm, vmas, "unmap_vmas")
    yield unlock(("mmap", mm.name))
    yield lock(("mmap", mm.name))
    yield do("mt_clear_in_rcu")
    for v in vmas:
        yield lock(("vma", v.id))  # free_pgtables(mm_wr_locked): vma_start_write
        yield from unlink_anon_vmas(w, v)
    yield do("free_pgd_range")
    w.freed_tables |= {(mm.id, b) for b in mm.pt.pmd}
    mm.pt.pmd.clear()
    yield do("remove_vma, __mt_destroy")
    mm.vmas.clear()
    for v in vmas:
        v.detached = True
        d.vma_removed(v)
    w.named.setdefault("mt_destroyed", set()).add(mm.id)
    for v in vmas:
        yield unlock(("vma", v.id))
    mm.alive = False
    del m.procs[proc]
    d.exit_mm(mm)
    w.named.setdefault("new_mms", []).append(mm)  # still checked by the properties
    yield unlock(("mmap", mm.name))


def thp_split_path(w: World, t: str, proc: str, at: int) -> Thread:
    """``__split_huge_pmd`` of the PMD mapping page ``at``."""
    mm = w.m.mm(proc)
    vpn = ARENA_VPN + at
    yield lock(ptl(mm, vpn))
    yield do(f"__split_huge_pmd {page(vpn)}")
    if isinstance(mm.pt.pmd.get(vpn >> 9), PmdMap):
        w.m.split_pmd(mm, vpn >> 9)
    else:
        w.note(t, "(not PMD-mapped)")
    yield unlock(ptl(mm, vpn))


# ---------------------------------------------------------------- properties
def mappings_of(w: World, folio: Folio) -> set[tuple[int, int]]:
    """Present PTEs (mm id, vpn) mapping ``folio`` in every mm."""
    out = set()
    for mm in w.all_mms():
        for vpn, e in mm.pt.present():
            if type(e) is Pte and e.folio is folio:
                out.add((mm.id, vpn))
            elif type(e) is PmdMap and e.folio is folio:
                out.update((mm.id, vpn + i) for i in range(folio.nr))
    return out


def map_count_errors(w: World) -> list[str]:
    """Folios whose map count differs from the present entries mapping them
    (a PMD mapping counts once): a bug of the paths, not of a design."""
    seen: dict[Folio, int] = {}
    for mm in w.all_mms():
        for _vpn, e in mm.pt.present():
            if type(e) in (Pte, PmdMap) and e.folio.anon and not e.folio.zero:
                seen[e.folio] = seen.get(e.folio, 0) + 1
    folios = set(seen) | set(w.m.anon_folios.values())
    return [f"model error: folio {f.id} has map count {f.mapcount}, mapped {seen.get(f, 0)} times"
            for f in sorted(folios, key=lambda f: f.id) if f.mapcount != seen.get(f, 0)]


def migration_entries(w: World, folio: Folio) -> list[tuple[Mm, int]]:
    """Migration entries of ``folio`` left in any page table."""
    out: list[tuple[Mm, int]] = []
    for mm in w.all_mms():
        for vpn, e in mm.pt.present():
            if type(e) is MigrationEntry and e.folio is folio:
                out.append((mm, vpn))
    return out
