#!/usr/bin/env python3
"""Record real programs on the live kernel and replay them through every
design: the README's "Real programs" table.

    python3 scripts/real_workloads.py [--keep DIR]

Needs root, tracefs and a C compiler (``rmaplab trace``).  Optional, each
row left out where it is missing: Debian's linux-source-6.1 (a real kernel
tree), postgresql-15 (a forking server under pgbench), chromium (a
multi-process browser with a zygote)::

    apt-get install linux-source-6.1 flex bison bc libssl-dev libelf-dev postgresql chromium
  Each workload is
recorded once (``rmaplab trace``), then replayed (``rmaplab replay --json``)
with all three designs; the table has the classic model against the kernel
(every call site equal or not), each design's memory at its peak, and the
replay speed.  Takes about two minutes on 2 cores.  A measurement: the test
suite does not re-run it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POOL = ROOT / "tests" / "data" / "traces" / "pool.py"


def make_project(d: Path) -> None:
    """25 small C files and a Makefile linking them into a shared library."""
    d.mkdir(parents=True, exist_ok=True)
    for i in range(1, 26):
        (d / f"f{i}.c").write_text(
            "#include <stdlib.h>\n"
            f"int f{i}(int x) {{ char *p = malloc(1000 * x + 1); int s = 0;\n"
            "  for (int i = 0; i < x; i++) s += p[i] = i; free(p); return s; }\n")
    (d / "Makefile").write_text(
        "OBJS=$(patsubst %.c,%.o,$(wildcard f*.c))\nall: $(OBJS)\n"
        "\tcc -shared -o libf.so $(OBJS)\n%.o: %.c\n\tcc -O2 -fPIC -c $< -o $@\n")


KERNEL_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")  # Debian linux-source-6.1
#: the kernel's own rmap-related mm/ files: what this laboratory models
KERNEL_OBJS = ("mm/rmap.o mm/mmap.o mm/memory.o mm/mremap.o mm/mprotect.o mm/madvise.o "
               "mm/mlock.o mm/swapfile.o mm/migrate.o mm/vmscan.o mm/gup.o mm/filemap.o").split()
PG = Path("/usr/lib/postgresql/15/bin")  # Debian postgresql-15


def kernel_tree(tmp: Path) -> Path | None:
    """The Linux 6.1 tree from Debian's linux-source-6.1, configured
    (defconfig) and prepared, untraced: the traced part is the compile."""
    if not KERNEL_TARBALL.exists():
        return None
    subprocess.run(["tar", "xJf", str(KERNEL_TARBALL), "-C", str(tmp)], check=True)
    tree = tmp / "linux-source-6.1"
    for target in ("defconfig", "prepare"):
        subprocess.run(["make", "-s", "-j2", target], cwd=tree, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return tree


def postgres(tmp: Path) -> list[str] | None:
    """A private PostgreSQL cluster (initdb untraced) and the traced command:
    start it, load pgbench's tables, 3 s of pgbench with 4 clients and a new
    connection per transaction (-C: the postmaster forks a backend each
    time), stop it."""
    if not (PG / "initdb").exists() or shutil.which("runuser") is None:
        return None
    d = tmp / "pgdata"
    d.mkdir()
    shutil.chown(d, "postgres")
    shutil.chown(tmp, "postgres")
    subprocess.run(["runuser", "-u", "postgres", "--", str(PG / "initdb"), "-D", str(d), "-A",
                    "trust"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    opts = f"-k {d} -p 54329 -c listen_addresses=''"
    script = (f"{PG}/pg_ctl -D {d} -o \"{opts}\" -w -l {d}/log start >/dev/null && "
              f"{PG}/pgbench -h {d} -p 54329 -i -s 1 postgres >/dev/null 2>&1 && "
              f"{PG}/pgbench -h {d} -p 54329 -c 4 -j 2 -C -T 3 postgres >/dev/null 2>&1; "
              f"{PG}/pg_ctl -D {d} -w stop >/dev/null")
    return ["runuser", "-u", "postgres", "--", "sh", "-c", script]


def workloads(tmp: Path) -> list[tuple[str, list[str]]]:
    out = []
    tree = kernel_tree(tmp)
    if tree is not None:
        out.append(("`make -j2` of 12 mm/ files of Linux 6.1 (Debian linux-source-6.1)",
                    ["make", "-s", "-j2", "-C", str(tree), *KERNEL_OBJS]))
    make_project(tmp / "mk")
    out.append(("`make -j2`, 25 small C files + link", ["make", "-s", "-j2", "-C",
                                                      str(tmp / "mk")]))
    out.append(("CPython `multiprocessing.Pool(4)` + 4 threads", [sys.executable, str(POOL)]))
    pg = postgres(tmp)
    if pg is not None:
        out.append(("PostgreSQL 15 + pgbench, 4 clients, a backend fork per transaction", pg))
    chromium = shutil.which("chromium")
    if chromium:
        page = tmp / "page.html"
        page.write_text("<html><body><h1>rmaplab</h1><p>" + "text " * 2000 + "</p></body></html>")
        out.append(("headless Chromium, one page screenshot",
                    [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
                     f"--screenshot={tmp / 'shot.png'}", page.as_uri()]))
    return out


def rmaplab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rmaplab", *args], capture_output=True,
                          text=True, cwd=ROOT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", help="keep the traces and JSON results in this directory")
    a = ap.parse_args()
    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="rmaplab-wl-"))
    tmp.mkdir(parents=True, exist_ok=True)
    rows = ["| workload | events | tasks (fork / clone(CLONE_VM) / exec) | kernel vs classic "
            "model (every call site) | classic divergences | rmap KB at each design's peak: "
            "classic / lazy / cowctx | VMAs per walk at the peak, mean (worst): classic / lazy "
            "/ cowctx | replay, 3 designs |",
            "|---|---:|---|---|---:|---|---|---:|"]
    try:
        for i, (name, argv) in enumerate(workloads(tmp)):
            trace = tmp / f"w{i}.trace.gz"
            r = rmaplab("trace", "--quiet", "--out", str(trace), "--", *argv)
            if r.returncode != 0 or not trace.exists():
                print(f"{name}: trace failed ({r.returncode}): {r.stderr.strip()[-300:]}",
                      file=sys.stderr)
                continue
            js = tmp / f"w{i}.json"
            r = rmaplab("replay", "--quiet", "--json", str(js), str(trace))
            if r.returncode not in (0, 1):
                print(f"{name}: replay failed: {r.stderr.strip()}", file=sys.stderr)
                continue
            d = json.loads(js.read_text())
            kv = d["kernel_vs_classic"]
            equal = all(row["kernel"] == row["model"] for row in kv)
            sites = {row["what"]: row["kernel"] for row in kv}
            allocs = sum(v for k, v in sites.items() if k.startswith("A "))
            ap_ = d["applied"]
            tasks = (f"{ap_.get('fork', 0)} / {ap_.get('clone(CLONE_VM)', 0)} / "
                     f"{ap_.get('exec', 0)}")

            def kb(design: str, d: dict = d) -> str:
                p = d["designs"][design]["peak"]
                b = sum(p.get(k, {"bytes": 0})["bytes"]
                        for k in ("anon_vma", "anon_vma_chain", "cow_context", "remap_tree"))
                return f"{b / 1024:,.1f}"

            def walk(design: str, d: dict = d) -> str:
                w = d["designs"][design]["walks"]
                return f"{w['mean_vmas']:.2f} ({w['worst_vmas']})"

            cl = d["designs"]["classic"]
            print(f"{name}: {d['events']:,} events", file=sys.stderr)
            rows.append(
                f"| {name} | {d['events']:,} | {tasks} | "
                f"{'all equal' if equal else 'DIFFERENT'} ({allocs:,} allocations) | "
                f"{cl['divergences']} (+{cl['concurrent_differences']} racing) | "
                f"{kb('classic')} / {kb('lazy')} / {kb('cowctx')} | "
                f"{walk('classic')} / {walk('lazy')} / {walk('cowctx')} | "
                f"{d['events'] / d['seconds']:,.0f} events/s |")
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
