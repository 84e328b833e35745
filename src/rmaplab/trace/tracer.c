/*
 * rmaplab trace: the ptrace side of a recording (see docs/trace-format.md).
 *
 *   tracer --ppid PID --grace SECONDS INSTANCE_DIR SIDE_FILE EXE ARGV0 [ARGS...]
 *
 * Starts EXE (argv ARGV0 ARGS...) stopped, adds it to INSTANCE_DIR/set_event_pid,
 * and follows the whole tree (every fork, vfork, clone) with PTRACE_SEIZE.  A
 * seccomp filter, installed in the child before its execve and inherited by every
 * descendant, makes only the memory-management and task syscalls stop.
 *
 * Every observation is a *record*: one event line followed by zero or more "v"
 * (VMA) lines, written to SIDE_FILE as
 *
 *     #SEQ NLINES\n  LINE\n ...
 *
 * and then announced by writing "rmaplab SEQ" to INSTANCE_DIR/trace_marker, so
 * that the Python side places the record among the kernel's own events (faults,
 * kmem_cache events, task_newtask) at the position of the marker.  The record
 * is complete in SIDE_FILE before its marker exists.  Each record is written
 * while the task it concerns is stopped, so the marker lies after every kernel
 * event the task produced before the stop and before every event it produces
 * after it.
 *
 * Records (TID first; the Python side inserts the timestamp after it):
 *   start ROOT EXE                      the root task, stopped before its execve
 *   call TID NAME A0 A1 A2 A3 A4 A5     syscall entry (seccomp stop), args in hex
 *   ret TID NAME RET N                  syscall exit, RET as unsigned 64-bit hex,
 *                                       followed by N v lines: the VMAs now in the
 *                                       syscall's range
 *   exec TID OLDTID START_BRK N EXE     execve done, new program not yet run;
 *                                       N v lines: the new mm's whole layout
 *   exit TID e|k STATUS                 e: exit stop, mm not yet released;
 *                                       k: died without an exit stop (SIGKILL)
 *   snap TID REASON N                   N v lines: a quiescent mm's whole layout
 *   warn TID TEXT...                    something the trace cannot represent
 *   end ROOT STATUS KILLED              all tasks gone; root's wait status
 *
 *   v START END PERMS PGOFF DEV INODE FSIZE VMFLAGS ANON PATH
 *
 * Exit status: 0 (the traced command's status is in the end record), 1 on a
 * fatal tracer error (message on stderr; the tracees die with us: EXITKILL).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TRACER_VERSION "1"
#define PAGE 4096UL
#define TASK_SIZE_MAX 0x00007ffffffff000UL

/* ---- kernel ABI not in this system's headers ------------------------------ */

struct procmap_query {
	uint64_t size, query_flags, query_addr, vma_start, vma_end, vma_flags;
	uint64_t vma_page_size, vma_offset, inode;
	uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
	uint64_t vma_name_addr, build_id_addr;
};
#define PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)
#define PMQ_READ 0x01
#define PMQ_WRITE 0x02
#define PMQ_EXEC 0x04
#define PMQ_SHARED 0x08
#define PMQ_COVERING_OR_NEXT 0x10

struct page_region { uint64_t start, end, categories; };
struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)

#ifndef KCMP_VM
#define KCMP_VM 1
#endif
#define PR_SET_MM_ 35
#define PR_SET_THP_DISABLE_ 41
#define PR_SET_MEMORY_MERGE_ 67
#define PR_SET_VMA_ 0x53564d41

/* ---- the syscalls that stop ----------------------------------------------- */

enum range_kind {
	R_NONE,      /* no VMA lines */
	R_ADDR_LEN,  /* [a0, a0 + a1) */
	R_MMAP,      /* [ret, ret + a1) on success */
	R_MREMAP,    /* [a0, a0 + a1) and [ret, ret + a2) */
	R_BRK,       /* [start_brk, max(old brk, ret)) */
	R_AT_RET,    /* the VMA covering ret (shmat) */
	R_AT_A0,     /* the VMA covering a0 (shmdt) */
	R_ALL,       /* whole layout (mlockall, munlockall) */
	R_PRCTL,     /* PR_SET_VMA: [a2, a2 + a3) */
	R_RET_LEN,   /* [ret, ret + a1) (map_shadow_stack) */
};

struct sysdef { int nr; const char *name; enum range_kind range; int noreturn; };

static const struct sysdef SYSCALLS[] = {
	{9, "mmap", R_MMAP, 0},
	{10, "mprotect", R_ADDR_LEN, 0},
	{11, "munmap", R_ADDR_LEN, 0},
	{12, "brk", R_BRK, 0},
	{25, "mremap", R_MREMAP, 0},
	{28, "madvise", R_ADDR_LEN, 0},
	{30, "shmat", R_AT_RET, 0},
	{56, "clone", R_NONE, 0},
	{57, "fork", R_NONE, 0},
	{58, "vfork", R_NONE, 0},
	{59, "execve", R_NONE, 0},
	{60, "exit", R_NONE, 1},
	{67, "shmdt", R_AT_A0, 0},
	{149, "mlock", R_ADDR_LEN, 0},
	{150, "munlock", R_ADDR_LEN, 0},
	{151, "mlockall", R_ALL, 0},
	{152, "munlockall", R_ALL, 0},
	{157, "prctl", R_PRCTL, 0},
	{206, "io_setup", R_NONE, 0},
	{207, "io_destroy", R_NONE, 0},
	{216, "remap_file_pages", R_ADDR_LEN, 0},
	{231, "exit_group", R_NONE, 1},
	{237, "mbind", R_ADDR_LEN, 0},
	{256, "migrate_pages", R_NONE, 0},
	{279, "move_pages", R_NONE, 0},
	{310, "process_vm_readv", R_NONE, 0},
	{311, "process_vm_writev", R_NONE, 0},
	{322, "execveat", R_NONE, 0},
	{323, "userfaultfd", R_NONE, 0},
	{325, "mlock2", R_ADDR_LEN, 0},
	{329, "pkey_mprotect", R_ADDR_LEN, 0},
	{435, "clone3", R_NONE, 0},
	{440, "process_madvise", R_NONE, 0},
	{450, "set_mempolicy_home_node", R_ADDR_LEN, 0},
	{453, "map_shadow_stack", R_RET_LEN, 0},
	{462, "mseal", R_ADDR_LEN, 0},
};
#define NSYSCALLS ((int)(sizeof SYSCALLS / sizeof SYSCALLS[0]))

