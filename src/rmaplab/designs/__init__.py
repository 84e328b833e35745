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
from rmaplab.designs.scalable_cow import ScalableCowDesign, ScalableCowNoMergeCheck
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
    "scalable-cow": ScalableCowDesign,
    "scalable-cow-no-merge-check": ScalableCowNoMergeCheck,
}


def make_design(spec: str, **options: Any) -> RmapDesign:
    """A fresh design object from ``NAME`` or ``NAME:key=value,...``
    (e.g. ``lazy:merge=same-root``); UsageError naming what is valid.

    >>> make_design("lazy:merge=upgrade").merge
    'upgrade'
    >>> try:
    ...     make_design("lazy:colour=red")
    ... except UsageError as e:
    ...     print(e)
    design lazy has no option 'colour': its options are merge=same-root|keep-both|upgrade
    """
    name, colon, opts = spec.partition(":")
    try:
        factory = DESIGNS[name]
    except KeyError:
        raise UsageError(f"unknown design {name!r}: choose one of {', '.join(DESIGNS)} "
                         "(rmaplab designs lists them)") from None
    allowed: dict[str, tuple[str, ...]] = getattr(factory, "options", {})
    if colon and not opts:
        raise UsageError(f"design {spec!r}: nothing after ':' (write {name} alone, or "
                         f"{name}:key=value)")
    for kv in opts.split(",") if opts else ():
        k, eq, v = kv.partition("=")
        if not eq or not k:
            raise UsageError(f"bad design option {kv!r} in {spec!r}: use key=value")
        k = k.replace("-", "_")
        if k not in allowed:
            what = (", ".join(f"{o}={'|'.join(vs)}" for o, vs in allowed.items())
                    if allowed else "none")
            raise UsageError(f"design {name} has no option {k!r}: its options are {what}")
        if v not in allowed[k]:
            raise UsageError(f"design {name}: option {k} must be one of "
                             f"{', '.join(allowed[k])}, not {v!r}")
        if k in options:
            raise UsageError(f"design {spec!r}: option {k} given twice")
        options[k] = v
    return factory(**options)


def describe_designs() -> list[str]:
    """``rmaplab designs``: every design, its one-line summary and options."""
    out = []
    for name, factory in DESIGNS.items():
        allowed: dict[str, tuple[str, ...]] = getattr(factory, "options", {})
        opts = " ".join(f"[{o}={'|'.join(vs)}]" for o, vs in allowed.items())
        out.append(f"{name}{' ' + opts if opts else ''}")
        out.append(f"    {getattr(factory, 'summary', '')}")
    return out
