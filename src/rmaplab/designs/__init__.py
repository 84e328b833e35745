"""Anonymous-rmap designs behind one interface (:mod:`rmaplab.designs.base`).

>>> sorted(DESIGNS)[:1]
['classic']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rmaplab.designs.base import RmapDesign
from rmaplab.designs.classic import ClassicDesign
from rmaplab.designs.cowctx import (
    CowContextDesign,
    CowContextLinkAfterCopy,
    CowContextPocShortcut,
)
from rmaplab.designs.lazy import (
    LazyDesign,
    LazyFolioLock,
    LazyMergeAny,
    LazyNoRetry,
    LazyNoUpgradeOnMremap,
    LazySingleAddress,
)
from rmaplab.errors import UsageError

#: design name -> factory taking the design's options
DESIGNS: dict[str, Callable[..., RmapDesign]] = {
    "classic": ClassicDesign,
    "lazy": LazyDesign,
    "lazy-noretry": LazyNoRetry,
    "lazy-folio-lock": LazyFolioLock,
    "lazy-single-address": LazySingleAddress,
    "lazy-merge-any": LazyMergeAny,
    "lazy-no-upgrade-on-mremap": LazyNoUpgradeOnMremap,
    "cowctx": CowContextDesign,
    "cowctx-poc-shortcut": CowContextPocShortcut,
    "cowctx-link-after-copy": CowContextLinkAfterCopy,
}


def make_design(spec: str, **options: Any) -> RmapDesign:
    """A fresh design object from ``NAME`` or ``NAME:key=value,...``
    (e.g. ``lazy:merge=same-root``); UsageError naming the valid ones.

    >>> make_design("lazy:merge=upgrade").merge
    'upgrade'
    """
    name, _, opts = spec.partition(":")
    for kv in filter(None, opts.split(",")):
        k, eq, v = kv.partition("=")
        if not eq:
            raise UsageError(f"bad design option {kv!r} in {spec!r}: use key=value")
        options[k.replace("-", "_")] = v
    try:
        factory = DESIGNS[name]
    except KeyError:
        raise UsageError(f"unknown design {name!r}: choose one of {', '.join(DESIGNS)}") from None
    try:
        return factory(**options)
    except TypeError as e:
        raise UsageError(f"bad options for design {name}: {e}") from None
