/*
 * loop.c - the one readiness loop: the timers (a binary heap) and one turn
 * of the loop.  Watching descriptors is the backend's (poller.h): epoll on
 * Linux, poll() when built with `make POLLER=poll`; both give the same
 * interface and the same guarantees.  Everything that waits in tproxy
 * waits here.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loop.h"
#include "poller.h"

static struct timer	**heap;		/* 1-based binary min-heap */
static size_t		 nheap, capheap;

uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ timers */

static void
heap_swap(size_t a, size_t b)
{
	struct timer *t = heap[a];

	heap[a] = heap[b];
	heap[b] = t;
	heap[a]->idx = a;
	heap[b]->idx = b;
}

static void
heap_up(size_t i)
{
	while (i > 1 && heap[i / 2]->when > heap[i]->when) {
		heap_swap(i, i / 2);
		i /= 2;
	}
}

static void
heap_down(size_t i)
{
	for (;;) {
		size_t l = 2 * i, m = i;

		if (l <= nheap && heap[l]->when < heap[m]->when)
			m = l;
		if (l + 1 <= nheap && heap[l + 1]->when < heap[m]->when)
			m = l + 1;
		if (m == i)
			return;
		heap_swap(i, m);
		i = m;
	}
}

void
timer_stop(struct timer *t)
{
	size_t i = t->idx;

	if (i == 0)
		return;
	heap_swap(i, nheap);
	nheap--;
	t->idx = 0;
	if (i <= nheap) {
		heap_up(i);
		heap_down(i);
	}
}

int
timer_armed(const struct timer *t)
{
	return t->idx != 0;
}

/* A timer that cannot be armed (out of memory) fires on the next turn. */
void
timer_arm(struct timer *t, uint64_t ms_from_now)
{
	timer_stop(t);
	t->when = now_ms() + ms_from_now;
	if (nheap + 1 >= capheap) {
		size_t ncap = capheap ? capheap * 2 : 64;
		struct timer **nh = realloc(heap, ncap * sizeof(*nh));

		if (nh == NULL)
			return;
		heap = nh;
		capheap = ncap;
	}
	heap[++nheap] = t;
	t->idx = nheap;
	heap_up(nheap);
}

static int
timers_timeout(void)
{
	uint64_t now;

	if (nheap == 0)
		return -1;
	now = now_ms();
	if (heap[1]->when <= now)
		return 0;
	return heap[1]->when - now > 60000 ? 60000 : (int)(heap[1]->when - now);
}

static void
timers_fire(void)
{
	uint64_t now = now_ms();

	while (nheap > 0 && heap[1]->when <= now) {
		struct timer *t = heap[1];

		timer_stop(t);
		t->cb(t);
	}
}

/*
 * Waits for one round of events and dispatches them, then fires the timers
 * that are due.  Returns 0, or -1 with errno set when the wait fails
 * (EINTR when a signal arrived).
 */
int
loop_run_once(const sigset_t *sigmask)
{
	if (poller_wait(timers_timeout(), sigmask) == -1)
		return -1;
	timers_fire();
	return 0;
}

void
loop_free(void)
{
	poller_free();
	free(heap);
	heap = NULL;
	nheap = capheap = 0;
}
