"""Anonymous-rmap designs behind one interface (:mod:`rmaplab.designs.base`).

>>> sorted(DESIGNS)[:1]
['classic']
"""

from __future__ import annotations

from typing import Any, Callable

from rmaplab.designs.base import RmapDesign
from rmaplab.designs.classic import ClassicDesign
from rmaplab.errors import UsageError

#: design name -> factory taking the design's options
DESIGNS: dict[str, Callable[..., RmapDesign]] = {
    "classic": ClassicDesign,
}


def make_design(name: str, **options: Any) -> RmapDesign:
    """A fresh design object by name; UsageError naming the valid ones."""
    try:
        factory = DESIGNS[name]
    except KeyError:
        raise UsageError(f"unknown design {name!r}: choose one of {', '.join(DESIGNS)}") from None
    return factory(**options)
