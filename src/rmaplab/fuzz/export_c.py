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

from rmaplab.machine.constants import ARENA_BASE, ARENA_PAGES, PAGE_SIZE
from rmaplab.scenario.ast import (
    MADVISE,
    Exit,
    Fork,
    Madvise,
    Maps,
    Measure,
    Mmap,
    Mprotect,
    Mremap,
    Munmap,
    Scenario,
    Touch,
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
#define ARENA 0x%(arena)xUL
#define ARENA_END (ARENA + %(arena_pages)dUL * PG)
enum { MMAP, TOUCH_R, TOUCH_W, MPROTECT, MUNMAP, MREMAP, MADVISE, FORK, EXIT, MEASURE, MAPS };
struct op { int line, proc, kind, child; unsigned long x[6]; };
"""

_BODY = r"""
static int cmd[NPROC][2], rep[NPROC][2];
static pid_t pids[NPROC];
static int fds[NFILES > 0 ? NFILES : 1];
static sigjmp_buf env;
static volatile sig_atomic_t touching;

static void on_fault(int sig) { (void)sig; if (touching) siglongjmp(env, 1); _exit(99); }

static long touch(unsigned long a, unsigned long n, int w)
{
	static volatile unsigned long i;
	i = 0;
	if (sigsetjmp(env, 1)) { touching = 0; return -EFAULT; }
	touching = 1;
	for (; i < n; i++) {
		volatile char *p = (volatile char *)(a + i * PG);
		if (w) *p = 1; else (void)*p;
	}
	touching = 0;
	return 0;
}

static long sys(long r) { return r == -1 ? -errno : 0; }

static void worker(int me);

static long do_op(const struct op *o, int me)
{
	const unsigned long *x = o->x;
	switch (o->kind) {
	case MMAP: {
		int fd = (long)x[4] >= 0 ? fds[x[4]] : -1;
		if (fd >= 0) {
			off_t need = (off_t)(x[5] + x[1]);
			if (lseek(fd, 0, SEEK_END) < need && ftruncate(fd, need)) return -errno;
		}
		return sys(syscall(SYS_mmap, x[0], x[1], x[2], x[3], fd, x[5]));
	}
	case TOUCH_R: return touch(x[0], x[1], 0);
	case TOUCH_W: return touch(x[0], x[1], 1);
	case MPROTECT: return sys(syscall(SYS_mprotect, x[0], x[1], x[2]));
	case MUNMAP: return sys(syscall(SYS_munmap, x[0], x[1]));
	case MREMAP: return sys(syscall(SYS_mremap, x[0], x[1], x[2], x[3], x[4]));
	case MADVISE: return sys(syscall(SYS_madvise, x[0], x[1], x[2]));
	case FORK: {
		pid_t p = fork();
		if (p == 0) worker(o->child);
		return p < 0 ? -errno : p;
	}
	case EXIT: _exit(0);
	}
	(void)me;
	return -EINVAL;
}

static void worker(int me)
{
	for (;;) {
		int k;
		if (read(cmd[me][0], &k, sizeof(k)) != sizeof(k)) _exit(0);
		long r = do_op(&ops[k], me);
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
	signal(SIGSEGV, on_fault);
	signal(SIGBUS, on_fault);
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

    def addr(page: int) -> int:
        return ARENA_BASE + page * PAGE_SIZE

    for op in sc.ops:
        a = op.action
        p = idx.get(op.proc, 0) if op.proc else 0
        x = [0] * 6
        child = 0
        if isinstance(a, Mmap):
            kind = "MMAP"
            flags = 0x100000 | (0x01 if a.shared else 0x02) | (0x20 if a.file is None else 0)
            flags |= 0x8000 if a.populate else 0  # MAP_POPULATE
            x = [addr(a.start), a.npages * PAGE_SIZE, a.prot, flags,
                 files[a.file] if a.file is not None else -1, a.off * PAGE_SIZE]
        elif isinstance(a, Touch):
            kind = "TOUCH_W" if a.write else "TOUCH_R"
            x[:2] = [addr(a.first), a.last - a.first + 1]
        elif isinstance(a, Mprotect):
            kind = "MPROTECT"
            x[:3] = [addr(a.first), (a.last - a.first + 1) * PAGE_SIZE, a.prot]
        elif isinstance(a, Munmap):
            kind = "MUNMAP"
            x[:2] = [addr(a.first), (a.last - a.first + 1) * PAGE_SIZE]
        elif isinstance(a, Mremap):
            kind = "MREMAP"
            flags = (1 if a.maymove else 0) | (4 if a.dontunmap else 0)
            new = 0
            if a.new_start is not None:
                flags |= 2
                new = addr(a.new_start)
            x[:5] = [addr(a.old_start), a.old_len * PAGE_SIZE, a.new_len * PAGE_SIZE, flags, new]
        elif isinstance(a, Madvise):
            kind = "MADVISE"
            x[:3] = [addr(a.first), (a.last - a.first + 1) * PAGE_SIZE, MADVISE[a.advice]]
        elif isinstance(a, Fork):
            kind = "FORK"
            child = idx[a.child]
        elif isinstance(a, Exit):
            kind = "EXIT"
        elif isinstance(a, Measure):
            kind = "MEASURE"
        elif isinstance(a, Maps):
            kind = "MAPS"
        else:  # pragma: no cover
            raise AssertionError(a)
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
             _PROLOGUE % {"arena": ARENA_BASE, "arena_pages": ARENA_PAGES},
             f"#define NPROC {len(names)}",
             f"#define NFILES {len(files)}",
             f"#define NOPS {max(1, len(sc.ops))}",
             "static const char *names[NPROC] = { " + ", ".join(f'"{n}"' for n in names) + " };",
             "static const struct op ops[NOPS] = {",
             "\n".join(rows) if rows else "\t{ 0, 0, MEASURE, 0, { 0 } },",
             "};",
             "\n".join(err_fn),
             _BODY]
    return "\n".join(parts)
