"""ANON_VMA_LAZY: deferred anon_vma creation (wangtao, linux-mm, May 2026).

The series ("[PATCH 0/15] mm: introduce ANON_VMA_LAZY for deferred
anon_vma creation", 2026-05-27) gives a VMA no anon_vma until it is shared:
its folios point to a *root VMA* (``folio->mapping`` tagged with
``FOLIO_MAPPING_ANON_VMA_LAZY`` = 0x2, patch 05) and rmap finds them by
address arithmetic, ``vma_mapping_base(vma) = vm_start - vm_pgoff*PAGE_SIZE``
(wangtao, 2026-06-03), plus an ``mm_mt`` lookup.

This module is the series' best reading.  Where the series is explicit it
is followed; where it is silent or a draft, the most correct choice is made
and listed here (each a deliberate decision):

States of a VMA (``anon_vma_tree_t``, patch 03; Barry Song's description of
2026-06-03): ``lazy`` (own root, never forked), ``tree_vma`` (a fresh VMA
faulted in a process that is itself a fork child: same behaviour as lazy,
kept as a label), ``tree_parent`` (inherited through fork: linked to the
parent's anon_vma tree by chains, no anon_vma of its own) and ``regular``
(an anon_vma of its own, today's behaviour).

1. First fault (patch 10, ``vma_prepare_anon_vma_lazy``): no allocation.
   The VMA becomes the root of its lineage, or joins the lineage of an
   adjacent compatible lazy VMA (the rules of ``find_mergeable_anon_vma``).
   *Choice*: the series does not say; reusing the neighbour's root is what
   lets such VMAs merge later, as anon_vma reuse does today.
2. Root references (patch 06, ``CONFIG_VMA_REF``): every VMA of a lineage
   (split and merge pieces, the root itself) holds one reference on the
   root VMA.  An unmapped root stays allocated, detached, until its last
   reference goes; such VMAs are counted as ``retained_vmas``.  *Choice*:
   folios hold no reference (too costly, and they are only mapped by
   lineage VMAs); an upgraded VMA keeps its references, because folios it
   maps may still point to the root.
3. New folios (``folio_add_new_anon_rmap``) and COW reuse
   (``folio_move_anon_rmap``) point to the VMA's own anon_vma if it has
   one, else to its root VMA; ``folio->index`` is the linear page index.
4. The walk of a lazy folio: address = mapping base of the root + index;
   then *every* VMA of the root's mm overlapping the folio's whole range is
   visited (a large folio can be mapped across split VMAs, S1).  *Choice*:
   the posted text only says "the VMA can be found through mm_mt"; a single
   lookup is the flawed variant ``lazy-single-address``.
5. Fork (patch 10, 13; wangtao 2026-06-02): a parent VMA without an
   anon_vma of its own is *upgraded* first: its whole lineage (all pieces
   sharing the root) gets one new anon_vma (a new root anon_vma for a lazy
   lineage; for a ``tree_parent`` lineage, a child of the anon_vma it was
   forked from), like the pieces of a split VMA share an anon_vma today.
   Each folio's mapping is fixed when its PTE is copied
   (``try_dup_anon_rmap``).  The child VMA clones the parent's chains and
   becomes ``tree_parent`` with no anon_vma: its own new folios are lazy,
   rooted at itself.  A ``tree_*`` process that forks is upgraded the same
   way.  *Choice*: the upgrade is per lineage, not per VMA, because a large
   folio can be mapped by several pieces and must stay findable from all.
6. mremap that moves pages (wangtao 2026-06-03): the source lineage is
   upgraded, the new VMA takes no lazy root (its mapping base differs) and
   each lazy folio's mapping is fixed as its PTEs move (``move_ptes``; also
   for whole page tables and huge PMDs moved at once, which the series
   would have to handle too).  Resize in place changes nothing.
7. Merge (patch 14, not readable): selectable with ``merge=``:
   ``same-root`` (VMAs merge only if they share the root, or one is
   unfaulted), ``keep-both`` (two lazy VMAs with different roots merge; the
   result keeps references to every root), ``upgrade`` (as keep-both, but
   the merged VMA is also given one anon_vma).  The default is
   ``keep-both``, the most memory-efficient correct policy (see the
   README's comparison).  VMAs inherited through fork keep today's fork
   child rule (``vma_had_uncowed_parents``).
8. MAP_PRIVATE file COW folios work the same way (their index is the file
   offset and the mapping base is ``vm_start - vm_pgoff``); THP folios too;
   DONTFORK/WIPEONFORK VMAs are not upgraded at fork (nothing is shared).

Flawed variants (reviewer concerns made executable): ``lazy-single-address``
(S1), ``lazy-merge-any`` (S2: merges different roots without keeping the
other root alive), ``lazy-no-upgrade-on-mremap`` (S3).

Concurrency (what ``rmaplab explore`` interleaves): the walk of a lazy
folio reads ``folio->mapping`` under RCU, pins the root VMA (``vma_get``),
looks up the root's mm_mt, leaves RCU and calls ``rmap_one`` for each VMA
found; migration also takes ``vma_start_read`` of each VMA (patch 12); at the
end the mapping is read again and, if it became an anon_vma, the walk is
done again (wangtao, 2026-06-03: the retry the posted patch omitted;
``lazy-noretry`` leaves it out).  Upgrades fix ``folio->mapping`` under the
PTLs without the folio lock (``lazy-folio-lock`` takes it).

Accounting: anon_vma (104 B) and anon_vma_chain (64 B) slab objects as
today; vm_area_struct stays 192 B: the series adds ``rcuref_t vm_rcuref``
(4 B, patch 06), which fits one of the two 4-byte holes of
``struct vm_area_struct`` on 6.18 (pahole of this kernel's BTF, in
docs/kernel-structs-6.18.txt), and keeps the root VMA in the tagged
``anon_vma`` slot; retained root VMAs cost 192 B each.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from rmaplab.designs.base import OBJECT_BYTES
from rmaplab.designs.classic import AnonVma, ClassicDesign, anon_vma_compatible, root_lock
from rmaplab.errors import UsageError
from rmaplab.machine.constants import short_page
from rmaplab.machine.design import MIGRATE, REMOVE_MIGRATION, StructEdge, StructNode

if TYPE_CHECKING:
    from rmaplab.machine.design import RmapWalkControl
    from rmaplab.machine.folio import Folio
    from rmaplab.machine.vma import Vma

MERGE_POLICIES = ("same-root", "keep-both", "upgrade")


class LazyVma:
    """Per-VMA state (``vma.design``): the lineage roots it references
    (``roots[0]`` anchors its new lazy folios), its own anon_vma, and, when
    the VMA is itself a root, the VMAs referencing it."""

    __slots__ = ("roots", "own", "members", "label", "upgraded", "pins")

    def __init__(self) -> None:
        #: references held by rmap walkers (vma_get in the walk)
        self.pins = 0
        self.roots: list[Vma] = []
        self.own: AnonVma | None = None
        #: when this VMA is a root: the VMAs holding a reference on it
        self.members: set[Vma] = set()
        self.label = "none"
        #: when this VMA is a root: the anon_vma its lineage was upgraded to
        self.upgraded: AnonVma | None = None


def st(vma: Vma) -> LazyVma:
    s = vma.design
    if s is None:
        s = vma.design = LazyVma()
    return s  # type: ignore[no-any-return]


def reset(vma: Vma) -> LazyVma:
    """Clear ``vma``'s own rmap state, keeping what it holds as a root
    (the VMAs referencing it stay its members)."""
    s = st(vma)
    s.roots = []
    s.own = None
    s.label = "none"
    return s


class LazyDesign(ClassicDesign):
    """ANON_VMA_LAZY, best reading (see the module docstring)."""

    name = "lazy"
    summary = "ANON_VMA_LAZY (wangtao, May 2026), the series' best reading"
    options = {"merge": MERGE_POLICIES}
    #: the walk re-reads folio->mapping at its end and walks again if it
    #: became an anon_vma (wangtao, 2026-06-03)
    retry = True
    #: take the folio lock for the mapping fix-up (``lazy-folio-lock``)
    fixup_folio_lock = False

    def __init__(self, merge: str = "keep-both", **options: Any) -> None:
        super().__init__(**options)
        if merge not in MERGE_POLICIES:
            raise UsageError(f"unknown lazy merge policy {merge!r}: use one of "
                             f"{', '.join(MERGE_POLICIES)}")
        self.merge = merge
        #: detached root VMAs kept alive by references
        self.retained: set[Vma] = set()

    # ---- helpers -------------------------------------------------------------
    @staticmethod
    def is_lazy_handle(x: Any) -> bool:
        return x is not None and not isinstance(x, AnonVma)

    @staticmethod
    def pure_lazy(vma: Vma | None) -> bool:
        """Faulted, no anon_vma and no chains (``lazy``/``tree_vma``)."""
        if vma is None or vma.anon_vma is None:
            return False
        s = vma.design
        return s is not None and s.own is None and not vma.rmap

    @staticmethod
    def fork_child(vma: Vma | None) -> bool:
        """The lazy counterpart of ``vma_had_uncowed_parents()``: inherited
        through fork (chains to a parent's tree), upgraded or not."""
        if vma is None or vma.anon_vma is None:
            return False
        s = vma.design
        chain = vma.rmap or ()
        if s is not None and s.own is None:
            return bool(chain)
        return len(chain) != 1

    def own_anon_vma(self, vma: Vma) -> AnonVma | None:
        s = vma.design
        return s.own if s is not None else None

    def add_ref(self, root: Vma, vma: Vma) -> None:
        """``vma_get()``: ``vma`` takes a reference on lineage root ``root``."""
        st(root).members.add(vma)
        s = st(vma)
        if root not in s.roots:
            s.roots.append(root)

    def release_root(self, root: Vma) -> None:
        """The last ``vma_put()`` of a detached root frees it."""
        rs = st(root)
        if not rs.members and not rs.pins and root.detached and not root.freed:
            if root in self.retained:
                self.cost["t:retained_root_freed"] += 1
            self.retained.discard(root)
            root.freed = True

    def vma_put(self, root: Vma) -> None:
        """A walker's ``vma_put()`` of the root it pinned."""
        st(root).pins -= 1
        self.release_root(root)

    def drop_refs(self, vma: Vma) -> None:
        """``vma_put()`` of every root ``vma`` references.

        A root left with no member has no lineage any more: it forgets the
        anon_vma its lineage was upgraded to, which may be freed by now (a
        fuzzing finding, seed 1729: a root whose VMA was emptied by
        MREMAP_DONTUNMAP and faulted again started a new lineage, and its
        first fork reused the old lineage's freed anon_vma)."""
        s = vma.design
        if s is None:
            return
        for r in s.roots:
            rs = st(r)
            rs.members.discard(vma)
            if not rs.members:
                rs.upgraded = None
            self.release_root(r)
        s.roots = []

    def _link_own(self, vma: Vma, av: AnonVma) -> None:
        self.anon_vma_chain_link(vma, av)
        s = st(vma)
        self.cost[f"t:{s.label}->regular"] += 1
        s.own = av
        s.label = "regular"
        av.num_active_vmas += 1
        vma.anon_vma = av

    def lineage_roots(self, vma: Vma) -> list[Vma]:
        """The roots connected to ``vma``: its roots, the roots of every VMA
        referencing one of them, and so on (a ``keep-both`` merge joins two
        lineages).  O(VMAs and roots of the component)."""
        roots: list[Vma] = []
        seen: set[int] = set()
        todo = list(st(vma).roots)
        while todo:
            r = todo.pop()
            if r.id in seen:
                continue
            seen.add(r.id)
            roots.append(r)
            for m in st(r).members:
                if st(m).own is None and not m.detached:
                    todo.extend(x for x in st(m).roots if x.id not in seen)
        return roots

    def upgrade(self, vma: Vma) -> AnonVma:
        """``vma_upgrade_anon_vma_lazy()`` (patch 13): give ``vma``'s whole
        lineage one anon_vma: every VMA referencing one of its roots, closed
        over the other roots those VMAs reference.  A folio of root A can be
        mapped by any VMA referencing A, and ``try_dup_anon_rmap`` points it
        at the anon_vma of the VMA being copied, so all of them must share
        that anon_vma (a fuzzing finding: with ``keep-both`` merges, an
        upgrade per root missed a THP mapped across two lineages)."""
        s = st(vma)
        if s.own is not None:
            return s.own
        lineage = self.lineage_roots(vma)
        av = next((st(r).upgraded for r in lineage if st(r).upgraded is not None), None)
        if av is None:
            chain = vma.rmap or []
            if chain:  # tree_parent: a child of the anon_vma it was forked from
                parent = chain[-1].anon_vma
                av = self.anon_vma_alloc()
                av.root = parent.root
                av.parent = parent
                parent.root.refcount += 1
                parent.num_children += 1
            else:  # lazy: a new root anon_vma
                av = self.anon_vma_alloc()
                av.num_children += 1
            self.cost["upgrades"] += 1
        for r in lineage:
            st(r).upgraded = av
            for m in list(st(r).members):
                if st(m).own is None and not m.detached:
                    self._link_own(m, av)
        if s.own is None:
            self._link_own(vma, av)
        return av

    def anchor(self, vma: Vma) -> Any:
        """Where a new or reused exclusive folio of ``vma`` points."""
        s = vma.design
        if s.own is not None:
            return s.own
        return s.roots[0]

    # ---- faults -----------------------------------------------------------------
    def find_mergeable_root(self, vma: Vma) -> Vma | None:
        """``find_mergeable_anon_vma()``'s rules, for lazy neighbours."""
        tree = vma.mm.vmas
        nxt = tree.find(vma.end)
        if nxt is not None and anon_vma_compatible(vma, nxt) and self.pure_lazy(nxt):
            return st(nxt).roots[0]
        prev = tree.prev(vma) if not vma.detached else None
        if prev is not None and anon_vma_compatible(prev, vma) and self.pure_lazy(prev):
            return st(prev).roots[0]
        return None

    def anon_vma_prepare(self, vma: Vma) -> None:
        """``vma_prepare_anon_vma_lazy()`` (patch 10): no allocation."""
        if vma.anon_vma is not None:
            return
        reset(vma)
        root = self.find_mergeable_root(vma) or vma
        self.cost["t:prepare_join_neighbour_root" if root is not vma else "t:prepare_own_root"] += 1
        self.add_ref(root, vma)
        st(vma).label = "tree_vma" if vma.mm.parent is not None else "lazy"
        self.cost[f"t:none->{st(vma).label}"] += 1
        vma.anon_vma = root

    def folio_add_new_anon_rmap(self, folio: Folio, vma: Vma, vpn: int, exclusive: bool) -> None:
        """``folio_add_new_anon_rmap()``: the VMA's anon_vma if it has one
        (its root for a non-exclusive folio, as today), else its root VMA."""
        a = self.anchor(vma)
        folio.mapping = a.root if isinstance(a, AnonVma) and not exclusive else a
        folio.index = vma.linear_page_index(vpn)

    def folio_move_anon_rmap(self, folio: Folio, vma: Vma) -> None:
        folio.mapping = self.anchor(vma)

    def ksm_might_need_to_copy(self, folio: Folio, vma: Vma, vpn: int) -> bool:
        """Today's rule between anon_vmas; a lazy folio (or a lazy VMA) is
        copied unless the VMA is of the folio's lineage at the same index."""
        a, b = folio.mapping, vma.anon_vma
        if isinstance(a, AnonVma) and isinstance(b, AnonVma):
            return super().ksm_might_need_to_copy(folio, vma, vpn)
        if a is None or folio.nr > 1:
            return False
        if folio.index != vma.linear_page_index(vpn):
            return True
        return not (a in st(vma).roots or (isinstance(a, AnonVma) and any(
            c.anon_vma is a for c in vma.rmap or ())))

    # ---- VMA lifecycle --------------------------------------------------------------
    def _clone_chain(self, dst: Vma, src: Vma) -> None:
        """Link ``dst`` into every anon_vma of ``src``'s chain (the caller
        holds the root lock)."""
        for pavc in list(src.rmap or ()):
            self.anon_vma_chain_link(dst, pavc.anon_vma)
            self.cost["fork_entries"] += 1

    def anon_vma_clone(self, dst: Vma, src: Vma, op: str) -> None:
        """``anon_vma_clone()``: split and merge pieces join the lineages of
        ``src`` (one more reference each) and clone its chains; an mremap
        copy (op='remap') of an upgraded source takes only the chains."""
        ss = src.design
        if src.anon_vma is None or ss is None:
            if dst.design is not None:
                reset(dst)
            dst.rmap = None
            return
        ds = reset(dst)
        ds.label = ss.label
        same_base = dst.start - dst.pgoff == src.start - src.pgoff
        if (op != "remap" or ss.own is None) and (same_base or ss.own is None):
            for r in ss.roots:
                self.add_ref(r, dst)
        if src.rmap:
            sync = self.machine.sync
            lk = root_lock(src.rmap[0].anon_vma)
            sync.lock(lk)
            self._clone_chain(dst, src)
            sync.unlock(lk)
        if ss.own is not None:
            ds.own = ss.own
            ss.own.num_active_vmas += 1
            dst.anon_vma = ss.own
        else:
            dst.anon_vma = src.anon_vma if op != "remap" else ds.roots[0]

    def dup_anon_vma(self, dst: Vma, src: Vma) -> None:
        if src.anon_vma is not None and dst.anon_vma is None:
            self.anon_vma_clone(dst, src, "merge")

    def merge_commit(self, target: Vma, sources: list[Vma]) -> None:
        """Patch 14's merge: with ``keep-both``/``upgrade``, the merged VMA
        takes a reference on every root of the VMAs it absorbs."""
        if self.merge == "same-root" or not self.pure_lazy(target):
            return
        for s in sources:
            if self.pure_lazy(s):
                for r in st(s).roots:
                    if r not in st(target).roots:
                        self.cost["t:merge_keeps_other_root"] += 1
                    self.add_ref(r, target)
        if self.merge == "upgrade" and len(st(target).roots) > 1:
            self.upgrade(target)

    def unlink_anon_vmas(self, vma: Vma) -> None:
        """``unlink_anon_vmas()``: chains as today, plus ``vma_put()`` of the
        roots (an unmapped root with no reference left is freed)."""
        super().unlink_anon_vmas(vma)
        self.drop_refs(vma)
        if vma.design is not None:
            reset(vma)

    def vm_area_free(self, vma: Vma) -> None:
        """``vm_area_free()`` -> ``vma_put()``: a root still referenced is
        kept, detached (the series' VMA_REF)."""
        s = vma.design
        if s is not None and (s.members or s.pins):
            self.retained.add(vma)
            self.cost["t:root_retained"] += 1
        else:
            vma.freed = True

    def is_mergeable_anon_vma(self, tgt: Vma, src_anon: Any, src: Vma | None,
                              copied_from: Vma | None) -> bool:
        tgt_anon = tgt.anon_vma
        if tgt_anon is None and src_anon is not None:
            return not self.fork_child(src) and not self.fork_child(copied_from)
        if tgt_anon is not None and src_anon is None:
            return not self.fork_child(tgt)
        if src_anon is tgt_anon:
            return True
        source = src if src is not None else copied_from
        return (self.merge != "same-root" and self.pure_lazy(tgt)
                and (self.pure_lazy(source) if source is not None
                     else self.is_lazy_handle(src_anon)))

    def anon_vmas_compatible(self, prev: Vma, next: Vma) -> bool:
        if prev.anon_vma is None or next.anon_vma is None or prev.anon_vma is next.anon_vma:
            return True
        return self.merge != "same-root" and self.pure_lazy(prev) and self.pure_lazy(next)

    # ---- fork ------------------------------------------------------------------------
    def anon_vma_fork(self, child_vma: Vma, parent_vma: Vma) -> None:
        """Fork of one VMA: upgrade the parent's lineage if it has no
        anon_vma of its own, clone its chains into the child (under the
        root lock), which becomes ``tree_parent`` (no anon_vma; its own new
        folios will be lazy)."""
        child_vma.design = None
        child_vma.rmap = None
        if parent_vma.anon_vma is None:
            child_vma.anon_vma = None
            return
        av = self.upgrade(parent_vma)
        sync = self.machine.sync
        lk = root_lock(av)
        sync.lock(lk)
        self._clone_chain(child_vma, parent_vma)
        sync.unlock(lk)
        cs = reset(child_vma)
        cs.label = "tree_parent"
        self.cost["t:none->tree_parent"] += 1
        self.add_ref(child_vma, child_vma)
        child_vma.anon_vma = child_vma

    def _fix_mapping(self, folio: Folio, av: AnonVma) -> None:
        """Point a lazy folio at ``av`` (under the PTL; the folio lock too for
        ``lazy-folio-lock``, against the documented order)."""
        sync = self.machine.sync
        if self.fixup_folio_lock:
            sync.lock(("folio", folio.id))
        folio.mapping = av
        self.cost["mapping_fixes"] += 1
        if self.fixup_folio_lock:
            sync.unlock(("folio", folio.id))

    def dup_anon_rmap(self, folio: Folio, src_vma: Vma, dst_vma: Vma) -> None:
        """``try_dup_anon_rmap()``: fix a lazy folio's mapping to the
        (upgraded) parent VMA's anon_vma as its PTE is copied."""
        if self.is_lazy_handle(folio.mapping):
            own = st(src_vma).own
            assert own is not None, "fork copies a lazy folio of a VMA not upgraded"
            self._fix_mapping(folio, own)

    # ---- mremap ------------------------------------------------------------------------
    def move_vma_start(self, vma: Vma) -> None:
        """mremap moving pages: upgrade first (wangtao, 2026-06-03)."""
        if vma.anon_vma is not None and st(vma).own is None:
            self.upgrade(vma)

    def move_anon_pte(self, folio: Folio, old_vma: Vma, new_vma: Vma, old_vpn: int,
                      new_vpn: int) -> None:
        """``move_ptes()``: fix a lazy folio's mapping as its PTE moves."""
        if self.is_lazy_handle(folio.mapping):
            own = st(new_vma).own if new_vma.design is not None else None
            if own is not None:
                self._fix_mapping(folio, own)

    # ---- rmap ---------------------------------------------------------------------------
    def rmap_walk(self, folio: Folio, rwc: RmapWalkControl) -> None:
        """``rmap_walk_anon()``: read ``folio->mapping`` under RCU; an anon_vma
        is walked as today; a root VMA whose ``vma_get`` fails (freed) makes
        the walk read the mapping again (an upgrade may have happened); a
        live root is walked by address (:meth:`lazy_walk`)."""
        sync = self.machine.sync
        if not rwc.anon_lock:  # remove_migration_ptes: the caller pinned the anchor
            mp = folio.mapping
            if not self.is_lazy_handle(mp):
                return super().rmap_walk(folio, rwc)
            sync.rcu_read_lock()
            return self.lazy_walk(folio, mp, rwc)
        sync.rcu_read_lock()
        sync.point("read folio->mapping")
        mp = folio.mapping
        if self.is_lazy_handle(mp) and mp.freed:
            if sync.active:
                sync.note(f"= root VMA {mp.id}, gone (vma_get fails)")
            sync.point("read folio->mapping again")
            mp = folio.mapping
            if self.is_lazy_handle(mp):
                if sync.active:
                    sync.note("= unchanged: the folio is unmapped")
                sync.rcu_read_unlock()
                return None
        if sync.active:
            sync.note(f"= {self.anchor_name(mp)}")
        if not self.is_lazy_handle(mp):
            # folio_lock_anon_vma_read() reads it again under RCU
            sync.rcu_read_unlock()
            return super().rmap_walk(folio, rwc)
        return self.lazy_walk(folio, mp, rwc)

    def lazy_walk(self, folio: Folio, root: Vma, rwc: RmapWalkControl) -> None:
        """The walk of a lazy folio (entered under RCU): pin the root VMA
        (``vma_get``), look up its mm_mt at the root's mapping base + index,
        leave RCU; ``rmap_one`` for *every* VMA over the folio's range
        (migration under ``vma_start_read``, patch 12); ``vma_put``; then the
        retry (read the mapping again, walk again if it became an anon_vma)."""
        c = self.cost
        c["walks"] += 1
        c["lookups"] += 1
        c["locks"] += 1  # the VMA reference / read lock, no anon_vma lock
        sync = self.machine.sync
        if sync.active:
            sync.use(root, f"root VMA {root.id}")
        if root.freed:
            sync.rcu_read_unlock()
            return
        st(root).pins += 1  # vma_get(root): the root stays allocated
        sync.point("mm_mt lookup from the root VMA's mapping base")
        sync.use_mm_mt(root.mm)
        if not root.mm.alive:
            sync.rcu_read_unlock()
            self.vma_put(root)
            return
        addr = root.start - root.pgoff + folio.index
        vmas = self.walk_vmas(root, addr, folio.nr)
        if sync.active:
            found = ", ".join(f"VMA {v.id}" for v in vmas) or "none"
            sync.note(f"-> {short_page(addr)}: {found} (vma_get)")
        sync.rcu_read_unlock()
        mig = rwc.kind in (MIGRATE, REMOVE_MIGRATION)
        rmap_one = rwc.rmap_one
        for vma in vmas:
            c["vmas"] += 1
            if mig:
                sync.lock(("vma", vma.id), "r")  # vma_start_read (patch 12)
                if vma.detached:
                    if sync.active:
                        sync.note("-> detached: vma_start_read fails, skip")
                    sync.unlock(("vma", vma.id))
                    continue
            cont = rmap_one(folio, vma, addr)
            if mig:
                sync.unlock(("vma", vma.id))
            if not cont:
                break
        if sync.active:
            sync.point(f"vma_put(root VMA {root.id})")
        self.vma_put(root)
        if self.retry:
            sync.point("read folio->mapping again (retry)")
            again = folio.mapping
            if again is not root and isinstance(again, AnonVma):
                if sync.active:
                    sync.note(f"= anon_vma {again.id}: upgraded meanwhile, walk again")
                super().rmap_walk(folio, rwc)
                return
            if sync.active:
                sync.note("-> unchanged")

    def walk_vmas(self, root: Vma, addr: int, nr: int) -> list[Vma]:
        """The VMAs of the root's mm the walk visits for a folio of ``nr``
        pages at ``addr``: every VMA overlapping its range (S1)."""
        return root.mm.vmas.overlapping(addr, addr + nr)

    def folio_get_anon_vma(self, folio: Folio) -> Any:
        mp = folio.mapping
        if self.is_lazy_handle(mp):
            st(mp).pins += 1
            return mp
        return super().folio_get_anon_vma(folio)

    def folio_put_anon_vma(self, handle: Any) -> None:
        if self.is_lazy_handle(handle):
            self.vma_put(handle)
        else:
            super().folio_put_anon_vma(handle)

    def anchor_name(self, anchor: Any) -> str:
        if self.is_lazy_handle(anchor) and hasattr(anchor, "mm"):
            return f"root VMA {anchor.id}"
        return super().anchor_name(anchor)

    def structure(self) -> tuple[list[StructNode], list[StructEdge]]:
        """Today's objects for upgraded VMAs, plus each VMA's references to
        its lineage roots, retained (unmapped) roots, and lazy folios'
        root VMAs."""
        nodes, edges = super().structure()
        for r in sorted(self.retained, key=lambda v: v.id):
            nodes.append(StructNode(f"vma{r.id}", f"retained root VMA {r.id}\n"
                                    f"[{r.start:#x}..{r.end:#x}) pgoff {r.pgoff:#x}\n"
                                    f"{len(st(r).members)} references", "retained"))
        for mm in self.machine.mms.values():
            for v in mm.vmas:
                s = v.design
                if s is None or v.anon_vma is None:
                    continue
                for r in s.roots:
                    if r is not v:
                        edges.append(StructEdge(f"vma{v.id}", f"vma{r.id}", "root ref", "dashed"))
        for f in self.machine.anon_folios.values():
            if self.is_lazy_handle(f.mapping):
                edges.append(StructEdge(f"folio{f.id}", f"vma{f.mapping.id}", "mapping (lazy)",
                                        "dotted"))
        return nodes, edges

    def state_key(self) -> Hashable:
        vmas: dict[int, Vma] = {v.id: v for v in self.retained}
        for mm in self.machine.mms.values():
            for v in mm.vmas:
                if v.design is not None:
                    vmas[v.id] = v
        per = []
        for i in sorted(vmas):
            v = vmas[i]
            s = v.design
            per.append((i, s.label, s.own.id if s.own else None, tuple(r.id for r in s.roots),
                        tuple(sorted(m.id for m in s.members)), s.pins,
                        s.upgraded.id if s.upgraded else None, v.freed, v.detached))
        return (super().state_key(), tuple(per))

    # ---- accounting ------------------------------------------------------------------------
    def retained_vmas(self) -> int:
        return len(self.retained)

    def accounting(self) -> dict[str, tuple[int, int]]:
        acc = super().accounting()
        n = len(self.retained)
        acc["retained_vma"] = (n, n * OBJECT_BYTES["vm_area_struct"])
        return acc

    def states(self) -> dict[str, int]:
        """How many live VMAs are in each state."""
        out: dict[str, int] = {}
        for mm in self.machine.mms.values():
            for v in mm.vmas:
                has = v.design is not None and v.anon_vma is not None
                label = v.design.label if has else "none"
                out[label] = out.get(label, 0) + 1
        return out

    def check_invariants(self) -> list[str]:
        errs: list[str] = []
        m = self.machine
        active: dict[int, int] = {}
        chains = 0
        for mm in m.mms.values():
            for vma in mm.vmas:
                s = vma.design
                chain = vma.rmap or []
                chains += len(chain)
                if vma.anon_vma is None:
                    if chain or (s is not None and (s.roots or s.own is not None)):
                        errs.append(f"{mm.name} {vma}: unfaulted VMA holds rmap state")
                    continue
                if s is None:
                    errs.append(f"{mm.name} {vma}: faulted VMA without lazy state")
                    continue
                if s.own is not None:
                    active[s.own.id] = active.get(s.own.id, 0) + 1
                    if vma.anon_vma is not s.own or s.own.freed:
                        errs.append(f"{mm.name} {vma}: own anon_vma inconsistent or freed")
                    if not any(a.anon_vma is s.own for a in chain):
                        errs.append(f"{mm.name} {vma}: own anon_vma not in its chain")
                elif not s.roots:
                    errs.append(f"{mm.name} {vma}: lazy VMA without a root")
                for r in s.roots:
                    if r.freed:
                        errs.append(f"{mm.name} {vma}: references freed root VMA {r.id}")
                    if vma not in st(r).members:
                        errs.append(f"{mm.name} {vma}: not a member of root {r.id}")
                    if r.mm is not vma.mm:
                        errs.append(f"{mm.name} {vma}: root {r.id} in another mm")
                    if s.own is None and r.start - r.pgoff != vma.start - vma.pgoff:
                        errs.append(f"{mm.name} {vma}: mapping base differs from root {r.id}'s")
                for a in chain:
                    if a.anon_vma.freed or a not in a.anon_vma.avcs:
                        errs.append(f"{mm.name} {vma}: chain entry broken")
        if chains != self.n_avc:
            errs.append(f"{self.n_avc} anon_vma_chains counted but {chains} linked (leak)")
        for av in self.live.values():
            if av.num_active_vmas != active.get(av.id, 0):
                errs.append(f"{av}: num_active_vmas should be {active.get(av.id, 0)}")
            for a in av.avcs:
                if a.vma.detached:
                    errs.append(f"{av}: chain to a freed VMA {a.vma.id}")
        for mm in m.mms.values():
            for vma in mm.vmas:
                up = vma.design.upgraded if vma.design is not None else None
                if up is not None and (up.freed or not vma.design.members):
                    errs.append(f"{mm.name} {vma}: root's lineage anon_vma is freed or "
                                "it has no lineage")
        for r in self.retained:
            if not r.detached or not (st(r).members or st(r).pins):
                errs.append(f"retained root {r.id} is attached or unreferenced")
        for f in m.anon_folios.values():
            mp = f.mapping
            if isinstance(mp, AnonVma):
                if mp.freed:
                    errs.append(f"folio {f.id}: mapping is a freed anon_vma")
            elif mp is None or mp.freed:
                errs.append(f"folio {f.id}: mapping is a freed root VMA (use after free)")
        return errs




class LazyFolioLock(LazyDesign):
    """``lazy`` taking the folio lock around the ``folio->mapping`` fix-up
    that fork and mremap make under the PTL, so that walkers (which hold the
    folio lock) could trust the mapping.  The thread's objection (section 3
    of the research notes): the documented order is folio lock before PTL.
    Sequentially identical to ``lazy``; ``rmaplab explore`` reports the
    inversion (and, with the order check off, the deadlock)."""

    name = "lazy-folio-lock"
    summary = "lazy taking the folio lock for the mapping fix-up (concurrency only)"
    fixup_folio_lock = True


class LazyNoRetry(LazyDesign):
    """``lazy`` without the walk's final re-check of ``folio->mapping``: the
    posted patch 13 ("the retry handling was accidentally omitted", wangtao,
    2026-06-03).  Sequentially identical to ``lazy``; it differs only when a
    walk races with the upgrade (``rmaplab explore``)."""

    name = "lazy-noretry"
    summary = "lazy without the walk's final re-check of folio->mapping (concurrency only)"
    retry = False


class LazySingleAddress(LazyDesign):
    """Flawed (S1): the walk looks up only the folio's first address."""

    name = "lazy-single-address"
    summary = "flawed (S1): a lazy folio is looked up at its first address only"

    def walk_vmas(self, root: Vma, addr: int, nr: int) -> list[Vma]:
        vma = root.mm.vmas.find(addr)
        return [vma] if vma is not None else []


class LazyMergeAny(LazyDesign):
    """Flawed (S2): lazy VMAs with different roots merge, but the merged VMA
    keeps no reference on the other root."""

    name = "lazy-merge-any"
    summary = "flawed (S2): VMAs of different lazy roots merge without keeping the other root"
    options: dict[str, tuple[str, ...]] = {}

    def __init__(self, **options: Any) -> None:
        super().__init__(merge="keep-both", **options)

    def merge_commit(self, target: Vma, sources: list[Vma]) -> None:
        return


class LazyNoUpgradeOnMremap(LazyDesign):
    """Flawed (S3): mremap moves a lazy VMA without upgrading it or fixing
    its folios; the moved VMA keeps the old root (whose base is stale)."""

    name = "lazy-no-upgrade-on-mremap"
    summary = "flawed (S3): a moved lazy VMA keeps its root, whose mapping base is stale"

    def move_vma_start(self, vma: Vma) -> None:
        return

    def move_anon_pte(self, folio: Folio, old_vma: Vma, new_vma: Vma, old_vpn: int,
                      new_vpn: int) -> None:
        return

    def anon_vma_clone(self, dst: Vma, src: Vma, op: str) -> None:
        super().anon_vma_clone(dst, src, "split" if op == "remap" else op)
