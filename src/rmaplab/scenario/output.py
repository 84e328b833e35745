"""The output format shared by the model and the live-kernel runner.

One line per event, in scenario order, so that the two can be diffed::

    measure L: anon_vma=A avc=C [key=value ...]   live objects at line L
    maps Pn: S..E:rwx S..E:r-- ...                VMAs of Pn in the arena
    error L: ENAME                                the op on line L failed
"""

from __future__ import annotations

import errno


def format_measure(line: int, fields: dict[str, int]) -> str:
    """``measure`` line: anon_vma and avc first, then any extra fields.

    >>> format_measure(3, {"anon_vma": 1, "avc": 2, "vmas": 5})
    'measure 3: anon_vma=1 avc=2 vmas=5'
    """
    keys = ["anon_vma", "avc"] + [k for k in fields if k not in ("anon_vma", "avc")]
    return f"measure {line}: " + " ".join(f"{k}={fields[k]}" for k in keys)


def format_maps(proc: str, vmas: list[tuple[int, int, str]]) -> str:
    """``maps`` line.

    >>> format_maps("P0", [(0, 3, "rw-"), (4, 7, "r--")])
    'maps P0: 0..3:rw- 4..7:r--'
    """
    return f"maps {proc}:" + "".join(f" {a}..{b}:{p}" for a, b, p in vmas)


def format_error(line: int, err: int) -> str:
    """``error`` line from a positive errno value.

    >>> format_error(7, 14)
    'error 7: EFAULT'
    """
    return f"error {line}: {errno.errorcode.get(err, f'E{err}')}"


def core_fields(line: str) -> str:
    """A line without a measure's extra fields (what the kernel reports).

    >>> core_fields("measure 3: anon_vma=1 avc=2 vmas=5")
    'measure 3: anon_vma=1 avc=2'
    """
    if line.startswith("measure "):
        return " ".join(line.split()[:4])
    return line
