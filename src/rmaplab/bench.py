"""``rmaplab bench``: a fixed synthetic workload timing the model itself.

The workload (the same every run): a parent maps ``vmas`` separate 4-page
anonymous VMAs (gaps keep them from merging) and writes every page of half
of them; it then forks ``children`` children one by one; each child writes
one page in each of 100 inherited VMAs (COW faults), mprotects 20 of them
read-only and exits.  A last phase writes 65,536 fresh pages of one large
VMA (first-touch faults).

Reported: page-fault operations per second (every page written, timed over
the fault phases only), the mean and worst time of one modelled fork of the
``vmas``-VMA parent, and the objects a fork allocates.  Numbers vary with
the machine; the README records them for the reference machine.
"""

from __future__ import annotations

import statistics
import time

from rmaplab.designs import make_design
from rmaplab.machine.machine import Machine

VMA_PAGES = 4
STRIDE = 5  # 4 pages + 1-page gap


def _workload(design: str, vmas: int, children: int) -> dict[str, float]:
    m = Machine(make_design(design))
    fault_pages = 0
    fault_time = 0.0
    for i in range(vmas):
        m.mmap("P0", i * STRIDE, VMA_PAGES)
    t = time.perf_counter()
    for i in range(0, vmas, 2):
        m.touch("P0", i * STRIDE, i * STRIDE + VMA_PAGES - 1, True)
    fault_time += time.perf_counter() - t
    fault_pages += (vmas + 1) // 2 * VMA_PAGES
    forks: list[float] = []
    objs: list[int] = []
    step = max(1, vmas // 100)
    for c in range(children):
        name = f"P{c + 1}"
        before = sum(n for n, _ in m.design.accounting().values())
        t = time.perf_counter()
        m.fork("P0", name)
        forks.append(time.perf_counter() - t)
        objs.append(sum(n for n, _ in m.design.accounting().values()) - before)
        t = time.perf_counter()
        for i in range(0, vmas, step)[:100]:
            m.touch(name, i * STRIDE, i * STRIDE, True)
        fault_time += time.perf_counter() - t
        fault_pages += len(range(0, vmas, step)[:100])
        for i in range(1, vmas, max(1, vmas // 20))[:20]:
            m.mprotect(name, i * STRIDE, i * STRIDE + VMA_PAGES - 1, 1)
        m.exit(name)
    big = vmas * STRIDE + 1024
    m.mmap("P0", big, 65536)
    t = time.perf_counter()
    m.touch("P0", big, big + 65535, True)
    fault_time += time.perf_counter() - t
    fault_pages += 65536
    return {
        "fault_ops_per_s": fault_pages / fault_time,
        "fork_mean_ms": statistics.mean(forks) * 1e3,
        "fork_median_ms": statistics.median(forks) * 1e3,
        "fork_max_ms": max(forks) * 1e3,
        "fork_objects": statistics.mean(objs),
        "faults": fault_pages,
    }


def run_bench(design: str = "classic", vmas: int = 3000, children: int = 50,
              repeat: int = 3) -> list[str]:
    """Run the workload ``repeat`` times; report the best run (least noise)."""
    runs = [_workload(design, vmas, children) for _ in range(max(1, repeat))]
    best = max(runs, key=lambda r: r["fault_ops_per_s"])
    fork = min(runs, key=lambda r: r["fork_median_ms"])
    return [
        f"design {design}: parent with {vmas} VMAs ({vmas // 2 + vmas % 2} faulted), "
        f"{children} children, best of {len(runs)} runs",
        f"page-fault ops/s: {best['fault_ops_per_s']:,.0f} ({best['faults']:,} faults)",
        f"fork of the {vmas}-VMA parent: median {fork['fork_median_ms']:.2f} ms, "
        f"mean {fork['fork_mean_ms']:.2f} ms, max {fork['fork_max_ms']:.2f} ms, "
        f"{fork['fork_objects']:.0f} objects allocated",
    ]


def replay_bench(traces: list[str], designs: list[str], repeat: int = 3) -> list[str]:
    """``rmaplab bench --replay TRACE...``: each trace replayed through each
    design alone (``rmaplab replay --no-walks``), best of ``repeat`` runs:
    events per second and per minute, including parsing the gzip trace."""
    from rmaplab.replay import replay

    out = []
    for t in traces:
        for d in designs:
            best = None
            for _ in range(max(1, repeat)):
                r = replay(t, [d], walks=False)
                rate = r.events / max(r.seconds, 1e-9)
                if best is None or rate > best[1]:
                    best = (r.events, rate)
            assert best is not None
            out.append(f"replay {t} through {d}: {best[0]:,} events, {best[1]:,.0f} events/s "
                       f"({best[1] * 60 / 1e6:.2f} M events/min), best of {max(1, repeat)}")
    return out
