"""The CoW context (Lorenzo Stoakes' "scalable CoW" proof of concept).

Source: ``mm/cow_context.c`` of the ``project/cow-context`` branch (GitHub
mirror ``kernelorg-mirror/linux_kernel_git_ljs_linux``, version a4ac1966),
read for rmaplab (the research notes summarise it).  One
``struct cow_context`` per mm replaces every anon_vma and anon_vma_chain:

* ``mm_init_cow_context`` / ``dup_cow_context`` / ``drop_cow_context``: a
  context per mm, linked under its parent's at fork (children newest
  first), holding one reference for its mm, one per child context and one
  per anonymous folio pointing to it (``__folio_set_anon_cow``).  A context
  whose mm is gone lives on (mm = NULL) while a descendant or a folio holds
  it; freeing cascades up (``__put_cow_context``).
* ``folio->cow_context``: the faulting mm's context for a new folio;
  ``folio_move_anon_rmap`` moves a reused folio to the writer's context.
* ``remap_mt``: per context, pgoff ranges -> the set of non-zero offsets
  ``(vm_start >> PAGE_SHIFT) - vm_pgoff`` of the mm's VMAs mapping them,
  kept only for faulted anonymous VMAs that were moved and faulted
  MAP_PRIVATE file VMAs whose offset is not 0 (``should_track_remap``).
* ``cow_context_walk``: the folio's context then its descendants (post-order
  DFS, newest child first, ``traverse_contexts``); in each, offset 0 and
  then every recorded offset overlapping the folio (``walk_context``), a VMA
  matching only if its own offset is the one tried.
* VMAs carry a dummy anon_vma marker once faulted (COW mode), so merges are
  never refused for anon_vma reasons.

Where the PoC is a draft, this module chooses the correct behaviour (each
choice names the PoC function and its TODO or defect):

1. Maintenance of ``remap_mt``: the PoC unmaps and re-adds entries on every
   split and merge (``cow_context_vma_adjust``, "TODO: Remove, we don't need
   to track splits/merges"), loses the absorbed range on a merge that moves
   the middle VMA's start, rewrites offsets in place
   (``find_and_remap_existing``: MREMAP_DONTUNMAP loses the source's offset)
   and its sorted-array insertion overwrites an element
   (``__dynarray_append_value``).  Here the tree always holds exactly the
   (pgoff range, offset) of every tracked VMA of the mm, updated whenever a
   VMA is created, changes range or goes away.
2. The exclusive shortcut (``walk_context``: "exclusive folios are moved to
   the correct Cow context level, so we only look once.  TODO: Races?") stops
   after offset 0 of the first context, so an exclusive folio of a moved VMA
   or a MAP_PRIVATE COW page, or one mapped only by a child, is never found.
   Here the walk stops once it has *found* a mapping of a folio that is not
   mapped shared, after trying every offset of the context.  The PoC's
   behaviour is the option ``cowctx:shortcut=poc`` (a flawed variant).
3. ``dup_cow_context`` runs after ``copy_page_range`` in the PoC; here the
   child context is linked first (``dup_mmap_start``), as ``anon_vma_fork``
   links today, so no walk can miss the child (matters for interleavings).
4. The folio's context is stored in ``folio->mapping`` ("TODO: store in
   folio->mapping :)"), so folios cost no extra byte.
5. Merges: every pgoff-linear merge of faulted VMAs is allowed (same
   offset); today's fork-child rule only protects anon_vma chains.

Accounting: ``cow_context`` 96 B (kmalloc-96; the struct's fields on x86_64
without lock debugging), remap-tree maple nodes 256 B: a range needs a slot
and so does each gap between ranges; leaves hold 16 slots, internal nodes
(maple_arange_64, the tree uses MT_FLAGS_ALLOC_RANGE) 10 children; an empty
tree costs nothing; an entry with several offsets adds a ``struct
dynarray`` of 8 + 8*cap bytes (cap a power of two >= 2) in its kmalloc class.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING, Any

from rmaplab.designs.base import RmapDesign
from rmaplab.designs.intervals import IntervalIndex
from rmaplab.errors import UsageError
from rmaplab.machine.design import REMOVE_MIGRATION, StructEdge, StructNode
from rmaplab.machine.sync import Sync

if TYPE_CHECKING:
    from rmaplab.machine.design import RmapWalkControl
    from rmaplab.machine.folio import Folio
    from rmaplab.machine.mm import Mm
    from rmaplab.machine.vma import Vma

COW_CONTEXT_BYTES = 96
MAPLE_NODE_BYTES = 256
LEAF_SLOTS = 16
INTERNAL_FANOUT = 10
KMALLOC_CLASSES = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096)


class Faulted:
    """The dummy ``vma->anon_vma`` marker of COW mode."""

    def __repr__(self) -> str:
        return "<faulted>"


FAULTED = Faulted()


class CowContext:
    """``struct cow_context``."""

    __slots__ = ("id", "mm", "parent", "children", "refcnt", "contrib", "freed", "_index",
                 "_bytes")

    def __init__(self, cid: int, mm: Mm) -> None:
        self.id = cid
        self.mm: Mm | None = mm
        self.parent: CowContext | None = None
        self.children: list[CowContext] = []  # newest first (list_add_rcu)
        self.refcnt = 1  # the mm's reference
        #: remap_mt contents: tracked VMA -> (first pgoff, last pgoff, offset)
        self.contrib: dict[Vma, tuple[int, int, int]] = {}
        self.freed = False
        self._index: IntervalIndex[int] | None = None
        #: tree_bytes() of the current contents (None: changed since)
        self._bytes: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return (f"<cow_context {self.id} mm={self.mm.name if self.mm else None} "
                f"ref={self.refcnt} children={[c.id for c in self.children]}>")

    def offsets(self, first: int, last: int) -> set[int]:
        """Offsets recorded over any pgoff of [first, last]."""
        if not self.contrib:
            return set()
        ix = self._index
        if ix is None:
            ix = self._index = IntervalIndex(list(self.contrib.values()))
        return set(ix.overlapping(first, last))


def traverse_contexts(c: CowContext, sync: Sync) -> Iterator[CowContext]:
    """``traverse_contexts``: ``c`` first, then its descendants in post-order,
    newest child first; each children list is read (a point: RCU lists
    change under the walk) only when the walk gets there."""
    yield c
    if sync.active:
        sync.point(f"read children of context {c.id}")
    stack = [(c, list(c.children))]
    if sync.active:
        sync.note(f"-> {[k.id for k in c.children]}")
    while stack:
        node, kids = stack[-1]
        if kids:
            child = kids.pop(0)
            if sync.active:
                sync.point(f"read children of context {child.id}")
            stack.append((child, list(child.children)))
            continue
        stack.pop()
        if node is not c:
            yield node


def kmalloc_size(n: int) -> int:
    return next((c for c in KMALLOC_CLASSES if c >= n), n)


class CowContextDesign(RmapDesign):
    """The CoW context, correct reading (see the module docstring)."""

    name = "cowctx"
    summary = "Lorenzo Stoakes' CoW context, the correct reading of the PoC (mm/cow_context.c)"
    options = {"shortcut": ("found", "poc"), "link": ("before", "after")}
    uses_found = True

    def __init__(self, shortcut: str = "found", link: str = "before", **options: Any) -> None:
        super().__init__(**options)
        if shortcut not in ("found", "poc"):
            raise UsageError(f"unknown cowctx shortcut {shortcut!r}: use found or poc")
        if link not in ("before", "after"):
            raise UsageError(f"unknown cowctx link {link!r}: use before or after")
        self.shortcut = shortcut
        #: when fork links the child context: before copying PTEs (correct)
        #: or after (the PoC's dup_mmap order)
        self.link = link
        self.contexts: dict[int, CowContext] = {}
        self._next = 0

    # ---- contexts -----------------------------------------------------------------
    def ctx(self, mm: Mm) -> CowContext:
        """``mm->cow_context`` (``mm_init_cow_context`` on first use)."""
        c = mm.design
        if c is None:
            self._next += 1
            c = mm.design = CowContext(self._next, mm)
            self.contexts[c.id] = c
            self.cost["allocs"] += 1
            self.cost["t:context_new"] += 1
        return c  # type: ignore[no-any-return]

    def put(self, c: CowContext) -> None:
        """``put_cow_context`` -> ``__put_cow_context``: free and cascade."""
        cur: CowContext | None = c
        while cur is not None:
            cur.refcnt -= 1
            if cur.refcnt > 0:
                return
            cur.freed = True
            del self.contexts[cur.id]
            parent = cur.parent
            if parent is not None:
                parent.children.remove(cur)
            cur = parent

    # ---- remap tree ---------------------------------------------------------------------
    def rmap_pgoff(self, vma: Vma) -> int:
        """The page offset the rmap uses for ``vma``'s first page: its
        ``vm_pgoff`` (the PoC; a variant may use another, see
        rmaplab.designs.scalable_cow).  O(1)."""
        return vma.pgoff

    def vma_offset(self, vma: Vma) -> int:
        """``(vm_start >> PAGE_SHIFT) - pgoff``: the offset the walk tries."""
        return vma.start - self.rmap_pgoff(vma)

    def tracked(self, vma: Vma) -> bool:
        """``should_track_remap``: faulted, private, offset != 0."""
        return (vma.anon_vma is not None and not vma.is_shared()
                and self.vma_offset(vma) != 0 and not vma.detached)

    def update(self, vma: Vma) -> None:
        """Make the mm's tree hold exactly ``vma``'s current contribution."""
        c = self.ctx(vma.mm)
        old = c.contrib.get(vma)
        pg = self.rmap_pgoff(vma)
        new = ((pg, pg + vma.pages - 1, self.vma_offset(vma)) if self.tracked(vma) else None)
        if old == new:
            return
        if new is None:
            del c.contrib[vma]
        else:
            c.contrib[vma] = new
            self.cost["remap_updates"] += 1
            self.cost["t:remap_entry_set"] += 1
        c._index = c._bytes = None

    # ---- faults ------------------------------------------------------------------------
    def anon_vma_prepare(self, vma: Vma) -> None:
        """``__anon_vma_prepare`` in COW mode: the dummy marker, then
        ``cow_context_do_map_private_cow`` (a tracked VMA's entry)."""
        if vma.anon_vma is None:
            vma.anon_vma = FAULTED
            self.update(vma)

    def folio_add_new_anon_rmap(self, folio: Folio, vma: Vma, vpn: int, exclusive: bool) -> None:
        """``__folio_set_anon_cow``: the faulting mm's context, +1."""
        c = self.ctx(vma.mm)
        c.refcnt += 1
        folio.mapping = c
        folio.index = self.rmap_pgoff(vma) + (vpn - vma.start)

    def folio_move_anon_rmap(self, folio: Folio, vma: Vma) -> None:
        """``folio_move_anon_rmap``: to the writer's context if another."""
        c = self.ctx(vma.mm)
        old = folio.mapping
        if old is not c:
            c.refcnt += 1
            folio.mapping = c
            self.cost["t:folio_moved_context"] += 1
            self.put(old)

    def folio_freed(self, folio: Folio) -> None:
        """``__free_pages_prepare``: drop the folio's reference."""
        if folio.mapping is not None:
            self.put(folio.mapping)
            folio.mapping = None

    # ---- VMA lifecycle -------------------------------------------------------------------
    def anon_vma_clone(self, dst: Vma, src: Vma, op: str) -> None:
        dst.anon_vma = FAULTED if src.anon_vma is not None else None
        self.update(dst)

    def unlink_anon_vmas(self, vma: Vma) -> None:
        """``cow_context_vma_unmap``: the VMA's entry goes."""
        vma.anon_vma = None
        c = vma.mm.design
        if c is not None and vma in c.contrib:
            del c.contrib[vma]
            c._index = c._bytes = None

    def vma_range_changed(self, vma: Vma) -> None:
        """``cow_context_vma_adjust`` (correct form: replace the entry)."""
        if vma.anon_vma is not None:
            self.update(vma)

    def is_mergeable_anon_vma(self, tgt: Vma, src_anon: Any, src: Vma | None,
                              copied_from: Vma | None) -> bool:
        return True

    def anon_vmas_compatible(self, prev: Vma, next: Vma) -> bool:
        return True

    # ---- fork and exit ---------------------------------------------------------------------
    def dup_mmap_start(self, parent: Mm, child: Mm) -> None:
        """``dup_cow_context``, linked before any PTE is copied (choice 3)."""
        if self.link == "before":
            self._link(parent, child)

    def dup_mmap_end(self, parent: Mm, child: Mm) -> None:
        """The PoC links the child context only here (``link=after``)."""
        if self.link == "after":
            self._link(parent, child)

    def _link(self, parent: Mm, child: Mm) -> None:
        p = self.ctx(parent)
        c = self.ctx(child)
        c.parent = p
        p.children.insert(0, c)
        p.refcnt += 1

    def anon_vma_fork(self, child_vma: Vma, parent_vma: Vma) -> None:
        """``cow_context_do_fork``: the child VMA's entry in the child's tree."""
        child_vma.anon_vma = FAULTED if parent_vma.anon_vma is not None else None
        if child_vma.anon_vma is not None:
            self.update(child_vma)
            self.cost["fork_entries"] += 1 if self.tracked(child_vma) else 0

    def exit_mm(self, mm: Mm) -> None:
        """``drop_cow_context`` from ``__mmdrop``."""
        c = mm.design
        if c is not None:
            assert not c.contrib, "exit left remap entries"
            c.mm = None
            self.put(c)
            if not c.freed:
                self.cost["t:context_zombie"] += 1

    # ---- the walk ------------------------------------------------------------------------------
    def rmap_walk(self, folio: Folio, rwc: RmapWalkControl) -> None:
        """``cow_context_walk``: the folio's context, then its descendants
        (post-order, newest child first; each children list is read when
        the walk gets there, as ``traverse_contexts`` does under RCU).  The
        correct reading pins each context's VMAs with ``mmap_read_trylock``
        (a failed trylock makes the walk contended: the caller gives up, as
        reclaim does) and leaves RCU around ``rmap_one``, which may sleep;
        the PoC (``shortcut=poc``) holds RCU only and looks for an exclusive
        folio at offset 0 of its own context alone."""
        cost = self.cost
        cost["walks"] += 1
        sync = self.machine.sync
        sync.point("read folio->cow_context")
        c0 = folio.mapping
        if sync.active:
            sync.note(f"= {self.anchor_name(c0)}")
        if c0 is None:
            return
        if sync.active:
            sync.use(c0, self.anchor_name(c0))
        if c0.freed:
            return
        sync.rcu_read_lock()
        r = "continue"
        for n, c in enumerate(traverse_contexts(c0, sync)):
            r = self._visit_context(folio, c, n == 0, rwc)
            if r != "continue":
                break
        sync.rcu_read_unlock()
        if r == "contended":
            rwc.contended = True

    def descendants(self, c: CowContext) -> Iterator[CowContext]:
        """The walk's order from ``c`` (:func:`traverse_contexts`)."""
        return traverse_contexts(c, Sync())

    def _visit_context(self, folio: Folio, cur: CowContext, first: bool,
                       rwc: RmapWalkControl) -> str:
        """``walk_context``: offset 0, then every offset the context's remap
        tree records over the folio; a VMA matches only if its own offset is
        the one tried.  Returns 'continue', 'stop' (an exclusive folio found)
        or 'contended'."""
        cost = self.cost
        sync = self.machine.sync
        poc = self.shortcut == "poc"
        mm = cur.mm
        cost["anchors"] += 1
        act = sync.active
        if act:
            sync.point(f"visit context {cur.id} ({mm.name if mm else 'mm gone'})")
        if mm is None or not mm.alive:
            return "continue"
        cost["locks"] += 1  # mmget_not_zero (+ mmap_read_trylock)
        if not poc:
            if not sync.trylock(("mmap", mm.name), "r"):
                if sync.active:
                    sync.note("-> contended: give up")
                return "contended"
            # read under the mmap lock: a folio exclusive to this mm cannot
            # become shared while it is held (only this mm's fork shares it)
            sync.point("folio_maybe_mapped_shared? (before)")
        shared0 = folio.maybe_mapped_shared()
        if sync.active:
            sync.note(f"-> {'shared' if shared0 else 'exclusive'}")
        first_idx, last_idx = folio.index, folio.index + folio.nr - 1
        if poc and first and not shared0:
            offs = [0]
        else:
            cost["lookups"] += 1  # remap_mt
            offs = [0] + sorted(cur.offsets(first_idx, last_idx) - {0})
        found = False
        rmap_one = rwc.rmap_one
        for off in offs:
            cost["lookups"] += 1  # mm_mt range walk
            if act:
                sync.point(f"mm_mt lookup at offset {off}")
            base = folio.index + off
            for vma in mm.vmas.overlapping(base, base + folio.nr):
                cost["vmas"] += 1
                if self.vma_offset(vma) != off:
                    continue
                if not poc:
                    sync.rcu_read_unlock()  # context and mm pinned
                before = rwc.found
                rmap_one(folio, vma, base)
                found = found or rwc.found > before
                if not poc:
                    sync.rcu_read_lock()
        if not poc:
            sync.unlock(("mmap", mm.name))
        sync.point("folio_maybe_mapped_shared?")
        shared1 = folio.maybe_mapped_shared()
        if sync.active:
            sync.note(f"-> {'shared' if shared1 else 'exclusive'}")
        if poc and first and not shared0 and not shared1:
            return "stop"  # the PoC's "we only look once"
        # correct reading: stop only once an exclusive folio was found, and
        # never when looking for migration entries (the map count does not
        # count them)
        if (not poc and found and not shared0 and not shared1
                and rwc.kind != REMOVE_MIGRATION):
            return "stop"
        return "continue"

    def folio_get_anon_vma(self, folio: Folio) -> Any:
        c = folio.mapping
        if isinstance(c, CowContext):
            c.refcnt += 1
        return c

    def folio_put_anon_vma(self, handle: Any) -> None:
        if isinstance(handle, CowContext):
            self.put(handle)

    def folio_migrate_mapping(self, src: Folio, dst: Folio) -> None:
        """The new folio takes the context, with its own reference."""
        super().folio_migrate_mapping(src, dst)
        if isinstance(dst.mapping, CowContext):
            dst.mapping.refcnt += 1

    def anchor_name(self, anchor: Any) -> str:
        if isinstance(anchor, CowContext):
            return f"context {anchor.id}"
        if anchor is FAULTED:
            return "faulted (COW mode)"
        return super().anchor_name(anchor)

    def structure(self) -> tuple[list[StructNode], list[StructEdge]]:
        """Every context (its mm, references, remap entries), its parent
        link, each mm's context and each folio's context."""
        nodes, edges = [], []
        for c in sorted(self.contexts.values(), key=lambda c: c.id):
            remaps = "".join(f"\npgoff {a:#x}..{z:#x} offset {o:+#x}"
                             for a, z, o in sorted(c.contrib.values()))
            nodes.append(StructNode(f"ctx{c.id}", f"cow_context {c.id}"
                                    f"\nmm {c.mm.name if c.mm else '(gone)'} ref {c.refcnt}"
                                    f"{remaps}", "context"))
            if c.parent is not None:
                edges.append(StructEdge(f"ctx{c.id}", f"ctx{c.parent.id}", "parent", "dashed"))
            if c.mm is not None:
                edges.append(StructEdge(f"mm{c.mm.id}", f"ctx{c.id}", "cow_context", "bold"))
        for f in self.machine.anon_folios.values():
            if isinstance(f.mapping, CowContext):
                edges.append(StructEdge(f"folio{f.id}", f"ctx{f.mapping.id}", "mapping", "dotted"))
        return nodes, edges

    def state_key(self) -> Hashable:
        return tuple((c.id, c.refcnt, c.freed, c.parent.id if c.parent else None,
                      tuple(k.id for k in c.children),
                      tuple(sorted((v.id, e) for v, e in c.contrib.items())))
                     for c in sorted(self.contexts.values(), key=lambda c: c.id))

    # ---- accounting ---------------------------------------------------------------------------
    def tree_bytes(self, c: CowContext) -> tuple[int, int]:
        """(maple nodes, bytes incl. offset arrays) of one context's tree:
        O(E log E + S x E) for E entries and S segments when it changed since
        the last call, O(1) otherwise (cached until ``update``/unmap)."""
        if c._bytes is None:
            c._bytes = self._tree_bytes(c)
        return c._bytes

    def _tree_bytes(self, c: CowContext) -> tuple[int, int]:
        if not c.contrib:
            return 0, 0
        bounds = sorted({b for a, z, _ in c.contrib.values() for b in (a, z + 1)})
        segs: list[tuple[int, int, frozenset[int]]] = []
        for a, b in zip(bounds, bounds[1:]):
            offs = frozenset(o for (x, y, o) in c.contrib.values() if x < b and y >= a)
            if offs:
                if segs and segs[-1][1] == a and segs[-1][2] == offs:
                    segs[-1] = (segs[-1][0], b, offs)
                else:
                    segs.append((a, b, offs))
        slots = len(segs) + sum(1 for s, t in zip(segs, segs[1:]) if s[1] != t[0])
        slots += 1 if segs[0][0] > 0 else 0
        nodes = leaves = -(-slots // LEAF_SLOTS)
        while leaves > 1:
            leaves = -(-leaves // INTERNAL_FANOUT)
            nodes += leaves
        arrays = 0
        for _a, _b, offs in segs:
            if len(offs) > 1:
                cap = 2
                while cap < len(offs):
                    cap *= 2
                arrays += kmalloc_size(8 + 8 * cap)
        return nodes, nodes * MAPLE_NODE_BYTES + arrays

    def accounting(self) -> dict[str, tuple[int, int]]:
        n = len(self.contexts)
        nodes = total = 0
        for c in self.contexts.values():
            k, b = self.tree_bytes(c)
            nodes += k
            total += b
        return {"cow_context": (n, n * COW_CONTEXT_BYTES), "remap_tree": (nodes, total)}

    def measure(self) -> dict[str, int]:
        nodes = sum(self.tree_bytes(c)[0] for c in self.contexts.values())
        return {"anon_vma": 0, "avc": 0, "cow_context": len(self.contexts), "remap_nodes": nodes}

    def check_invariants(self) -> list[str]:
        errs: list[str] = []
        m = self.machine
        refs: dict[int, int] = {}
        for f in m.anon_folios.values():
            c = f.mapping
            if c is None or c.freed:
                errs.append(f"folio {f.id}: context freed (use after free)")
                continue
            refs[c.id] = refs.get(c.id, 0) + 1
        for c in self.contexts.values():
            want = (1 if c.mm is not None else 0) + len(c.children) + refs.get(c.id, 0)
            if c.refcnt != want:
                errs.append(f"{c}: refcnt should be {want}")
            for ch in c.children:
                if ch.parent is not c or ch.freed:
                    errs.append(f"{c}: child link broken")
            for vma, entry in c.contrib.items():
                if vma.detached or vma.mm.design is not c:
                    errs.append(f"{c}: remap entry of a freed or foreign VMA {vma.id}")
                elif entry != (self.rmap_pgoff(vma), self.rmap_pgoff(vma) + vma.pages - 1,
                               self.vma_offset(vma)):
                    errs.append(f"{c}: stale remap entry for VMA {vma.id}")
        for mm in m.mms.values():
            c = mm.design
            if c is None:
                continue
            if c.mm is not mm or c.freed:
                errs.append(f"{mm.name}: context broken")
            for vma in mm.vmas:
                if self.tracked(vma) and vma not in c.contrib:
                    errs.append(f"{mm.name}: remapped VMA {vma} has no remap entry")
        return errs


class CowContextLinkAfterCopy(CowContextDesign):
    """The PoC's fork order: ``dup_cow_context`` after ``copy_page_range``
    (PoC defect 7); sequentially identical to ``cowctx``."""

    name = "cowctx-link-after-copy"
    summary = "the PoC's fork order: the child context linked after the PTE copy (concurrency only)"
    options: dict[str, tuple[str, ...]] = {}

    def __init__(self, **options: Any) -> None:
        super().__init__(link="after", **options)


class CowContextPocShortcut(CowContextDesign):
    """The PoC's walk: an exclusive folio is looked for only at offset 0 of
    its own context (``walk_context``'s shortcut, PoC defects 1 and 2)."""

    name = "cowctx-poc-shortcut"
    summary = "the PoC's walk: an exclusive folio is looked for only at offset 0 of its context"
    options: dict[str, tuple[str, ...]] = {}

    def __init__(self, **options: Any) -> None:
        super().__init__(shortcut="poc", **options)

