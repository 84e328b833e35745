"""One status line on stderr for commands that run long.

Shown only when stderr is a terminal (and not ``--quiet``), redrawn at most
twice a second, erased at the end: ``check: 37/120 scenarios, 12.4/s, ETA 7 s``.
Anything else (a pipe, a file, CI) sees nothing.

>>> p = Progress("check", 10, "scenarios", enabled=False)
>>> p.step(); p.done  # no output when disabled
1
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``done``/``total`` units of work of one command."""

    def __init__(self, what: str, total: int | None, unit: str, enabled: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.what = what
        self.total = total
        self.unit = unit
        self.done = 0
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def step(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.5 and (self.total is None or self.done < self.total):
            return
        self.last = now
        el = max(now - self.start, 1e-9)
        rate = self.done / el
        line = f"{self.what}: {self.done:,}" + (f"/{self.total:,}" if self.total else "")
        line += f" {self.unit}, {rate:,.1f}/s"
        if self.total and rate > 0 and self.done < self.total:
            line += f", ETA {(self.total - self.done) / rate:,.0f} s"
        if note:
            line += f" ({note})"
        self.stream.write("\r" + line[:150].ljust(80) + "\r")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """Erase the status line."""
        if self.shown:
            self.stream.write("\r" + " " * 80 + "\r")
            self.stream.flush()
            self.shown = False