/* i386 numbers of the same operations: recorded as warnings only. */
static const int IA32_SYSCALLS[] = {1, 2, 11, 45, 90, 91, 117, 120, 125, 150, 151, 152, 153,
				    163, 172, 190, 192, 219, 252, 257, 274, 358, 376, 380,
				    435, 440, 450, 462};
#define NIA32 ((int)(sizeof IA32_SYSCALLS / sizeof IA32_SYSCALLS[0]))

static const struct sysdef *sysdef_of(uint64_t nr)
{
	for (int i = 0; i < NSYSCALLS; i++)
		if ((uint64_t)SYSCALLS[i].nr == nr)
			return &SYSCALLS[i];
	return NULL;
}

/* ---- output ---------------------------------------------------------------- */

static int side_fd = -1, marker_fd = -1;
static unsigned long seq;

struct buf { char *p; size_t len, cap; int lines; };

static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "rmaplab tracer: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void bgrow(struct buf *b, size_t need)
{
	if (b->len + need + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + need + 1)
		cap *= 2;
	b->p = realloc(b->p, cap);
	if (!b->p)
		die("out of memory");
	b->cap = cap;
}

static void bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			die("vsnprintf failed");
		if (b->p && (size_t)n < room) {
			b->len += n;
			return;
		}
		bgrow(b, n);
	}
}

static void bputs(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	bgrow(b, n);
	memcpy(b->p + b->len, s, n + 1);
	b->len += n;
}

/* Escape a path: bytes <= 0x20, >= 0x7f and '%' as %XX; "" and "-" as "-" / "%2D". */
static void bpath(struct buf *b, const char *s, size_t n)
{
	if (n == 0) {
		bputs(b, "-");
		return;
	}
	if (n == 1 && s[0] == '-') {
		bputs(b, "%2D");
		return;
	}
	bgrow(b, 3 * n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || c == '%')
			b->len += sprintf(b->p + b->len, "%%%02X", c);
		else
			b->p[b->len++] = (char)c;
	}
	b->p[b->len] = 0;
}

static void endline(struct buf *b)
{
	bputs(b, "\n");
	b->lines++;
}

static ssize_t write_all(int fd, const void *p, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, (const char *)p + done, n - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += w;
	}
	return (ssize_t)done;
}

/* Write record b (its lines) to the side file, then announce it by a marker. */
static void emit(struct buf *b)
{
	char head[64], mark[64];
	seq++;
	int hn = snprintf(head, sizeof head, "#%lu %d\n", seq, b->lines);
	struct iovec iov[2] = {{head, (size_t)hn}, {b->p, b->len}};
	size_t total = hn + b->len, done = 0;
	while (done < total) {
		ssize_t w = writev(side_fd, iov, 2);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("cannot write the side file: %s", strerror(errno));
		}
		done += w;
		if (done < total) { /* short write: finish with write_all */
			struct buf all = {0};
			bgrow(&all, total);
			memcpy(all.p, head, hn);
			memcpy(all.p + hn, b->p, b->len);
			if (write_all(side_fd, all.p + done, total - done) < 0)
				die("cannot write the side file: %s", strerror(errno));
			free(all.p);
			break;
		}
	}
	int mn = snprintf(mark, sizeof mark, "rmaplab %lu", seq);
	for (;;) {
		ssize_t w = write(marker_fd, mark, mn);
		if (w == mn)
			break;
		if (w < 0 && errno == EINTR)
			continue;
		die("cannot write trace_marker: %s", w < 0 ? strerror(errno) : "short write");
	}
	b->len = 0;
	b->lines = 0;
	if (b->p)
		b->p[0] = 0;
}

/* ---- tasks and mms --------------------------------------------------------- */

struct mm {
	int known;         /* 0: the root's pre-exec mm (a copy of the tracer) */
	int live;          /* tasks using it that have not passed their exit stop */
	int refs;          /* task entries pointing to it */
	int maps_fd, pagemap_fd; /* opened through some task of this mm */
	uint64_t brk;      /* last brk the trace saw (0: unknown) */
};

struct task {
	pid_t pid, tgid;
	struct mm *mm;      /* NULL while pending (first stop seen, creator's event not yet) */
	int started;        /* its first stop has been seen */
	int announced;      /* a creator's event named it */
	int in_syscall;     /* expecting a syscall-exit stop */
	const struct sysdef *sd;
	uint64_t args[6];
	int group_exit;     /* called exit_group */
	int passed_exit;    /* past its exit stop (or dead) */
	int held;           /* stopped at its exit stop, waiting for its mm's other tasks */
	struct timespec held_since, pending_since;
	struct task *next;
};

#define NBUCKET 4096
static struct task *tasks[NBUCKET];
static int ntasks;
static pid_t root_pid;
static int root_status = -1;
static int nheld, npending;

static struct task *find(pid_t pid)
{
	for (struct task *t = tasks[pid % NBUCKET]; t; t = t->next)
		if (t->pid == pid)
			return t;
	return NULL;
}

static struct task *add(pid_t pid)
{
	struct task *t = calloc(1, sizeof *t);
	if (!t)
		die("out of memory");
	t->pid = pid;
	t->tgid = pid;
	t->next = tasks[pid % NBUCKET];
	tasks[pid % NBUCKET] = t;
	ntasks++;
	return t;
}

static struct mm *new_mm(int known)
{
	struct mm *m = calloc(1, sizeof *m);
	if (!m)
		die("out of memory");
	m->known = known;
	m->maps_fd = m->pagemap_fd = -1;
	return m;
}

static void mm_close_fds(struct mm *m)
{
	if (m->maps_fd >= 0)
		close(m->maps_fd);
	if (m->pagemap_fd >= 0)
		close(m->pagemap_fd);
	m->maps_fd = m->pagemap_fd = -1;
}

