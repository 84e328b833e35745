"""The interface between the machine and an anonymous-rmap design.

The machine calls these hooks exactly where the kernel touches anonymous
rmap state; each names the kernel function it stands for.  A design owns its
own objects, the VMA slots ``vma.anon_vma`` (non-None iff the VMA is
"faulted"), ``vma.rmap`` and ``vma.design``, and the folio slots
``folio.mapping`` and ``folio.index``.  It never edits page tables.

Hooks take the locks the kernel takes inside the corresponding function
through ``machine.sync`` (e.g. ``anon_vma_fork`` locks the anon_vma root),
so that the interleaving explorer sees them; the machine takes the locks of
its own paths (mmap lock, VMA locks, PTLs).

:class:`rmaplab.designs.base.RmapDesign` implements every hook with the
behaviour of a design that keeps nothing; designs subclass it.  This module
is the contract the machine relies on, and imports nothing from
``rmaplab.designs``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rmaplab.machine.folio import Folio, SwapSlot
    from rmaplab.machine.machine import Machine
    from rmaplab.machine.mm import Mm
    from rmaplab.machine.vma import Vma

#: what a walk is for (``rmap_walk_control`` users of mm/rmap.c)
UNMAP, MIGRATE, REMOVE_MIGRATION, REFERENCED, CHECK = (
    "unmap", "migrate", "remove_migration", "referenced", "check")


class RmapWalkControl:
    """``struct rmap_walk_control``.

    ``rmap_one(folio, vma, base) -> bool`` is called for every VMA the walk
    finds that may map the folio, with ``base`` the vpn the folio's first
    page would have in that VMA; it returns False to stop the walk.
    ``anon_lock`` selects ``folio_lock_anon_vma_read`` (re-read the mapping
    under RCU, check the folio is still mapped, take a reference) rather
    than the plain ``folio_anon_vma`` of ``remove_migration_ptes``, whose
    caller keeps the anchor alive.  ``try_lock``: give up on contention and
    set ``contended`` (``folio_referenced``).  ``found`` counts mappings the
    ``rmap_one`` calls found (page_vma_mapped_walk succeeded).
    """

    __slots__ = ("kind", "rmap_one", "anon_lock", "try_lock", "contended", "found")

    def __init__(self, kind: str, rmap_one: Callable[[Folio, Vma, int], bool],
                 anon_lock: bool = True, try_lock: bool = False) -> None:
        self.kind = kind
        self.rmap_one = rmap_one
        self.anon_lock = anon_lock
        self.try_lock = try_lock
        self.contended = False
        self.found = 0


class StructNode:
    """An object of a design, for pictures (``rmaplab draw``): ``id`` is unique
    in the picture; machine objects are ``vma<N>``, ``folio<N>``, ``mm<N>``."""

    __slots__ = ("id", "label", "kind")

    def __init__(self, nid: str, label: str, kind: str) -> None:
        self.id, self.label, self.kind = nid, label, kind


class StructEdge:
    """A link between two picture objects (``style``: solid, dashed, dotted)."""

    __slots__ = ("src", "dst", "label", "style")

    def __init__(self, src: str, dst: str, label: str = "", style: str = "solid") -> None:
        self.src, self.dst, self.label, self.style = src, dst, label, style


class Design(Protocol):
    """What the machine needs from a design (see the module docstring)."""

    name: str
    machine: Machine
    cost: Counter[str]
    #: slab allocations/frees by kernel call site ("A av __anon_vma_prepare");
    #: filled only by the design that is the kernel's own (classic)
    kmem: Counter[str]
    #: False if dup_anon_rmap does nothing (set by attach)
    hooks_dup: bool
    #: the walk reads rwc.found
    uses_found: bool
    #: merges also require linear Vma.anon_pgoff (the scalable-CoW series)
    uses_anon_pgoff: bool

    def attach(self, machine: Machine) -> None: ...

    # ---- faults: mm/memory.c, mm/huge_memory.c, mm/rmap.c
    def anon_vma_prepare(self, vma: Vma) -> None: ...
    def folio_add_new_anon_rmap(self, folio: Folio, vma: Vma, vpn: int,
                                exclusive: bool) -> None: ...
    def folio_add_anon_rmap(self, folio: Folio, vma: Vma, vpn: int) -> None: ...
    def folio_move_anon_rmap(self, folio: Folio, vma: Vma) -> None: ...
    def ksm_might_need_to_copy(self, folio: Folio, vma: Vma, vpn: int) -> bool: ...
    def folio_freed(self, folio: Folio) -> None: ...

    # ---- VMA lifecycle: mm/vma.c, mm/rmap.c
    def anon_vma_clone(self, dst: Vma, src: Vma, op: str) -> None: ...
    def unlink_anon_vmas(self, vma: Vma) -> None: ...
    def vma_range_changed(self, vma: Vma) -> None: ...
    def vm_area_free(self, vma: Vma) -> None: ...
    def is_mergeable_anon_vma(self, tgt: Vma, src_anon: Any, src: Vma | None,
                              copied_from: Vma | None) -> bool: ...
    def anon_vmas_compatible(self, prev: Vma, next: Vma) -> bool: ...
    def dup_anon_vma(self, dst: Vma, src: Vma) -> None: ...
    def merge_commit(self, target: Vma, sources: list[Vma]) -> None: ...
    def anon_vma_lock_write(self, vma: Vma) -> Any: ...
    def anon_vma_unlock_write(self, token: Any) -> None: ...

    # ---- fork: kernel/fork.c dup_mmap
    def dup_mmap_start(self, parent: Mm, child: Mm) -> None: ...
    def anon_vma_fork(self, child_vma: Vma, parent_vma: Vma) -> None: ...
    def dup_anon_rmap(self, folio: Folio, src_vma: Vma, dst_vma: Vma) -> None: ...
    def copy_swap_pte(self, slot: SwapSlot, src_vma: Vma, dst_vma: Vma) -> None: ...
    def dup_mmap_end(self, parent: Mm, child: Mm) -> None: ...

    # ---- mremap: mm/mremap.c
    def move_vma_start(self, vma: Vma) -> None: ...
    def move_anon_pte(self, folio: Folio, old_vma: Vma, new_vma: Vma, old_vpn: int,
                      new_vpn: int) -> None: ...

    # ---- exit
    def exit_mm(self, mm: Mm) -> None: ...

    # ---- rmap walks: mm/rmap.c, mm/migrate.c
    def rmap_walk(self, folio: Folio, rwc: RmapWalkControl) -> None: ...
    def folio_get_anon_vma(self, folio: Folio) -> Any: ...
    def folio_put_anon_vma(self, handle: Any) -> None: ...
    def folio_migrate_mapping(self, src: Folio, dst: Folio) -> None: ...

    # ---- explorer and accounting
    def anchor_name(self, anchor: Any) -> str: ...
    def state_key(self) -> Hashable: ...
    def structure(self) -> tuple[list[StructNode], list[StructEdge]]: ...
    def accounting(self) -> dict[str, tuple[int, int]]: ...
    def measure(self) -> dict[str, int]: ...
    def measure_extra(self) -> dict[str, int]: ...
    def memory(self) -> dict[str, tuple[int, int]]: ...
    def retained_vmas(self) -> int: ...
    def check_invariants(self) -> list[str]: ...
