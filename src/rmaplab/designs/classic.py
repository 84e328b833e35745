"""Today's design: ``anon_vma`` and ``anon_vma_chain`` (Linux 6.18 mm/rmap.c).

Objects
    :class:`AnonVma` (``struct anon_vma``: root, parent, refcount,
    num_children, num_active_vmas and the interval tree of chains) and
    :class:`Avc` (``struct anon_vma_chain``).  A VMA's chain list
    (``vma->anon_vma_chain``) is kept in ``vma.rmap`` oldest first: index 0
    is the root's chain, the last element the newest (the kernel's list
    head, ``list_add`` order).

Rules (each method cites the kernel function it mirrors):

* first fault: ``__anon_vma_prepare`` reuses an adjacent compatible
  neighbour's anon_vma (``find_mergeable_anon_vma``: next first, then prev;
  the neighbour must not be a fork child) or allocates a new root; +1 chain.
* split, mremap copy, merge: ``anon_vma_clone`` copies the whole chain.
* fork: ``anon_vma_fork`` clones the parent VMA's chain, adopting an
  ancestor with no VMA and at most one child (walking oldest first), else
  allocating a new anon_vma whose parent is the parent VMA's anon_vma.
* unmap/exit: ``unlink_anon_vmas`` frees chains; an anon_vma whose tree
  empties drops its reference (and its root's when it is freed).
* folios: exclusive new folios point to the VMA's own anon_vma, COW reuse
  moves them there (``folio_move_anon_rmap``).
* walk: ``rmap_walk_anon`` queries the folio's anon_vma tree for chains
  whose VMA page-offset range overlaps the folio.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from rmaplab.designs.base import OBJECT_BYTES, RmapDesign
from rmaplab.designs.intervals import IntervalIndex
from rmaplab.machine.design import StructEdge, StructNode
from rmaplab.machine.flags import VM_ACCESS_FLAGS, VM_SOFTDIRTY

if TYPE_CHECKING:
    from rmaplab.machine.design import RmapWalkControl
    from rmaplab.machine.folio import Folio
    from rmaplab.machine.vma import Vma


class AnonVma:
    """``struct anon_vma``."""

    __slots__ = ("id", "root", "parent", "refcount", "num_children", "num_active_vmas",
                 "avcs", "freed", "_index")

    def __init__(self, aid: int) -> None:
        self.id = aid
        self.root: AnonVma = self
        self.parent: AnonVma = self
        self.refcount = 1  # anon_vma_alloc(): "the interval tree is non-empty"
        self.num_children = 0
        self.num_active_vmas = 0
        self.avcs: dict[Avc, None] = {}
        self.freed = False
        self._index: IntervalIndex[Avc] | None = None

    def __repr__(self) -> str:
        return (f"<anon_vma {self.id} root={self.root.id} parent={self.parent.id} "
                f"ref={self.refcount} children={self.num_children} "
                f"active={self.num_active_vmas} avcs={len(self.avcs)}>")

    def index(self) -> IntervalIndex[Avc]:
        ix = self._index
        if ix is None:
            ix = self._index = IntervalIndex(
                [(a.vma.pgoff, a.vma.pgoff + a.vma.pages - 1, a) for a in self.avcs])
        return ix


class Avc:
    """``struct anon_vma_chain``: links one VMA and one anon_vma."""

    __slots__ = ("vma", "anon_vma")

    def __init__(self, vma: Vma, anon_vma: AnonVma) -> None:
        self.vma = vma
        self.anon_vma = anon_vma


def vma_had_uncowed_parents(vma: Vma | None) -> bool:
    """``vma_had_uncowed_parents()`` (mm/vma.c): a faulted VMA whose chain is
    not a single entry, i.e. inherited through fork (or split/copied from
    such a VMA)."""
    return vma is not None and vma.anon_vma is not None and len(vma.rmap) != 1


def anon_vma_compatible(a: Vma, b: Vma) -> bool:
    """``anon_vma_compatible()`` (mm/vma.c): a directly below b, same file
    and policy, flags equal but for R/W/X and soft-dirty, linear pgoff."""
    return (a.end == b.start and a.file is b.file
            and not (a.flags ^ b.flags) & ~(VM_ACCESS_FLAGS | VM_SOFTDIRTY)
            and b.pgoff == a.pgoff + (b.start - a.start))


def root_lock(av: AnonVma) -> tuple[str, int]:
    """The lock of an anon_vma hierarchy: its root's rwsem."""
    return ("anon_vma", av.root.id)


