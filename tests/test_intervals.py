"""IntervalIndex against brute force (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rmaplab.designs.intervals import IntervalIndex

interval = st.tuples(st.integers(0, 200), st.integers(0, 40)).map(lambda t: (t[0], t[0] + t[1]))


@settings(max_examples=300, deadline=None)
@given(st.lists(interval, max_size=60), st.integers(0, 250), st.integers(0, 30))
def test_overlap_query_matches_brute_force(ivs, qlo, qlen) -> None:  # type: ignore[no-untyped-def]
    qhi = qlo + qlen
    ix = IntervalIndex([(a, b, i) for i, (a, b) in enumerate(ivs)])
    want = sorted(i for i, (a, b) in enumerate(ivs) if a <= qhi and b >= qlo)
    assert sorted(ix.overlapping(qlo, qhi)) == want
