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
ARENA_END_VPN = ARENA_VPN + ARENA_PAGES

#: Where the model places mremap() destinations that the kernel would choose
#: itself (no MREMAP_FIXED): top-down below this virtual page number, far
#: outside the arena, as get_unmapped_area() does below mmap_base.
FAR_TOP_VPN = 0x7F0000000000 >> PAGE_SHIFT

#: stack_guard_gap (mm/mmap.c): 256 pages by default
STACK_GUARD_GAP = 256

#: TASK_SIZE of x86_64 with 4-level page tables (47-bit user space), in pages.
TASK_SIZE_VPN = 0x7FFFFFFFF000 >> PAGE_SHIFT


def page_name(vpn: int) -> str:
    """A page for messages: its arena page number and virtual address, or
    its virtual address alone outside the arena.

    >>> page_name(ARENA_VPN + 3)
    'page 3 (0x6f0000003000)'
    >>> page_name(0x7f0000000)
    'address 0x7f0000000000'
    """
    page = vpn - ARENA_VPN
    if 0 <= page < ARENA_PAGES:
        return f"page {page} ({vpn << PAGE_SHIFT:#x})"
    return f"address {vpn << PAGE_SHIFT:#x}"


def short_page(vpn: int) -> str:
    """A page for step-by-step traces: ``page N`` in the arena, else its
    virtual address.

    >>> short_page(ARENA_VPN), short_page(0x7f0000000)
    ('page 0', '0x7f0000000000')
    """
    page = vpn - ARENA_VPN
    if 0 <= page < ARENA_PAGES:
        return f"page {page}"
    return f"{vpn << PAGE_SHIFT:#x}"
