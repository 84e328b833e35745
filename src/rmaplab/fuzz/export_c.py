"""``rmaplab export-c``: a scenario as a standalone C program.

The program needs nothing but a C compiler and root: it runs the scenario
twice (a control run with only the fork/exit lines, then the whole
scenario), each process being a child driven over pipes, and prints the
lines ``rmaplab run`` prints, counting objects from ``/sys/kernel/slab``
(``shrink`` then ``objects``; the ``anon_vma_chain`` cache is shared with
other 64-byte objects on some kernels, so rerun if a count looks off).

>>> from rmaplab.scenario.parse import parse_text
>>> c = export_c(parse_text("P0 mmap @0 4\\nP0 write 0..3\\nmeasure\\n", "t.scn"))
>>> "int main" in c and "/sys/kernel/slab" in c
True
"""

from __future__ import annotations

from rmaplab.errors import ScenarioError
from rmaplab.kernel.runner import RUNTIME_SRC
from rmaplab.machine.constants import ARENA_BASE, ARENA_PAGES, PAGE_SIZE
from rmaplab.scenario.ast import Scenario
from rmaplab.scenario.ops import (
    Exit,
    Fork,
    KernelArgs,
    Maps,
    Measure,
    c_do_op,
    kernel_kind,
)

_PROLOGUE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096UL
#define PAGE PG
#define ARENA 0x%(arena)xUL
#define ARENA_END (ARENA + %(arena_pages)dUL * PG)
enum { FORK = %(fork)d, EXIT = %(exit)d, MEASURE = %(measure)d, MAPS = %(maps)d };
struct op { int line, proc, kind, child; unsigned long x[6]; };
"""

_BODY = r"""
static int cmd[NPROC][2], rep[NPROC][2];
static pid_t pids[NPROC];
static int fds[NFILES > 0 ? NFILES : 1];
#define FD(i) ((i) < (unsigned long)NFILES ? fds[i] : -1)

@RUNTIME@

@DO_OP@

static void worker(int me);

static long run_op(const struct op *o)
{
	if (o->kind == FORK) {
		pid_t p = fork();
		if (p == 0) worker(o->child);
		return p < 0 ? -errno : p;
	}
	if (o->kind == EXIT) _exit(0);
	return do_op(o->kind, o->x);
}

static void worker(int me)
{
	for (;;) {
		int k;
		if (read(cmd[me][0], &k, sizeof(k)) != sizeof(k)) _exit(0);
		long r = run_op(&ops[k]);
		if (write(rep[me][1], &r, sizeof(r)) != sizeof(r)) _exit(98);
	}
}

static long call(int proc, int k)
{
	long r;
	if (write(cmd[proc][1], &k, sizeof(k)) != sizeof(k)) exit(97);
	if (read(rep[proc][0], &r, sizeof(r)) != sizeof(r)) exit(96);
	return r;
}

static void wait_gone(pid_t pid)
{
	char path[64], buf[512];
	for (;;) {
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		FILE *f = fopen(path, "r");
		if (!f) return;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = 0;
		char *p = strrchr(buf, ')');
		if (!p || p[2] == 'Z' || p[2] == 'X') { waitpid(pid, NULL, WNOHANG); return; }
		usleep(200);
	}
}

static long read_objects(const char *cache)
{
	char path[128], buf[64];
	snprintf(path, sizeof(path), "/sys/kernel/slab/%s/shrink", cache);
	int fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, "1", 1) != 1) { perror(path); exit(3); }
	close(fd);
	snprintf(path, sizeof(path), "/sys/kernel/slab/%s/objects", cache);
	FILE *f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f)) { perror(path); exit(3); }
	fclose(f);
	return atol(buf);
}

/* Live objects of a cache: shrink and read until two readings 10 ms apart
 * agree (anon_vma is SLAB_TYPESAFE_BY_RCU: emptied slabs go after a grace
 * period, so a first reading can still count them). */
static long objects(const char *cache)
{
	long prev = read_objects(cache);
	for (int i = 0; i < 100; i++) {
		usleep(10000);
		long cur = read_objects(cache);
		if (cur == prev)
			return cur;
		prev = cur;
	}
	return prev;
}

static void print_maps(const char *name, pid_t pid)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	FILE *f = fopen(path, "r");
	printf("maps %s:", name);
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3 && s >= ARENA && e <= ARENA_END)
			printf(" %lu..%lu:%.3s", (s - ARENA) / PG, (e - ARENA) / PG - 1, perms);
	}
	if (f) fclose(f);
	printf("\n");
}

static long (*measured)[2];

