/* The small program behind tests/data/traces/mmfork.trace.gz (see README there).
 * Build: cc -O2 -pthread -o mmfork mmfork.c */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096
static volatile int stop;

static void *writer(void *arg)
{
	char *p = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	(void)arg;
	for (int i = 0; i < 4; i++)
		p[i * PG] = 1;
	return p;
}

static void *sleeper(void *arg)
{
	(void)arg;
	while (!stop)
		pause();
	return NULL;
}

int main(void)
{
	char *a = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < 16; i++)
		a[i * PG] = 1;                                   /* 16 write faults */
	mprotect(a + 4 * PG, 4 * PG, PROT_READ);                 /* split into 3 VMAs */
	char *pop = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0); /* no fault events */
	pthread_t t;
	pthread_create(&t, NULL, writer, NULL);                 /* a thread: CLONE_VM|CLONE_THREAD */
	pthread_join(t, NULL);
	pid_t c = fork();
	if (c == 0) {
		a[0] = 2;                                        /* COW in the child */
		a[12 * PG] = 2;
		munmap(a + 8 * PG, 4 * PG);
		_exit(0);
	}
	waitpid(c, NULL, 0);
	a = mremap(a + 8 * PG, 8 * PG, 16 * PG, MREMAP_MAYMOVE); /* moves (or grows) */
	madvise(a, 2 * PG, MADV_DONTNEED);
	pop[0] = 3;
	pthread_create(&t, NULL, sleeper, NULL);                /* still running at exit_group */
	exit(0);
}