static void mm_put(struct mm *m)
{
	if (m && --m->refs == 0) {
		mm_close_fds(m);
		free(m);
	}
}

static void set_mm(struct task *t, struct mm *m)
{
	m->refs++;
	m->live++;
	t->mm = m;
}

/* The task left its mm's users (exit stop, death or exec). */
static void leave_mm(struct task *t)
{
	if (t->mm && !t->passed_exit)
		t->mm->live--;
}

static void drop(struct task *t)
{
	struct task **pp = &tasks[t->pid % NBUCKET];
	while (*pp != t)
		pp = &(*pp)->next;
	*pp = t->next;
	if (t->held)
		nheld--;
	if (!t->mm && t->started)
		npending--;
	mm_put(t->mm);
	free(t);
	ntasks--;
}

static void now(struct timespec *ts) { clock_gettime(CLOCK_MONOTONIC, ts); }

static double since(const struct timespec *a)
{
	struct timespec b;
	now(&b);
	return (b.tv_sec - a->tv_sec) + (b.tv_nsec - a->tv_nsec) / 1e9;
}

/* ---- /proc readers ----------------------------------------------------------- */

static ssize_t read_file(const char *path, struct buf *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	b->len = 0;
	for (;;) {
		bgrow(b, 65536);
		ssize_t r = read(fd, b->p + b->len, b->cap - b->len - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		b->len += r;
	}
	b->p[b->len] = 0;
	close(fd);
	return (ssize_t)b->len;
}

static pid_t status_field(pid_t pid, const char *field)
{
	char path[64];
	struct buf b = {0};
	pid_t v = -1;
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	if (read_file(path, &b) > 0) {
		char *p = strstr(b.p, field);
		if (p)
			v = (pid_t)atoi(p + strlen(field));
	}
	free(b.p);
	return v;
}

/* Field N (1-based, as in proc(5)) of /proc/PID/stat, or 0. */
static uint64_t stat_field(pid_t pid, int n)
{
	char path[64];
	struct buf b = {0};
	uint64_t v = 0;
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if (read_file(path, &b) > 0) {
		char *p = strrchr(b.p, ')');
		int field = 2;
		while (p && field < n) {
			p = strchr(p + 1, ' ');
			field++;
		}
		if (p)
			v = strtoull(p + 1, NULL, 10);
	}
	free(b.p);
	return v;
}

/* State letter of a task (Z/X if it is past exit_mm), 0 if gone. */
static char task_state(pid_t tgid, pid_t pid)
{
	char path[80];
	struct buf b = {0};
	char c = 0;
	snprintf(path, sizeof path, "/proc/%d/task/%d/stat", tgid, pid);
	if (read_file(path, &b) > 0) {
		char *p = strrchr(b.p, ')');
		if (p && p[1] == ' ')
			c = p[2];
	}
	free(b.p);
	return c;
}

static int mm_fds(struct mm *m, pid_t pid)
{
	char path[64];
	if (m->maps_fd < 0) {
		snprintf(path, sizeof path, "/proc/%d/maps", pid);
		m->maps_fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (m->pagemap_fd < 0) {
		snprintf(path, sizeof path, "/proc/%d/pagemap", pid);
		m->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	return m->maps_fd >= 0 && m->pagemap_fd >= 0 ? 0 : -1;
}

static int scan_warned;

/* Present (or swapped) anonymous pages of [s, e) as page ranges relative to s. */
static void banon(struct buf *b, int pagemap_fd, uint64_t s, uint64_t e)
{
	struct page_region reg[512];
	struct pm_scan_arg a = {
		.size = sizeof a, .start = s, .end = e,
		.vec = (uint64_t)(uintptr_t)reg, .vec_len = 512,
		.category_inverted = PAGE_IS_FILE | PAGE_IS_PFNZERO,
		.category_mask = PAGE_IS_FILE | PAGE_IS_PFNZERO,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_HUGE,
	};
	int any = 0;
	size_t base = b->len;
	while (a.start < e) {
		long n = ioctl(pagemap_fd, PAGEMAP_SCAN, &a);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (!scan_warned++)
				fprintf(stderr, "rmaplab tracer: PAGEMAP_SCAN failed: %s\n",
					strerror(errno));
			b->len = base;
			b->p[base] = 0;
			bputs(b, "?");
			return;
		}
		for (long i = 0; i < n; i++) {
			uint64_t f = (reg[i].start - s) / PAGE, l = (reg[i].end - s) / PAGE - 1;
			const char *suf = (reg[i].categories & PAGE_IS_SWAPPED) ? "s"
					  : (reg[i].categories & PAGE_IS_HUGE) ? "h" : "";
			if (any)
				bputs(b, ",");
			if (f == l)
				bprintf(b, "%lu%s", (unsigned long)f, suf);
			else
				bprintf(b, "%lu-%lu%s", (unsigned long)f, (unsigned long)l, suf);
			any = 1;
		}
		if (a.walk_end <= a.start)
			break;
		a.start = a.walk_end;
	}
	if (!any)
		bputs(b, "-");
}

struct vmflags { uint64_t start; char flags[160]; };

/* VmFlags of every VMA, from /proc/PID/smaps (sorted by start). */
static int read_vmflags(pid_t pid, struct vmflags **out)
{
	char path[64];
	struct buf b = {0};
	int n = 0, cap = 0;
	struct vmflags *v = NULL;
	uint64_t cur = 0;
	snprintf(path, sizeof path, "/proc/%d/smaps", pid);
	if (read_file(path, &b) < 0) {
		free(b.p);
		*out = NULL;
		return -1;
	}
	for (char *line = b.p; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (!strncmp(line, "VmFlags:", 8)) {
			if (n == cap) {
				cap = cap ? 2 * cap : 64;
				v = realloc(v, cap * sizeof *v);
				if (!v)
					die("out of memory");
			}
			v[n].start = cur;
			char *f = line + 8, *o = v[n].flags;
			size_t room = sizeof v[n].flags - 1;
			while (*f == ' ')
				f++;
			for (; *f && room; f++, room--)
				*o++ = (*f == ' ') ? ',' : *f;
			while (o > v[n].flags && o[-1] == ',')
				o--;
			*o = 0;
			n++;
		} else {
			char *dash = strchr(line, '-');
			char *sp = strchr(line, ' ');
			if (dash && sp && dash < sp && line[0] != ' ') {
				char *endp;
				uint64_t s = strtoull(line, &endp, 16);
				if (endp == dash)
					cur = s;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	free(b.p);
	*out = v;
	return n;
}

static const char *flags_for(struct vmflags *v, int n, uint64_t start)
{
	int lo = 0, hi = n - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (v[mid].start == start)
			return v[mid].flags;
		if (v[mid].start < start)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

static int has_flag(const char *flags, const char *f)
{
	size_t n = strlen(f);
	for (const char *p = flags; p && *p;) {
		if (!strncmp(p, f, n) && (p[n] == ',' || p[n] == 0))
			return 1;
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return 0;
}

/*
 * v lines for the VMAs intersecting [s, e) of the mm of task pid.  vf: VmFlags
 * (from smaps) or NULL.  Returns the number of lines, -1 if the mm is gone.
 */
static int bvmas(struct buf *b, struct mm *m, pid_t pid, uint64_t s, uint64_t e,
		 struct vmflags *vf, int nvf)
{
	char name[4096 + 1];
	int count = 0;
	if (mm_fds(m, pid) < 0)
		return -1;
	uint64_t addr = s;
	while (addr < e) {
		struct procmap_query q = {
			.size = sizeof q, .query_flags = PMQ_COVERING_OR_NEXT, .query_addr = addr,
			.vma_name_addr = (uint64_t)(uintptr_t)name, .vma_name_size = sizeof name,
		};
		if (ioctl(m->maps_fd, PROCMAP_QUERY, &q) < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOENT)
				break;
			return -1;
		}
		if (q.vma_start >= e)
			break;
		size_t nlen = q.vma_name_size ? q.vma_name_size - 1 : 0;
		name[nlen] = 0;
		char perms[5] = {
			q.vma_flags & PMQ_READ ? 'r' : '-', q.vma_flags & PMQ_WRITE ? 'w' : '-',
			q.vma_flags & PMQ_EXEC ? 'x' : '-', q.vma_flags & PMQ_SHARED ? 's' : 'p', 0};
		const char *flags = vf ? flags_for(vf, nvf, q.vma_start) : NULL;
		bprintf(b, "v %lx %lx %s %lx %02x:%02x %lu ", (unsigned long)q.vma_start,
			(unsigned long)q.vma_end, perms, (unsigned long)q.vma_offset, q.dev_major,
			q.dev_minor, (unsigned long)q.inode);
		int filebacked = q.inode != 0 || q.dev_major != 0 || q.dev_minor != 0;
		struct stat st;
		char mf[96];
		snprintf(mf, sizeof mf, "/proc/%d/map_files/%lx-%lx", pid,
			 (unsigned long)q.vma_start, (unsigned long)q.vma_end);
		if (filebacked && stat(mf, &st) == 0)
			bprintf(b, "%lld ", (long long)st.st_size);
		else
			bputs(b, "- ");
		bputs(b, flags && *flags ? flags : "-");
		bputs(b, " ");
		int special = !strcmp(name, "[vvar]") || !strcmp(name, "[vvar_vclock]") ||
			      (flags && (has_flag(flags, "pf") || has_flag(flags, "io")));
		if ((q.vma_flags & PMQ_SHARED) || special)
			bputs(b, "?");
		else
			banon(b, m->pagemap_fd, q.vma_start, q.vma_end);
		bputs(b, " ");
		bpath(b, name, nlen);
		endline(b);
		count++;
		if (q.vma_end <= addr)
			break;
		addr = q.vma_end;
	}
	return count;
}

/* Record "HEAD N" + N v lines of the mm's whole layout (with VmFlags). */
static void emit_layout(struct buf *b, struct mm *m, pid_t pid, const char *head)
{
	struct vmflags *vf = NULL;
	int nvf = read_vmflags(pid, &vf);
	struct buf vm = {0};
	int n = bvmas(&vm, m, pid, 0, TASK_SIZE_MAX, vf, nvf < 0 ? 0 : nvf);
	free(vf);
	if (n < 0) {
		b->len = 0;
		b->lines = 0;
		bprintf(b, "warn %d layout unreadable (%s)", pid, strerror(errno));
		endline(b);
		emit(b);
		free(vm.p);
		return;
	}
	bprintf(b, "%s %d", head, n);
	endline(b);
	bgrow(b, vm.len);
	memcpy(b->p + b->len, vm.p ? vm.p : "", vm.len);
	b->len += vm.len;
	b->p[b->len] = 0;
	b->lines += vm.lines;
	free(vm.p);
	emit(b);
}

/* ---- the seccomp filter -------------------------------------------------------- */

static void install_filter(void)
{
	struct sock_filter f[160];
	int n = 0;
	/* instruction indexes (a jump's offset is target - (its index + 1)) */
	const int NS = NSYSCALLS, NI = NIA32;
	const int ALLOW64 = 5 + NS, PRCTL = ALLOW64 + 1, TRACE = PRCTL + 6, I386 = TRACE + 1;
#define ST(code, k) (f[n++] = (struct sock_filter)BPF_STMT(code, k))
#define JMP(op, k, to_t, to_f)                                                      \
	(f[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | op | BPF_K, k,               \
					     (uint8_t)((to_t) ? (to_t) - n - 1 : 0), \
					     (uint8_t)((to_f) ? (to_f) - n - 1 : 0)), \
	 n++)
	ST(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));      /* 0 */
	JMP(BPF_JEQ, AUDIT_ARCH_X86_64, 0, I386);                                /* 1 */
	ST(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));        /* 2 */
	JMP(BPF_JGE, 0x40000000, TRACE, 0);                                      /* 3: x32 */
	JMP(BPF_JEQ, 157, PRCTL, 0);                                             /* 4 */
	for (int i = 0; i < NS; i++)
		JMP(BPF_JEQ, (uint32_t)SYSCALLS[i].nr, TRACE, 0);
	ST(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);                                  /* ALLOW64 */
	/* prctl: only the options that change VMAs, the brk area, THP or KSM */
	ST(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));   /* PRCTL */
	JMP(BPF_JEQ, PR_SET_VMA_, TRACE, 0);
	JMP(BPF_JEQ, PR_SET_MM_, TRACE, 0);
	JMP(BPF_JEQ, PR_SET_THP_DISABLE_, TRACE, 0);
	JMP(BPF_JEQ, PR_SET_MEMORY_MERGE_, TRACE, 0);
	ST(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	ST(BPF_RET | BPF_K, SECCOMP_RET_TRACE);                                  /* TRACE */
	/* other architectures (i386): the memory and task syscalls stop, as warnings */
	ST(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));        /* I386 */
	for (int i = 0; i < NI; i++)
		JMP(BPF_JEQ, (uint32_t)IA32_SYSCALLS[i], I386 + 2 + NI, 0);
	ST(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	ST(BPF_RET | BPF_K, SECCOMP_RET_TRACE);
#undef ST
#undef JMP
	if (n != I386 + NI + 3) {
		fprintf(stderr, "rmaplab tracer: bad filter layout\n");
		_exit(126);
	}
	struct sock_fprog prog = {(unsigned short)n, f};
	if (geteuid() != 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		_exit(126);
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
		fprintf(stderr, "rmaplab tracer: seccomp: %s\n", strerror(errno));
		_exit(126);
	}
}

/* ---- the ptrace loop --------------------------------------------------------------- */

static void resume(struct task *t, int sig)
{
	long req = t->in_syscall ? PTRACE_SYSCALL : PTRACE_CONT;
	if (ptrace(req, t->pid, 0, (long)sig) < 0 && errno != ESRCH)
		die("ptrace resume %d: %s", t->pid, strerror(errno));
}

static struct buf out;

static void warnrec(pid_t pid, const char *fmt, ...)
{
	va_list ap;
	char msg[512];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if (*p == '\n')
			*p = ' ';
	struct buf w = {0};
	bprintf(&w, "warn %d %s", pid, msg);
	endline(&w);
	emit(&w);
	free(w.p);
}

static void emit_exit(struct task *t, char kind, int status)
{
	bprintf(&out, "exit %d %c %d", t->pid, kind, status);
	endline(&out);
	emit(&out);
}

/* Resume every task held at its exit stop in mm m, after a snapshot if m is quiet. */
static void release_held(struct mm *m, int snapshot)
{
	struct task *first = NULL;
	for (int i = 0; i < NBUCKET; i++)
		for (struct task *t = tasks[i]; t; t = t->next)
			if (t->held && t->mm == m && !first)
				first = t;
	if (!first)
		return;
	if (snapshot) {
		char head[64];
		snprintf(head, sizeof head, "snap %d exit", first->pid);
		emit_layout(&out, m, first->pid, head);
	}
	for (int i = 0; i < NBUCKET; i++)
		for (struct task *t = tasks[i]; t; t = t->next)
			if (t->held && t->mm == m) {
				t->held = 0;
				nheld--;
				resume(t, 0);
			}
}

/* Live tasks of m other than those held: the ones that may still run. */
static int others_running(struct mm *m)
{
	int n = 0;
	for (int i = 0; i < NBUCKET; i++)
		for (struct task *t = tasks[i]; t; t = t->next)
			if (t->mm == m && !t->passed_exit) {
				char st = task_state(t->tgid, t->pid);
				if (st && st != 'Z' && st != 'X')
					n++;
			}
	return n;
}

static void check_held(void)
{
	if (!nheld)
		return;
	for (int i = 0; i < NBUCKET; i++)
		for (struct task *t = tasks[i]; t; t = t->next) {
			if (!t->held)
				continue;
			struct mm *m = t->mm;
			if (others_running(m) == 0) {
				release_held(m, 1);
				return check_held(); /* the table may have changed */
			}
			if (since(&t->held_since) > 2.0) {
				warnrec(t->pid, "exit snapshot skipped: other tasks of the mm still run after 2 s");
				release_held(m, 0);
				return check_held();
			}
		}
}

/* A new task whose creator is known: pick its mm. */
static void adopt(struct task *c, struct task *parent)
{
	int shared = 0;
	long r = syscall(SYS_kcmp, parent->pid, c->pid, KCMP_VM, 0, 0);
	if (r == 0)
		shared = 1;
	else if (r < 0)
		warnrec(c->pid, "kcmp with parent %d failed (%s): assumed a new mm", parent->pid,
			strerror(errno));
	if (shared) {
		set_mm(c, parent->mm);
	} else {
		struct mm *m = new_mm(parent->mm->known);
		m->brk = parent->mm->brk;
		set_mm(c, m);
	}
	pid_t tg = status_field(c->pid, "\nTgid:");
	c->tgid = tg > 0 ? tg : c->pid;
}

/* A pending task whose creator never reported: find its mm through /proc. */
static void adopt_fallback(struct task *c)
{
	pid_t tg = status_field(c->pid, "\nTgid:"), pp = status_field(c->pid, "\nPPid:");
	struct task *cand[2] = {tg > 0 && tg != c->pid ? find(tg) : NULL, pp > 0 ? find(pp) : NULL};
	for (int i = 0; i < 2; i++)
		if (cand[i] && cand[i]->mm && syscall(SYS_kcmp, cand[i]->pid, c->pid, KCMP_VM, 0, 0) == 0) {
			set_mm(c, cand[i]->mm);
			c->tgid = tg > 0 ? tg : c->pid;
			return;
		}
	struct task *p = cand[1] && cand[1]->mm ? cand[1] : cand[0];
	struct mm *m = new_mm(p && p->mm ? p->mm->known : 1);
	set_mm(c, m);
	c->tgid = tg > 0 ? tg : c->pid;
	warnrec(c->pid, "creator of task unknown: mm resolved through /proc");
}

static void check_pending(void)
{
	if (!npending)
		return;
	for (int i = 0; i < NBUCKET; i++)
		for (struct task *t = tasks[i]; t; t = t->next)
			if (t->started && !t->mm && since(&t->pending_since) > 0.2) {
				adopt_fallback(t);
				npending--;
				resume(t, 0);
			}
}

static void on_new_child(struct task *parent, pid_t cpid)
{
	struct task *c = find(cpid);
	if (!c)
		c = add(cpid);
	c->announced = 1;
	if (c->mm)
		return;
	adopt(c, parent);
	if (c->started) {
		npending--;
		resume(c, 0);
	}
}

static void syscall_entry(struct task *t)
{
	struct __ptrace_syscall_info si;
	if (ptrace(PTRACE_GET_SYSCALL_INFO, t->pid, sizeof si, &si) < 0) {
		if (errno == ESRCH)
			return;
		die("PTRACE_GET_SYSCALL_INFO %d: %s", t->pid, strerror(errno));
	}
	if (si.op != PTRACE_SYSCALL_INFO_SECCOMP) {
		warnrec(t->pid, "unexpected syscall stop op %d", si.op);
		resume(t, 0);
		return;
	}
	uint64_t nr = si.seccomp.nr, *a = si.seccomp.args;
	if (si.arch != AUDIT_ARCH_X86_64 || nr >= 0x40000000) {
		warnrec(t->pid, "unmodelled %s syscall %lu args %lx %lx %lx %lx %lx %lx",
			si.arch != AUDIT_ARCH_X86_64 ? "ia32" : "x32", (unsigned long)nr,
			(unsigned long)a[0], (unsigned long)a[1], (unsigned long)a[2],
			(unsigned long)a[3], (unsigned long)a[4], (unsigned long)a[5]);
		t->in_syscall = 0;
		resume(t, 0);
		return;
	}
	const struct sysdef *sd = sysdef_of(nr);
	if (!sd) {
		warnrec(t->pid, "unexpected seccomp stop for syscall %lu", (unsigned long)nr);
		t->in_syscall = 0;
		resume(t, 0);
		return;
	}
	bprintf(&out, "call %d %s %lx %lx %lx %lx %lx %lx", t->pid, sd->name, (unsigned long)a[0],
		(unsigned long)a[1], (unsigned long)a[2], (unsigned long)a[3], (unsigned long)a[4],
		(unsigned long)a[5]);
	endline(&out);
	emit(&out);
	if ((nr == 59 || nr == 322) && t->mm && t->mm->known && t->mm->live == 1) {
		char head[64];
		snprintf(head, sizeof head, "snap %d execve", t->pid);
		emit_layout(&out, t->mm, t->pid, head);
	}
	if (nr == 231)
		t->group_exit = 1;
	t->sd = sd;
	memcpy(t->args, a, sizeof t->args);
	t->in_syscall = !sd->noreturn;
	resume(t, 0);
}

static void ret_range(struct task *t, uint64_t ret, int ok, uint64_t r[4], int *nr)
{
	uint64_t *a = t->args;
	*nr = 0;
#define RANGE(s, len)                                                   \
	do {                                                            \
		uint64_t s_ = (s) & ~(PAGE - 1), e_ = (s) + (len);      \
		if ((len) > 0 && e_ > (s) && e_ <= TASK_SIZE_MAX + PAGE) { \
			r[2 * *nr] = s_;                                \
			r[2 * *nr + 1] = (e_ + PAGE - 1) & ~(PAGE - 1); \
			(*nr)++;                                        \
		}                                                       \
	} while (0)
	switch (t->sd->range) {
	case R_NONE:
	case R_ALL:
		break;
	case R_ADDR_LEN:
		RANGE(a[0], a[1]);
		break;
	case R_MMAP:
		if (ok)
			RANGE(ret, a[1]);
		break;
	case R_MREMAP:
		RANGE(a[0], a[1]);
		if (ok)
			RANGE(ret, a[2]);
		break;
	case R_BRK: {
		uint64_t start = stat_field(t->pid, 47);
		uint64_t top = ret > t->mm->brk ? ret : t->mm->brk;
		if (start && top > start)
			RANGE(start, top - start);
		t->mm->brk = ret;
		break;
	}
	case R_AT_RET:
		if (ok)
			RANGE(ret, 1);
		break;
	case R_AT_A0:
		RANGE(a[0], 1);
		break;
	case R_PRCTL:
		if (a[0] == PR_SET_VMA_)
			RANGE(a[2], a[3]);
		break;
	case R_RET_LEN:
		if (ok)
			RANGE(ret, a[1]);
		break;
	}
#undef RANGE
}

static void syscall_exit(struct task *t)
{
	struct __ptrace_syscall_info si;
	if (ptrace(PTRACE_GET_SYSCALL_INFO, t->pid, sizeof si, &si) < 0) {
		if (errno == ESRCH)
			return;
		die("PTRACE_GET_SYSCALL_INFO %d: %s", t->pid, strerror(errno));
	}
	t->in_syscall = 0;
	if (si.op != PTRACE_SYSCALL_INFO_EXIT || !t->sd) {
		warnrec(t->pid, "unexpected syscall stop op %d", si.op);
		resume(t, 0);
		return;
	}
	uint64_t ret = (uint64_t)si.exit.rval;
	int ok = !si.exit.is_error;
	const struct sysdef *sd = t->sd;
	t->sd = NULL;
	if (sd->range == R_ALL && t->mm) {
		char head[96];
		snprintf(head, sizeof head, "ret %d %s %lx", t->pid, sd->name, (unsigned long)ret);
		emit_layout(&out, t->mm, t->pid, head);
		resume(t, 0);
		return;
	}
	uint64_t r[4];
	int nr;
	t->sd = sd;
	ret_range(t, ret, ok, r, &nr);
	t->sd = NULL;
	struct buf vm = {0};
	int n = 0;
	for (int i = 0; i < nr && t->mm; i++) {
		int k = bvmas(&vm, t->mm, t->pid, r[2 * i], r[2 * i + 1], NULL, 0);
		if (k < 0) {
			n = 0;
			vm.len = 0;
			vm.lines = 0;
			break;
		}
		n += k;
	}
	bprintf(&out, "ret %d %s %lx %d", t->pid, sd->name, (unsigned long)ret, n);
	endline(&out);
	if (vm.len) {
		bgrow(&out, vm.len);
		memcpy(out.p + out.len, vm.p, vm.len);
		out.len += vm.len;
		out.p[out.len] = 0;
		out.lines += vm.lines;
	}
	free(vm.p);
	emit(&out);
	resume(t, 0);
}

static void on_exec(struct task *t)
{
	unsigned long former = 0;
	ptrace(PTRACE_GETEVENTMSG, t->pid, 0, &former);
	struct task *self = t;
	t->started = 1;
	t->announced = 1;
	if ((pid_t)former != t->pid) {
		/* A non-leader thread exec'd and took the leader's tid (t->pid): the
		 * leader died in de_thread, unreported; move the execer's state here. */
		struct task *f = find((pid_t)former);
		if (t->mm && !t->passed_exit) {
			emit_exit(t, 'k', 0);
			leave_mm(t);
			t->passed_exit = 1;
		}
		mm_put(t->mm);
		t->mm = NULL;
		if (f) {
			t->mm = f->mm; /* the reference moves with it */
			f->mm = NULL;
			t->in_syscall = f->in_syscall;
			t->sd = f->sd;
			memcpy(t->args, f->args, sizeof t->args);
			t->passed_exit = f->passed_exit;
			if (f->held) {
				f->held = 0;
				nheld--;
			}
			f->started = 0;
			drop(f);
		} else {
			t->passed_exit = 1;
			t->in_syscall = 1;
		}
	}
	leave_mm(self);
	mm_put(self->mm);
	self->mm = NULL;
	self->passed_exit = 0;
	struct mm *m = new_mm(1);
	set_mm(self, m);
	m->brk = stat_field(self->pid, 47);
	self->tgid = self->pid;
	char exe[4097], link[64];
	snprintf(link, sizeof link, "/proc/%d/exe", self->pid);
	ssize_t n = readlink(link, exe, sizeof exe - 1);
	if (n < 0)
		n = 0;
	struct buf p = {0};
	bpath(&p, exe, (size_t)n);
	/* "exec TID OLDTID START_BRK N EXE": N goes before EXE, so build by hand */
	struct vmflags *vf = NULL;
	int nvf = read_vmflags(self->pid, &vf);
	struct buf vm = {0};
	int k = bvmas(&vm, m, self->pid, 0, TASK_SIZE_MAX, vf, nvf < 0 ? 0 : nvf);
	free(vf);
	if (k < 0) {
		k = 0;
		vm.len = 0;
		vm.lines = 0;
		warnrec(self->pid, "exec layout unreadable (%s)", strerror(errno));
	}
	bprintf(&out, "exec %d %lu %lx %d ", self->pid, former, (unsigned long)m->brk, k);
	bputs(&out, p.p);
	free(p.p);
	endline(&out);
	if (vm.len) {
		bgrow(&out, vm.len);
		memcpy(out.p + out.len, vm.p, vm.len);
		out.len += vm.len;
		out.p[out.len] = 0;
		out.lines += vm.lines;
	}
	free(vm.p);
	emit(&out);
	resume(self, 0);
}

static void on_exit_stop(struct task *t)
{
	unsigned long status = 0;
	ptrace(PTRACE_GETEVENTMSG, t->pid, 0, &status);
	emit_exit(t, 'e', (int)status);
	leave_mm(t);
	t->passed_exit = 1;
	t->in_syscall = 0;
	struct mm *m = t->mm;
	if (!m || !m->known) {
		resume(t, 0);
		return;
	}
	if (others_running(m) == 0) {
		/* the last task of the mm: its pages as the mm's teardown will find them */
		char head[64];
		snprintf(head, sizeof head, "snap %d exit", t->pid);
		emit_layout(&out, m, t->pid, head);
		release_held(m, 0); /* tasks of m held at their exit stop go on too */
		resume(t, 0);
		return;
	}
	/* group exit: the mm's other tasks are dying; wait for them (bounded) */
	int group = t->group_exit || WIFSIGNALED((int)status);
	int foreign = 0;
	for (int i = 0; i < NBUCKET; i++)
		for (struct task *o = tasks[i]; o; o = o->next)
			if (o != t && o->mm == m && !o->passed_exit &&
			    (o->tgid != t->tgid || (o->sd && (o->sd->nr == 59 || o->sd->nr == 322))))
				foreign++; /* another process, or a thread exec'ing (de_thread waits) */
	if (group && !foreign) {
		t->held = 1;
		nheld++;
		now(&t->held_since);
		return;
	}
	resume(t, 0);
}

static void on_death(pid_t pid, int status)
{
	struct task *t = find(pid);
	if (pid == root_pid)
		root_status = status;
	if (!t)
		return;
	if (!t->passed_exit) {
		emit_exit(t, 'k', status);
		leave_mm(t);
		t->passed_exit = 1;
	}
	drop(t);
}

static void on_alarm(int sig) { (void)sig; }

static void timer(int on)
{
	struct itimerval it = {{0, on ? 20000 : 0}, {0, on ? 20000 : 0}};
	setitimer(ITIMER_REAL, &it, NULL);
}

int main(int argc, char **argv)
{
	pid_t want_ppid = 0;
	double grace = 10.0;
	int i = 1;
	for (; i + 1 < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
		if (!strcmp(argv[i], "--ppid"))
			want_ppid = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--grace"))
			grace = atof(argv[i + 1]);
		else
			die("unknown option %s", argv[i]);
	}
	if (argc - i < 4)
		die("usage: tracer [--ppid PID] [--grace S] INSTANCE SIDE_FILE EXE ARGV0 [ARGS...]");
	const char *inst = argv[i], *side = argv[i + 1], *exe = argv[i + 2];
	char **cargv = &argv[i + 3];

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || (want_ppid && getppid() != want_ppid))
		die("parent gone");
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	struct sigaction sa = {0};
	sa.sa_handler = on_alarm; /* no SA_RESTART: interrupts waitpid */
	sigaction(SIGALRM, &sa, NULL);

	char path[4200];
	snprintf(path, sizeof path, "%s/trace_marker", inst);
	marker_fd = open(path, O_WRONLY | O_CLOEXEC);
	if (marker_fd < 0)
		die("%s: %s", path, strerror(errno));
	snprintf(path, sizeof path, "%s/set_event_pid", inst);
	int pid_fd = open(path, O_WRONLY | O_CLOEXEC);
	if (pid_fd < 0)
		die("%s: %s", path, strerror(errno));
	side_fd = open(side, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (side_fd < 0)
		die("%s: %s", side, strerror(errno));

	int go[2];
	if (pipe2(go, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	pid_t child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		signal(SIGALRM, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(go[1]);
		install_filter();
		char c;
		while (read(go[0], &c, 1) < 0 && errno == EINTR)
			; /* wait until the tracer is attached */
		execv(exe, cargv);
		fprintf(stderr, "rmaplab trace: %s: %s\n", exe, strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	root_pid = child;
	close(go[0]);
	/* Seize the child and stop it, so that nothing of it runs between the
	 * moment the instance starts recording and the start record. */
	long opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
		    PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT |
		    PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL;
	if (ptrace(PTRACE_SEIZE, child, 0, opts) < 0)
		die("PTRACE_SEIZE: %s", strerror(errno));
	if (ptrace(PTRACE_INTERRUPT, child, 0, 0) < 0)
		die("PTRACE_INTERRUPT: %s", strerror(errno));
	int st;
	if (waitpid(child, &st, __WALL) != child || !WIFSTOPPED(st))
		die("the command did not start (status %#x)", st);
	char pidtxt[32];
	int pn = snprintf(pidtxt, sizeof pidtxt, "%d\n", child);
	if (write(pid_fd, pidtxt, pn) != pn)
		die("set_event_pid: %s", strerror(errno));
	close(pid_fd);
	/* the instance records nothing until now: with an empty set_event_pid
	 * it would record every task of the machine */
	snprintf(path, sizeof path, "%s/tracing_on", inst);
	int on_fd = open(path, O_WRONLY | O_CLOEXEC);
	if (on_fd < 0 || write(on_fd, "1\n", 2) != 2)
		die("%s: %s", path, strerror(errno));
	close(on_fd);
	struct task *r = add(child);
	r->started = 1;
	r->announced = 1;
	set_mm(r, new_mm(0));
	{
		struct buf p = {0};
		bpath(&p, exe, strlen(exe));
		bprintf(&out, "start %d %s", child, p.p);
		free(p.p);
		endline(&out);
		emit(&out);
	}
	close(go[1]); /* the child goes on to its execve */
	resume(r, 0);

	struct timespec root_gone = {0};
	int killed = 0, kill_sent = 0;
	int timer_on = 0;
	while (ntasks > 0) {
		int need_timer = nheld || npending || root_status != -1;
		if (need_timer != timer_on)
			timer(timer_on = need_timer);
		pid_t pid = waitpid(-1, &st, __WALL);
		if (pid < 0) {
			if (errno == EINTR) {
				check_held();
				check_pending();
			} else if (errno == ECHILD) {
				break;
			} else {
				die("waitpid: %s", strerror(errno));
			}
		} else if (WIFEXITED(st) || WIFSIGNALED(st)) {
			on_death(pid, st);
			if (pid == root_pid)
				now(&root_gone);
		} else if (WIFSTOPPED(st)) {
			struct task *t = find(pid);
			int ev = st >> 16, sig = WSTOPSIG(st);
			if (!t)
				t = add(pid);
			if (!t->started && ev == PTRACE_EVENT_EXEC) {
				on_exec(t);
				goto next;
			}
			if (!t->started) {
				/* first stop of a new task (PTRACE_EVENT_STOP) */
				t->started = 1;
				if (t->mm) {
					resume(t, 0);
				} else {
					npending++;
					now(&t->pending_since);
				}
				goto next;
			}
			switch (ev) {
			case PTRACE_EVENT_SECCOMP:
				syscall_entry(t);
				break;
			case PTRACE_EVENT_FORK:
			case PTRACE_EVENT_VFORK:
			case PTRACE_EVENT_CLONE: {
				unsigned long c = 0;
				if (ptrace(PTRACE_GETEVENTMSG, pid, 0, &c) == 0 && c)
					on_new_child(t, (pid_t)c);
				resume(t, 0);
				break;
			}
			case PTRACE_EVENT_EXEC:
				on_exec(t);
				break;
			case PTRACE_EVENT_EXIT:
				on_exit_stop(t);
				break;
			case PTRACE_EVENT_STOP:
				if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
					if (ptrace(PTRACE_LISTEN, pid, 0, 0) < 0 && errno != ESRCH)
						die("PTRACE_LISTEN: %s", strerror(errno));
				} else {
					resume(t, 0);
				}
				break;
			case 0:
				if (sig == (SIGTRAP | 0x80)) {
					if (t->in_syscall)
						syscall_exit(t);
					else {
						warnrec(pid, "syscall stop outside a traced syscall");
						resume(t, 0);
					}
				} else {
					resume(t, sig); /* signal-delivery-stop: deliver it */
				}
				break;
			default:
				resume(t, 0);
			}
		}
	next:
		check_held();
		check_pending();
		if (root_status != -1 && ntasks > 0 && !kill_sent && grace >= 0 &&
		    since(&root_gone) > grace) {
			for (int b = 0; b < NBUCKET; b++)
				for (struct task *t = tasks[b]; t; t = t->next) {
					kill(t->pid, SIGKILL);
					killed++;
				}
			kill_sent = 1;
			warnrec(root_pid, "%d tasks still running %.1f s after the root exited: killed",
				killed, grace);
		}
	}
	timer(0);
	while (waitpid(-1, &st, __WALL | WNOHANG) > 0)
		;
	bprintf(&out, "end %d %d %d", root_pid, root_status, killed);
	endline(&out);
	emit(&out);
	return 0;
}
