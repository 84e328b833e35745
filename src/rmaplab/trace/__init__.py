"""``rmaplab trace``: record a real program tree's anonymous-rmap activity on
the live kernel (syscalls, faults, forks, execs, exits, and the kernel's own
anon_vma / anon_vma_chain allocations) into a trace file; read it back as a
stream of events.  Format: docs/trace-format.md.
"""

from rmaplab.trace.format import (
    Alloc,
    Call,
    End,
    Event,
    Exec,
    Exit,
    Fault,
    Fork,
    Free,
    Lost,
    Ret,
    Snap,
    Start,
    TraceReader,
    Vma,
    Warn,
    read_header,
    read_trace,
)
from rmaplab.trace.record import INCOMPLETE, record_trace

__all__ = [
    "Alloc", "Call", "End", "Event", "Exec", "Exit", "Fault", "Fork", "Free", "Lost", "Ret",
    "Snap", "Start", "TraceReader", "Vma", "Warn", "INCOMPLETE", "read_header", "read_trace",
    "record_trace",
]
