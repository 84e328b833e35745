/*
 * rmaplab: the C runtime of the scenario operations' encodings.
 *
 * Pasted by rmaplab into both the live-kernel worker (worker.c) and the
 * programs of 'rmaplab export-c', followed by do_op(), which rmaplab
 * generates from each operation's C encoding (rmaplab.scenario.ops).  The
 * including program defines PAGE and FD(i) (the descriptor of the
 * scenario's i-th file) and includes <errno.h>, <setjmp.h>, <signal.h>,
 * <sys/syscall.h> and <unistd.h>.
 */
static sigjmp_buf touch_env;
static volatile sig_atomic_t touching;

static void on_fault(int sig)
{
	(void)sig;
	if (touching)
		siglongjmp(touch_env, 1);
	_exit(99);
}

/* SIGSEGV/SIGBUS during touch() end the touch with -EFAULT. */
static void install_fault_handler(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

/* Touch one byte per page; -EFAULT at the first page that faults. */
static long touch(unsigned long addr, unsigned long n, int write_access)
{
	static volatile unsigned long done;
	done = 0;
	if (sigsetjmp(touch_env, 1)) {
		touching = 0;
		return -EFAULT;
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
	return 0;
}

/* A raw system call's result, or -errno. */
static long sys(long r)
{
	return r == -1 ? -errno : r;
}

/* Grow a file to at least size bytes (a scenario's mmap of a file does). */
static int grow(long fd, unsigned long size)
{
	off_t cur = lseek((int)fd, 0, SEEK_END);
	if (cur < 0)
		return -1;
	if ((unsigned long)cur >= size)
		return 0;
	return ftruncate((int)fd, (off_t)size);
}
