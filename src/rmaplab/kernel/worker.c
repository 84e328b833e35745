/*
 * rmaplab live-kernel worker.
 *
 * One instance of this program plays one process of a scenario.  The
 * runner (rmaplab.kernel.runner) drives it over two FIFOs,
 * <dir>/<name>.in (commands) and <dir>/<name>.out (replies), one line each.
 * The worker performs the raw system call and answers "ok [value]" or
 * "err ERRNO".  It never allocates memory after start-up, so that its own
 * address space (stack, data, heap) is identical in a scenario run and in
 * the control run that the runner subtracts.
 *
 * Commands (numbers are decimal or 0x-hex):
 *   mmap ADDR LEN PROT FLAGS FD OFF   -> ok ADDR | err E
 *   munmap ADDR LEN                   -> ok | err E
 *   mprotect ADDR LEN PROT            -> ok | err E
 *   madvise ADDR LEN ADVICE           -> ok | err E
 *   mremap OLD OLDLEN NEWLEN FLAGS NEW -> ok ADDR | err E
 *   touch r|w ADDR NPAGES             -> ok | err 14 DONE   (SIGSEGV/SIGBUS)
 *   fork NAME                         -> ok PID (the child answers "ready"
 *                                        on its own FIFOs)
 *   exit                              -> (no reply; _exit(0))
 *   ping                              -> ok
 *
 * Written for rmaplab; statically linked so that no shared library
 * mappings sit in the mmap area where non-fixed mremap() destinations land.
 */
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
#include <sys/types.h>
#include <unistd.h>

#define PAGE 4096UL

static int in_fd = -1, out_fd = -1;
static char dir[512];
static char inbuf[4096];
static size_t inlen;
static char outbuf[256];

static sigjmp_buf touch_env;
static volatile sig_atomic_t touching;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)si; (void)uc;
	if (touching)
		siglongjmp(touch_env, 1);
	_exit(99);
}

static void reply(const char *s)
{
	size_t n = strlen(s), off = 0;
	while (off < n) {
		ssize_t w = write(out_fd, s + off, n - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			_exit(98);
		}
		off += (size_t)w;
	}
}

static void reply_long(const char *word, long v)
{
	snprintf(outbuf, sizeof(outbuf), "%s %ld\n", word, v);
	reply(outbuf);
}

static void reply_ulong(const char *word, unsigned long v)
{
	snprintf(outbuf, sizeof(outbuf), "%s %lu\n", word, v);
	reply(outbuf);
}

static void open_fifos(const char *name)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s.in", dir, name);
	in_fd = open(path, O_RDONLY);
	snprintf(path, sizeof(path), "%s/%s.out", dir, name);
	out_fd = open(path, O_WRONLY);
	if (in_fd < 0 || out_fd < 0)
		_exit(97);
	inlen = 0;
}

/* Read one line into line (NUL-terminated); returns 0 on EOF. */
static int read_line(char *line, size_t cap)
{
	for (;;) {
		char *nl = memchr(inbuf, '\n', inlen);
		if (nl) {
			size_t n = (size_t)(nl - inbuf);
			if (n >= cap)
				n = cap - 1;
			memcpy(line, inbuf, n);
			line[n] = 0;
			inlen -= (size_t)(nl - inbuf) + 1;
			memmove(inbuf, nl + 1, inlen);
			return 1;
		}
		ssize_t r = read(in_fd, inbuf + inlen, sizeof(inbuf) - inlen);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		inlen += (size_t)r;
	}
}

static unsigned long num(char **p)
{
	return strtoul(strsep(p, " "), NULL, 0);
}

static void do_touch(int write_access, unsigned long addr, unsigned long n)
{
	static volatile unsigned long done;
	done = 0;
	if (sigsetjmp(touch_env, 1)) {
		touching = 0;
		snprintf(outbuf, sizeof(outbuf), "err %d %lu\n", EFAULT, done);
		reply(outbuf);
		return;
	}
	touching = 1;
	for (; done < n; done++) {
		volatile char *p = (volatile char *)(addr + done * PAGE);
		if (write_access)
			*p = (char)(done + 1);
		else
			(void)*p;
	}
	touching = 0;
	reply("ok\n");
}

static void sysret(long r)
{
	if (r == -1)
		reply_long("err", errno);
	else
		reply_ulong("ok", (unsigned long)r);
}

int main(int argc, char **argv)
{
	static char line[1024];
	struct sigaction sa;

	if (argc != 3)
		return 2;
	snprintf(dir, sizeof(dir), "%s", argv[1]);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);

	/* Pre-fault a good part of the stack so that signal frames and deep
	 * calls never extend it during a scenario. */
	{
		volatile char pad[128 * 1024];
		for (size_t i = 0; i < sizeof(pad); i += PAGE)
			pad[i] = 1;
	}

	open_fifos(argv[2]);
	reply("ready\n");

	while (read_line(line, sizeof(line))) {
		char *p = line;
		char *cmd = strsep(&p, " ");
		if (!strcmp(cmd, "mmap")) {
			unsigned long a = num(&p), l = num(&p), prot = num(&p),
				      fl = num(&p);
			long fd = (long)num(&p);
			unsigned long off = num(&p);
			sysret(syscall(SYS_mmap, a, l, prot, fl, fd, off));
		} else if (!strcmp(cmd, "munmap")) {
			unsigned long a = num(&p), l = num(&p);
			long r = syscall(SYS_munmap, a, l);
			sysret(r);
		} else if (!strcmp(cmd, "mprotect")) {
			unsigned long a = num(&p), l = num(&p), prot = num(&p);
			sysret(syscall(SYS_mprotect, a, l, prot));
		} else if (!strcmp(cmd, "madvise")) {
			unsigned long a = num(&p), l = num(&p), adv = num(&p);
			sysret(syscall(SYS_madvise, a, l, adv));
		} else if (!strcmp(cmd, "mremap")) {
			unsigned long a = num(&p), ol = num(&p), nl = num(&p),
				      fl = num(&p), na = num(&p);
			sysret(syscall(SYS_mremap, a, ol, nl, fl, na));
		} else if (!strcmp(cmd, "touch")) {
			char *mode = strsep(&p, " ");
			unsigned long a = num(&p), n = num(&p);
			do_touch(mode[0] == 'w', a, n);
		} else if (!strcmp(cmd, "fork")) {
			char *name = strsep(&p, " ");
			pid_t pid = fork();
			if (pid == 0) {
				close(in_fd);
				close(out_fd);
				open_fifos(name);
				reply("ready\n");
				continue;
			}
			if (pid < 0)
				reply_long("err", errno);
			else
				reply_long("ok", pid);
		} else if (!strcmp(cmd, "exit")) {
			_exit(0);
		} else if (!strcmp(cmd, "ping")) {
			reply("ok\n");
		} else {
			reply("err 22\n");
		}
	}
	_exit(0);
}
