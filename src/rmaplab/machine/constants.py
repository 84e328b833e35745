"""Sizes and addresses shared by the machine model and the live-kernel runner.

x86_64 with 4 KiB pages and 2 MiB PMD-sized transparent huge pages, as on
the Linux 6.18 machines rmaplab validates against.
"""

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
#: pages per PMD (one page-table page maps 512 pages; a PMD THP has 512 pages)
HPAGE_PMD_NR = 512
HPAGE_PMD_ORDER = 9

#: Virtual address of page 0 of a scenario's arena.
ARENA_BASE = 0x6F0000000000
#: Virtual page number of the arena's page 0.
ARENA_VPN = ARENA_BASE >> PAGE_SHIFT
#: Pages in the arena (4 GiB): scenario page numbers are 0 .. ARENA_PAGES-1.
ARENA_PAGES = 1 << 20

#: Where the model places mremap() destinations that the kernel would choose
#: itself (no MREMAP_FIXED): top-down below this virtual page number, far
#: outside the arena, as get_unmapped_area() does below mmap_base.
FAR_TOP_VPN = 0x7F0000000000 >> PAGE_SHIFT

#: /proc/sys/vm/max_map_count default.
MAX_MAP_COUNT = 65530
