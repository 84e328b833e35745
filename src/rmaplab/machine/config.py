"""Kernel configuration choices that change what the model predicts.

The defaults are those of the machines rmaplab validates against (Linux
6.18.44, x86_64): THP ``enabled=madvise``, ``use_zero_page=1``,
CONFIG_PT_RECLAIM=y, swap on zram (``SWP_SYNCHRONOUS_IO``), and the January
2026 stable fix "mm/vma: fix anon_vma UAF on mremap() faulted, unfaulted
merge" (present from 6.18.35 on).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KernelConfig:
    #: /sys/kernel/mm/transparent_hugepage/enabled: 'always', 'madvise' or 'never'
    thp: str = "madvise"
    #: /sys/kernel/mm/transparent_hugepage/use_zero_page
    thp_use_zero_page: bool = True
    #: CONFIG_PT_RECLAIM: MADV_DONTNEED frees page-table pages it empties
    pt_reclaim: bool = True
    #: mremap merge of a faulted source next to an unfaulted VMA duplicates
    #: the anon_vma into the target (vma_expand ``copied_from``), and refuses
    #: it for a fork child source (6.18.35+); False models 6.18.0..6.18.34.
    remap_copied_from_fix: bool = True
    #: the swap device is SWP_SYNCHRONOUS_IO (zram): do_swap_page reads a
    #: page whose swap count is 1 without going through the swap cache
    swap_synchronous_io: bool = True

    def __post_init__(self) -> None:
        if self.thp not in ("always", "madvise", "never"):
            raise ValueError(f"thp must be always, madvise or never, not {self.thp!r}")