class ClassicDesign(RmapDesign):
    """anon_vma + anon_vma_chain, as in Linux 6.18."""

    name = "classic"
    summary = "today's anon_vma + anon_vma_chain (Linux 6.18 mm/rmap.c), checked against the kernel"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.live: dict[int, AnonVma] = {}
        self.n_avc = 0
        self._next_id = 0

    # ---- objects ---------------------------------------------------------------
    def anon_vma_alloc(self, site: str = "__anon_vma_prepare") -> AnonVma:
        """``anon_vma_alloc()`` (inlined into ``site``): refcount 1, root =
        parent = itself."""
        self._next_id += 1
        av = AnonVma(self._next_id)
        self.live[av.id] = av
        self.cost["allocs"] += 1
        self.kmem["A av " + site] += 1
        return av

    def anon_vma_free(self, av: AnonVma) -> None:
        av.freed = True
        del self.live[av.id]
        self.cost["t:free_anon_vma"] += 1
        self.kmem["D av __put_anon_vma"] += 1  # anon_vma_free() inlined there

    def put_anon_vma(self, av: AnonVma) -> None:
        """``put_anon_vma()``: drop a reference; the last one frees it."""
        av.refcount -= 1
        if av.refcount == 0:
            self._put_anon_vma(av)

    def _put_anon_vma(self, av: AnonVma) -> None:
        """``__put_anon_vma()``: free ``av``; a non-root drops its reference
        on the root, which may free the root too."""
        root = av.root
        self.anon_vma_free(av)
        if root is not av:
            root.refcount -= 1
            if root.refcount == 0:
                self.anon_vma_free(root)

    def anon_vma_chain_link(self, vma: Vma, av: AnonVma,
                            site: str = "__anon_vma_prepare") -> None:
        """``anon_vma_chain_alloc()`` in ``site`` + ``anon_vma_chain_link()``:
        a new chain at the head of the VMA's list and in the anon_vma's
        interval tree."""
        avc = Avc(vma, av)
        self.n_avc += 1
        self.cost["allocs"] += 1
        self.kmem["A avc " + site] += 1
        if vma.rmap is None:
            vma.rmap = []
        vma.rmap.append(avc)
        av.avcs[avc] = None
        av._index = None

    # ---- faults ------------------------------------------------------------------
    def find_mergeable_anon_vma(self, vma: Vma) -> AnonVma | None:
        """``find_mergeable_anon_vma()``: the anon_vma of the VMA starting at
        ``vma``'s end, else of the previous VMA, if compatible and not
        inherited through fork (``reusable_anon_vma``)."""
        tree = vma.mm.vmas
        nxt = tree.find(vma.end)
        if nxt is not None and anon_vma_compatible(vma, nxt):
            if nxt.anon_vma is not None and len(nxt.rmap) == 1:
                return nxt.anon_vma
        prev = tree.prev(vma) if not vma.detached else None
        if prev is not None and anon_vma_compatible(prev, vma):
            if prev.anon_vma is not None and len(prev.rmap) == 1:
                return prev.anon_vma
        return None

    def anon_vma_prepare(self, vma: Vma) -> None:
        """``__anon_vma_prepare()``: +1 chain, +1 anon_vma unless a
        neighbour's is reused."""
        if vma.anon_vma is not None:
            return
        av = self.find_mergeable_anon_vma(vma)
        if av is None:
            av = self.anon_vma_alloc()
            av.num_children += 1  # self-parent link of a root
            self.cost["t:prepare_new_root"] += 1
        else:
            self.cost["t:prepare_reuse_neighbour"] += 1
        sync = self.machine.sync
        sync.lock(root_lock(av))  # anon_vma_lock_write + page_table_lock
        self.anon_vma_chain_link(vma, av)
        vma.anon_vma = av
        av.num_active_vmas += 1
        sync.unlock(root_lock(av))

    def folio_add_new_anon_rmap(self, folio: Folio, vma: Vma, vpn: int, exclusive: bool) -> None:
        """``folio_add_new_anon_rmap()`` -> ``__folio_set_anon()``: exclusive
        folios go to the VMA's own anon_vma, others to its root."""
        av = vma.anon_vma
        folio.mapping = av if exclusive else av.root
        folio.index = vma.linear_page_index(vpn)

    def folio_move_anon_rmap(self, folio: Folio, vma: Vma) -> None:
        """``folio_move_anon_rmap()``."""
        folio.mapping = vma.anon_vma

    def ksm_might_need_to_copy(self, folio: Folio, vma: Vma, vpn: int) -> bool:
        """``ksm_might_need_to_copy()``: a swap-cache folio whose anon_vma is of
        another hierarchy, or whose index does not match the VMA, is copied."""
        av = folio.mapping
        if av is None or folio.nr > 1:
            return False
        return (av.root is not vma.anon_vma.root
                or folio.index != vma.linear_page_index(vpn))

    # ---- VMA lifecycle ------------------------------------------------------------
    def anon_vma_clone(self, dst: Vma, src: Vma, op: str) -> None:
        """``anon_vma_clone()`` (6.18): link ``dst`` to every anon_vma of
        ``src``'s chain, oldest first; reuse of an ancestor is only possible
        when ``dst.anon_vma`` is unset, i.e. from ``anon_vma_fork``."""
        if not src.rmap:
            return
        sync = self.machine.sync
        lk = root_lock(src.rmap[0].anon_vma)
        sync.lock(lk)  # lock_anon_vma_root()
        for pavc in list(src.rmap):
            av = pavc.anon_vma
            self.anon_vma_chain_link(dst, av, "anon_vma_clone")
            if (dst.anon_vma is None and src.anon_vma is not None
                    and av.num_children < 2 and av.num_active_vmas == 0):
                dst.anon_vma = av
        if dst.anon_vma is not None:
            dst.anon_vma.num_active_vmas += 1
        sync.unlock(lk)

    def anon_vma_fork(self, child_vma: Vma, parent_vma: Vma) -> None:
        """``anon_vma_fork()``: clone the parent's chain (+L chains), and
        unless an ancestor was reused, a new anon_vma (+1) with one more chain."""
        pav = parent_vma.anon_vma
        if pav is None:
            return
        sync = self.machine.sync
        act = sync.active
        if act:  # anon_vma_clone's lock_anon_vma_root, then anon_vma_lock_write
            sync.lock(root_lock(pav))
        child_vma.anon_vma = None
        # anon_vma_clone(), inlined: this is the hot path of fork
        chain: list[Avc] = []
        child_vma.rmap = chain
        reuse = None
        for pavc in parent_vma.rmap:
            av = pavc.anon_vma
            avc = Avc(child_vma, av)
            chain.append(avc)
            av.avcs[avc] = None
            av._index = None
            if reuse is None and av.num_children < 2 and av.num_active_vmas == 0:
                reuse = av
        self.n_avc += len(chain)
        self.cost["allocs"] += len(chain)
        self.cost["fork_entries"] += len(chain)
        self.kmem["A avc anon_vma_clone"] += len(chain)
        if reuse is not None:
            child_vma.anon_vma = reuse
            reuse.num_active_vmas += 1
            self.cost["t:fork_reuse_ancestor"] += 1
            if act:
                sync.unlock(root_lock(pav))
            return
        self.cost["t:fork_new_anon_vma"] += 1
        self._next_id += 1
        av = AnonVma(self._next_id)
        self.live[av.id] = av
        av.num_active_vmas = 1
        self.cost["allocs"] += 2
        self.kmem["A av anon_vma_fork"] += 1
        self.kmem["A avc anon_vma_fork"] += 1
        root = av.root = pav.root
        av.parent = pav
        root.refcount += 1  # get_anon_vma(anon_vma->root)
        child_vma.anon_vma = av
        avc = Avc(child_vma, av)
        chain.append(avc)
        av.avcs[avc] = None
        self.n_avc += 1
        pav.num_children += 1
        if act:
            sync.unlock(root_lock(pav))

    def unlink_anon_vmas(self, vma: Vma) -> None:
        """``unlink_anon_vmas()``: remove the VMA's chains; an anon_vma whose
        tree empties decrements its parent's num_children and is put."""
        chain = vma.rmap
        emptied = []
        sync = self.machine.sync
        lk = root_lock(chain[0].anon_vma) if chain else None
        if lk is not None:
            sync.lock(lk)
        if sync.active:
            sync.point(f"unlink_anon_vmas(VMA {vma.id})")
        if chain:
            for avc in reversed(chain):  # head (newest) to tail (root)
                av = avc.anon_vma
                del av.avcs[avc]
                av._index = None
                if not av.avcs:
                    av.parent.num_children -= 1
                    emptied.append(avc)
                else:
                    self.n_avc -= 1
                    self.kmem["D avc unlink_anon_vmas"] += 1
        own = self.own_anon_vma(vma)
        if own is not None:
            own.num_active_vmas -= 1
        vma.anon_vma = None
        if lk is not None:
            sync.unlock(lk)
        for avc in emptied:
            self.put_anon_vma(avc.anon_vma)
            self.n_avc -= 1
            self.kmem["D avc unlink_anon_vmas"] += 1
        vma.rmap = None

    def own_anon_vma(self, vma: Vma) -> AnonVma | None:
        """The anon_vma ``vma`` counts in (``num_active_vmas``): ``vma->anon_vma``."""
        return vma.anon_vma  # type: ignore[no-any-return]

    def vma_range_changed(self, vma: Vma) -> None:
        """The VMA's chains are re-keyed in their interval trees."""
        if vma.rmap:
            for avc in vma.rmap:
                avc.anon_vma._index = None

    def is_mergeable_anon_vma(self, tgt: Vma, src_anon: Any, src: Vma | None,
                              copied_from: Vma | None) -> bool:
        """``is_mergeable_anon_vma()`` (6.18.35+): case 1, tgt unfaulted and
        the range faulted: the source must not be a fork child; case 2, tgt
        faulted and the range not: tgt must not be a fork child; case 3, the
        same anon_vma (or both none)."""
        tgt_anon = tgt.anon_vma
        if tgt_anon is None and src_anon is not None:
            return not vma_had_uncowed_parents(src) and not vma_had_uncowed_parents(copied_from)
        if tgt_anon is not None and src_anon is None:
            return not vma_had_uncowed_parents(tgt)
        return src_anon is tgt_anon

    def anon_vma_lock_write(self, vma: Vma) -> Any:
        """``anon_vma_lock_write()``: the root rwsem of the VMA's anon_vma."""
        av = vma.anon_vma
        if not isinstance(av, AnonVma):
            return None
        lk = root_lock(av)
        self.machine.sync.lock(lk)
        return lk

    def anon_vma_unlock_write(self, token: Any) -> None:
        if token is not None:
            self.machine.sync.unlock(token)

    # ---- rmap ---------------------------------------------------------------------
    def rmap_walk(self, folio: Folio, rwc: RmapWalkControl) -> None:
        """``rmap_walk_anon()``: lock the folio's anon_vma
        (``folio_lock_anon_vma_read``: under RCU, read ``folio->mapping``, give
        up if the folio is no longer mapped, trylock the root rwsem for
        read; when that fails, give up if ``try_lock``, else pin the anon_vma
        and sleep on the lock), query its interval tree for [index, index +
        nr - 1], call ``rmap_one`` for each chain's VMA, unlock.  Without
        ``anon_lock`` (``remove_migration_ptes``) the mapping is read as is
        and locked: the caller pinned it."""
        c = self.cost
        c["walks"] += 1
        c["anchors"] += 1
        c["locks"] += 1
        c["lookups"] += 1
        sync = self.machine.sync
        if not sync.active:  # sequentially the lock protocol is moot
            av = folio.mapping
            if av is None or av.freed or (rwc.anon_lock and not folio.mapcount):
                return
            self._walk_tree(folio, av, rwc)
            return
        if not rwc.anon_lock:
            av = folio.mapping
            if av is None:
                return
            sync.use(av, self.anchor_name(av))
            lk = root_lock(av)
            sync.lock(lk, "r")
        else:
            sync.rcu_read_lock()
            sync.point("read folio->mapping (folio_lock_anon_vma_read)")
            av = folio.mapping
            if sync.active:
                sync.note(f"= {self.anchor_name(av)}")
            if av is None or not folio.mapcount:
                if sync.active:
                    sync.note("(not mapped: nothing to walk)")
                sync.rcu_read_unlock()
                return
            sync.use(av, self.anchor_name(av))
            if av.freed:  # a design bug: the oracle reports the missed mappings
                sync.rcu_read_unlock()
                return
            lk = root_lock(av)
            if sync.trylock(lk, "r"):
                sync.point("folio_mapped? (under the anon_vma lock)")
                if not folio.mapcount:
                    sync.unlock(lk)
                    sync.rcu_read_unlock()
                    return
                sync.rcu_read_unlock()
            elif rwc.try_lock:
                rwc.contended = True
                sync.rcu_read_unlock()
                return
            else:
                av.refcount += 1  # atomic_inc_not_zero()
                sync.rcu_read_unlock()
                sync.lock(lk, "r")
                av.refcount -= 1  # the lock keeps it now
                if not av.refcount:  # we held the last reference
                    sync.unlock(lk)
                    self._put_anon_vma(av)
                    return
                sync.point("folio_mapped? (under the anon_vma lock)")
                if not folio.mapcount:
                    sync.unlock(lk)
                    return
        sync.point(f"anon_vma {av.id} interval tree query")
        self._walk_tree(folio, av, rwc)
        sync.unlock(lk)

    def _walk_tree(self, folio: Folio, av: AnonVma, rwc: RmapWalkControl) -> None:
        """The loop of ``rmap_walk_anon`` (the caller holds the lock):
        ``anon_vma_interval_tree_foreach`` over [index, index + nr - 1]."""
        sync = self.machine.sync
        first = folio.index
        cands = [(a.vma, a.vma.start + (first - a.vma.pgoff))
                 for a in av.index().overlapping(first, first + folio.nr - 1)]
        if sync.active:
            sync.note("-> " + (", ".join(f"{v.mm.name} VMA {v.id}" for v, _ in cands) or "none"))
        rmap_one = rwc.rmap_one
        c = self.cost
        for vma, base in cands:
            c["vmas"] += 1
            if not rmap_one(folio, vma, base):
                break

    def folio_get_anon_vma(self, folio: Folio) -> Any:
        """``folio_get_anon_vma()``: a reference on the folio's anon_vma."""
        av = folio.mapping
        if isinstance(av, AnonVma) and not av.freed:
            av.refcount += 1
        return av

    def folio_put_anon_vma(self, handle: Any) -> None:
        if isinstance(handle, AnonVma) and not handle.freed:
            self.put_anon_vma(handle)

    def anchor_name(self, anchor: Any) -> str:
        if isinstance(anchor, AnonVma):
            return f"anon_vma {anchor.id}"
        return super().anchor_name(anchor)

    def structure(self) -> tuple[list[StructNode], list[StructEdge]]:
        """Every live anon_vma (root, parent, counters), each VMA's chains
        (an edge per anon_vma_chain, the VMA's own anon_vma in bold) and each
        anonymous folio's mapping."""
        nodes = [StructNode(f"av{a.id}", f"anon_vma {a.id}\nroot {a.root.id} parent {a.parent.id}"
                            f"\nchildren {a.num_children} active {a.num_active_vmas}"
                            f"\nrefcount {a.refcount}", "anon_vma")
                 for a in sorted(self.live.values(), key=lambda a: a.id)]
        edges = [StructEdge(f"av{a.id}", f"av{a.parent.id}", "parent", "dashed")
                 for a in self.live.values() if a.parent is not a]
        for mm in self.machine.mms.values():
            for v in mm.vmas:
                for avc in v.rmap or ():
                    own = avc.anon_vma is v.anon_vma
                    edges.append(StructEdge(f"vma{v.id}", f"av{avc.anon_vma.id}",
                                            "anon_vma" if own else "avc",
                                            "bold" if own else "solid"))
        for f in self.machine.anon_folios.values():
            if isinstance(f.mapping, AnonVma):
                edges.append(StructEdge(f"folio{f.id}", f"av{f.mapping.id}", "mapping", "dotted"))
        return nodes, edges

    def state_key(self) -> Hashable:
        return tuple((a.id, a.refcount, a.num_children, a.num_active_vmas, a.root.id,
                      a.parent.id, tuple(sorted(x.vma.id for x in a.avcs)))
                     for a in sorted(self.live.values(), key=lambda a: a.id))

    # ---- accounting --------------------------------------------------------------
    def accounting(self) -> dict[str, tuple[int, int]]:
        n = len(self.live)
        return {"anon_vma": (n, n * OBJECT_BYTES["anon_vma"]),
                "anon_vma_chain": (self.n_avc, self.n_avc * OBJECT_BYTES["anon_vma_chain"])}

    def measure(self) -> dict[str, int]:
        return {"anon_vma": len(self.live), "avc": self.n_avc}

    def check_invariants(self) -> list[str]:
        errs: list[str] = []
        m = self.machine
        active: dict[int, int] = {}
        chains = 0
        for mm in m.mms.values():
            for vma in mm.vmas:
                chain = vma.rmap or []
                chains += len(chain)
                if (vma.anon_vma is None) != (not chain):
                    errs.append(f"{mm.name} {vma}: anon_vma and chain disagree")
                    continue
                if vma.anon_vma is None:
                    continue
                if vma.anon_vma.freed:
                    errs.append(f"{mm.name} {vma}: uses freed anon_vma {vma.anon_vma.id}")
                active[vma.anon_vma.id] = active.get(vma.anon_vma.id, 0) + 1
                if not any(a.anon_vma is vma.anon_vma for a in chain):
                    errs.append(f"{mm.name} {vma}: own anon_vma not in its chain")
                roots = {a.anon_vma.root.id for a in chain}
                if len(roots) != 1:
                    errs.append(f"{mm.name} {vma}: chain spans several roots {sorted(roots)}")
                for a in chain:
                    if a.vma is not vma or a not in a.anon_vma.avcs:
                        errs.append(f"{mm.name} {vma}: chain entry not linked")
                    if a.anon_vma.freed:
                        errs.append(f"{mm.name} {vma}: chain to freed anon_vma {a.anon_vma.id}")
        if chains != self.n_avc:
            errs.append(f"{self.n_avc} anon_vma_chains counted but {chains} linked from "
                        f"live VMAs (leaked chains)")
        children: dict[int, int] = {}
        refs: dict[int, int] = {}
        for av in self.live.values():
            if av.parent is not av:
                if av.avcs:
                    children[av.parent.id] = children.get(av.parent.id, 0) + 1
            elif av.avcs:
                children[av.id] = children.get(av.id, 0) + 1
            if av.root is not av:
                refs[av.root.id] = refs.get(av.root.id, 0) + 1
                if av.root.freed:
                    errs.append(f"{av}: root {av.root.id} freed")
        for av in self.live.values():
            want_ref = (1 if av.avcs else 0) + refs.get(av.id, 0)
            if av.refcount != want_ref:
                errs.append(f"{av}: refcount should be {want_ref}")
            if av.refcount <= 0:
                errs.append(f"{av}: live with no reference (leaked)")
            if av.num_active_vmas != active.get(av.id, 0):
                errs.append(f"{av}: num_active_vmas should be {active.get(av.id, 0)}")
            if av.num_children != children.get(av.id, 0):
                errs.append(f"{av}: num_children should be {children.get(av.id, 0)}")
            for a in av.avcs:
                if a.vma.detached:
                    errs.append(f"{av}: chain to a freed VMA {a.vma.id}")
        for f in m.anon_folios.values():
            if f.mapping is None or f.mapping.freed:
                errs.append(f"folio {f.id}: mapping is a freed anon_vma")
        return errs