static void run(int control)
{
	long base_av, base_avc;
	for (int i = 0; i < NPROC; i++)
		if (pipe(cmd[i]) || pipe(rep[i])) exit(95);
	pids[0] = fork();
	if (pids[0] == 0) worker(0);
	base_av = objects("anon_vma");
	base_avc = objects("anon_vma_chain");
	for (int k = 0; k < NOPS; k++) {
		const struct op *o = &ops[k];
		if (control && o->kind != FORK && o->kind != EXIT && o->kind != MEASURE)
			continue;
		if (o->kind == MEASURE) {
			long av = objects("anon_vma") - base_av, avc = objects("anon_vma_chain") - base_avc;
			if (control) { measured[k][0] = av; measured[k][1] = avc; }
			else printf("measure %d: anon_vma=%ld avc=%ld\n", o->line,
				    av - measured[k][0], avc - measured[k][1]);
			continue;
		}
		if (o->kind == MAPS) { print_maps(names[o->proc], pids[o->proc]); continue; }
		if (o->kind == EXIT) {
			if (write(cmd[o->proc][1], &k, sizeof(k)) != sizeof(k)) exit(97);
			wait_gone(pids[o->proc]);
			pids[o->proc] = 0;
			continue;
		}
		long r = call(o->proc, k);
		if (o->kind == FORK && r > 0) { pids[o->child] = r; continue; }
		if (r < 0 && !control) printf("error %d: %s\n", o->line, errname(-r));
	}
	for (int i = 0; i < NPROC; i++)
		if (pids[i] > 0) { kill(pids[i], SIGKILL); wait_gone(pids[i]); }
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	for (int i = 0; i < NPROC; i++) {
		close(cmd[i][0]); close(cmd[i][1]); close(rep[i][0]); close(rep[i][1]);
	}
}

/* Both runs are made by children forked from the same, warmed-up state, so
 * that the workers (forked from them) start from identical address spaces
 * and the control run's counts cancel the workers' own. */
static void run_in_child(int control)
{
	pid_t p = fork();
	if (p == 0) { run(control); _exit(0); }
	waitpid(p, NULL, 0);
}

int main(void)
{
	char dir[] = "/tmp/rmaplab-scnXXXXXX";
	if (geteuid() != 0) { fprintf(stderr, "needs root (/sys/kernel/slab/*/shrink)\n"); return 3; }
	if (!mkdtemp(dir)) return 3;
	for (int i = 0; i < NFILES; i++) {
		char path[128];
		snprintf(path, sizeof(path), "%s/f%d", dir, i);
		fds[i] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fds[i] < 0 || ftruncate(fds[i], PG)) return 3;
		unlink(path);
	}
	measured = mmap(NULL, sizeof(long[2]) * NOPS, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (measured == MAP_FAILED) return 3;
	install_fault_handler();
	setvbuf(stdout, NULL, _IONBF, 0);
	objects("anon_vma");  /* warm up: stdio and the heap exist before any run */
	printf("%s", "");
	run_in_child(1);
	for (int i = 0; i < NFILES; i++) ftruncate(fds[i], PG);
	run_in_child(0);
	rmdir(dir);
	return 0;
}
"""


def export_c(sc: Scenario) -> str:
    """C source reproducing ``sc`` on any Linux kernel (see module doc)."""
    names = sc.process_names()
    idx = {n: i for i, n in enumerate(names)}
    files = {f: i for i, f in enumerate(sc.files)}
    rows = []
    errnames = sorted({"EFAULT", "ENOMEM", "EINVAL", "EEXIST", "EACCES", "EPERM", "EAGAIN",
                       "EBUSY", "EOVERFLOW", "ENODEV"})

    k = KernelArgs(lambda page: ARENA_BASE + page * PAGE_SIZE, files.__getitem__)
    for op in sc.ops:
        a = op.action
        if a.model_only:
            raise ScenarioError(sc.path, op.line, f"'{op.text}' exists only in the model: "
                                "it has no C encoding")
        p = idx.get(op.proc, 0) if op.proc else 0
        kind = kernel_kind(a)
        child = idx[a.child] if isinstance(a, Fork) else 0
        x = [0] * 6 if isinstance(a, (Fork, Exit, Measure, Maps)) else a.kernel_args(k)
        xs = ", ".join(f"{v:#x}UL" if v >= 0 else "(unsigned long)-1" for v in x)
        rows.append(f"\t{{ {op.line}, {p}, {kind}, {child}, {{ {xs} }} }}, /* {op.text} */")
    head = [
        f"/* Generated by 'rmaplab export-c {sc.path}'.",
        " * Build and run as root on any Linux kernel:",
        " *     cc -O2 -o scenario scenario.c && sudo ./scenario",
        " * It prints the lines 'rmaplab run' prints for this scenario.",
    ] + [f" *   {ln}" for ln in (sc.header or [])[:20]] + [" */"]
    err_fn = ["static const char *errname(long e)", "{", "\tswitch (e) {"]
    err_fn += [f"\tcase {e}: return \"{e}\";" for e in errnames]
    err_fn += ["\t}", "\tstatic char buf[32];", '\tsnprintf(buf, sizeof(buf), "E%ld", e);',
               "\treturn buf;", "}"]
    parts = ["\n".join(head),
             _PROLOGUE % {"arena": ARENA_BASE, "arena_pages": ARENA_PAGES,
                          "fork": kernel_kind(Fork("P1")), "exit": kernel_kind(Exit()),
                          "measure": kernel_kind(Measure()), "maps": kernel_kind(Maps())},
             f"#define NPROC {len(names)}",
             f"#define NFILES {len(files)}",
             f"#define NOPS {max(1, len(sc.ops))}",
             "static const char *names[NPROC] = { " + ", ".join(f'"{n}"' for n in names) + " };",
             "static const struct op ops[NOPS] = {",
             "\n".join(rows) if rows else "\t{ 0, 0, MEASURE, 0, { 0 } },",
             "};",
             "\n".join(err_fn),
             _BODY.replace("@RUNTIME@", RUNTIME_SRC.read_text()).replace("@DO_OP@", c_do_op())]
    return "\n".join(parts)
