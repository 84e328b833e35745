"""Scalable CoW: the CoW context on the series' per-VMA anonymous page offset.

Lorenzo Stoakes' "scalable CoW" work (the successor of the CoW context
PoC, rmaplab.designs.cowctx) first posts a preparatory series that gives
every VMA a second page offset, ``vm_anon_pgoff`` (``__vm_virt_pgoff_lo/_hi``
in v1-v4, ``__vm_anon_pgoff_*`` in v5; posted as
``20260813-b4-scalable-cow-virt-pgoff-v5-0-c21581c0c3c8@kernel.org``, v1
``cover.1782735110.git.ljs@kernel.org``).  Its rules, as modelled by the
machine (``Vma.anon_off``, ``Vma.anon_pgoff``):

* it is ``vm_start >> PAGE_SHIFT`` when a VMA is created (``mmap_region``,
  ``do_brk_flags``, ``insert_vm_struct``), for file VMAs too;
* it moves with the VMA's start on split, merge and stack growth, like
  ``vm_pgoff``, and is copied at fork (``vm_area_dup``);
* ``copy_vma`` (mremap) keeps it for a faulted VMA, so the anonymous
  folios keep their index, and resets it to the new start for an unfaulted
  one; v5 also resets the source's on ``MREMAP_DONTUNMAP``;
* merges require linear anon pgoffs as well as linear ``vm_pgoff`` (v5: the
  check matters only for private file mappings: for anonymous VMAs the two
  offsets are always equal);
* ``__folio_set_anon`` takes the folio's index from it
  (``vma_anon_address()`` inverts it), and the anonymous rmap is keyed by it.

On the CoW context this removes the private-file case from the remap tree:
a MAP_PRIVATE file VMA's anonymous (COWed) folios are indexed by virtual
page, so its offset ``vm_start - vm_anon_pgoff`` is 0 and it needs no entry,
unless it was moved after being faulted, exactly as an anonymous VMA.  The
design is :class:`~rmaplab.designs.cowctx.CowContextDesign` with one hook
changed, :meth:`rmap_pgoff`, and the machine's merge rule switched on
(``uses_anon_pgoff``).  Where the series is silent (the CoW context's walk,
fork order, exclusive shortcut), the correct reading of cowctx is kept; its
options (``shortcut``, ``link``) apply unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rmaplab.designs.cowctx import CowContextDesign

if TYPE_CHECKING:
    from rmaplab.machine.vma import Vma


class ScalableCowDesign(CowContextDesign):
    """The CoW context keyed by ``vm_anon_pgoff`` (see the module docstring)."""

    name = "scalable-cow"
    summary = ("the CoW context on the scalable-CoW series' vm_anon_pgoff (v5): private "
               "file COW needs no remap entry")
    uses_anon_pgoff = True

    def rmap_pgoff(self, vma: Vma) -> int:
        """``vma->vm_anon_pgoff``: the folio index base of the series. O(1)."""
        return vma.anon_pgoff


class ScalableCowNoMergeCheck(ScalableCowDesign):
    """Flawed: merges ignore ``vm_anon_pgoff`` (only ``vm_pgoff`` linear), as
    before v5 made the check explicit for private file mappings: a faulted
    private file VMA moved next to an unmoved one of the same file merges,
    and the absorbed part's folios are looked for at the wrong offset."""

    name = "scalable-cow-no-merge-check"
    summary = "flawed: merges ignore vm_anon_pgoff (private file VMAs moved after fault)"
    uses_anon_pgoff = False
