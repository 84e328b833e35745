"""A static interval index, rebuilt lazily after changes.

The kernel keeps each anon_vma's chains in an augmented rbtree keyed by the
linked VMA's page-offset range (mm/interval_tree.c).  The model keeps the
chains in an insertion-ordered dict (link/unlink O(1)) and builds this index
on the first query after a change: O(n log n) to build, O(log n + k) per
overlap query returning k intervals.  Small sets (<= 8) are scanned.

>>> ix = IntervalIndex([(0, 9, "a"), (5, 5, "b"), (20, 30, "c")])
>>> sorted(ix.overlapping(4, 6))
['a', 'b']
>>> ix.overlapping(10, 19)
[]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
_SCAN = 8


class IntervalIndex(Generic[T]):
    """Closed intervals [first, last] with a payload; overlap queries."""

    __slots__ = ("_first", "_last", "_item", "_maxlast")

    def __init__(self, intervals: Sequence[tuple[int, int, T]]) -> None:
        iv = sorted(intervals, key=lambda t: t[0])
        self._first = [t[0] for t in iv]
        self._last = [t[1] for t in iv]
        self._item = [t[2] for t in iv]
        n = len(iv)
        self._maxlast = [0] * n
        if n > _SCAN:
            self._build(0, n)

    def _build(self, lo: int, hi: int) -> int:
        # implicit balanced tree over the sorted array: node = mid of [lo, hi)
        mid = (lo + hi) >> 1
        m = self._last[mid]
        if lo < mid:
            m = max(m, self._build(lo, mid))
        if mid + 1 < hi:
            m = max(m, self._build(mid + 1, hi))
        self._maxlast[mid] = m
        return m

    def __len__(self) -> int:
        return len(self._item)

    def overlapping(self, qlo: int, qhi: int) -> list[T]:
        """Payloads of the intervals intersecting [qlo, qhi]."""
        n = len(self._item)
        if n <= _SCAN:
            return [it for f, la, it in zip(self._first, self._last, self._item)
                    if f <= qhi and la >= qlo]
        out: list[T] = []
        stack = [(0, n)]
        first, last, item, maxlast = self._first, self._last, self._item, self._maxlast
        while stack:
            lo, hi = stack.pop()
            mid = (lo + hi) >> 1
            if maxlast[mid] < qlo:
                continue
            if lo < mid:
                stack.append((lo, mid))
            if first[mid] <= qhi:
                if last[mid] >= qlo:
                    out.append(item[mid])
                if mid + 1 < hi:
                    stack.append((mid + 1, hi))
        return out
