/*
 * loop.c - the one poll() loop: a table of watched descriptors and a heap of
 * timers.  Everything that waits in tproxy waits here.
 *
 * Descriptors live in one pollfd array.  Removing one during dispatch only
 * marks it (no callback, fd = -1, which poll ignores); the array is compacted before the next poll(), and
 * each owner's slot number is updated through the pointer it gave to
 * loop_add().
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loop.h"

struct handler {
	int		 fd;
	io_cb		 cb;
	void		*arg;
	int		*slotp;
};

static struct pollfd	*pfds;
static struct handler	*hands;
static size_t		 nfds, capfds;
static int		 dirty;

static struct timer	**heap;		/* 1-based binary min-heap */
static size_t		 nheap, capheap;

uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Returns the slot, or -1 when out of memory. */
int
loop_add(int fd, short events, io_cb cb, void *arg, int *slotp)
{
	if (nfds == capfds) {
		size_t ncap = capfds ? capfds * 2 : 64;
		struct pollfd *np = realloc(pfds, ncap * sizeof(*np));

		if (np == NULL)
			return -1;
		pfds = np;
		struct handler *nh = realloc(hands, ncap * sizeof(*nh));
		if (nh == NULL)
			return -1;
		hands = nh;
		capfds = ncap;
	}
	pfds[nfds].fd = fd;
	pfds[nfds].events = events;
	pfds[nfds].revents = 0;
	hands[nfds].fd = fd;
	hands[nfds].cb = cb;
	hands[nfds].arg = arg;
	hands[nfds].slotp = slotp;
	*slotp = (int)nfds;
	return (int)nfds++;
}

/*
 * Sets what a descriptor waits for.  With no events it is parked (a negative
 * fd, which poll() skips), so a hang-up nobody asked about cannot spin.
 */
void
loop_set(int slot, short events)
{
	if (slot < 0 || (size_t)slot >= nfds || hands[slot].cb == NULL)
		return;
	pfds[slot].events = events;
	pfds[slot].fd = events ? hands[slot].fd : -1;
}

void
loop_del(int *slotp)
{
	int slot = *slotp;

	if (slot >= 0 && (size_t)slot < nfds) {
		pfds[slot].fd = -1;
		pfds[slot].revents = 0;
		hands[slot].cb = NULL;
		hands[slot].slotp = NULL;
		dirty = 1;
	}
	*slotp = -1;
}

static void
loop_compact(void)
{
	size_t i, j;

	for (i = j = 0; i < nfds; i++) {
		if (hands[i].cb == NULL)
			continue;
		if (i != j) {
			pfds[j] = pfds[i];
			hands[j] = hands[i];
			*hands[j].slotp = (int)j;
		}
		j++;
	}
	nfds = j;
	dirty = 0;
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
 * Waits for one round of events and dispatches them.  Returns 0, or -1 with
 * errno set when poll() fails (EINTR when a signal arrived).
 */
int
loop_run_once(const sigset_t *sigmask)
{
	struct timespec ts, *tsp = NULL;
	int ms;

	size_t i, n;
	int rc;

	if (dirty)
		loop_compact();
	if ((ms = timers_timeout()) >= 0) {
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (long)(ms % 1000) * 1000000;
		tsp = &ts;
	}
	rc = ppoll(pfds, nfds, tsp, sigmask);
	if (rc < 0)
		return -1;
	n = nfds;
	for (i = 0; i < n && rc > 0; i++) {
		short re = pfds[i].revents;

		if (re == 0 || hands[i].cb == NULL)
			continue;
		rc--;
		pfds[i].revents = 0;
		hands[i].cb(hands[i].arg, re);
	}
	timers_fire();
	return 0;
}

void
loop_free(void)
{
	free(pfds);
	free(hands);
	free(heap);
	pfds = NULL;
	hands = NULL;
	heap = NULL;
	nfds = capfds = nheap = capheap = 0;
}
