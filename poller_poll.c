/*
 * poller_poll.c - the poll() backend of the loop (`make POLLER=poll`): one
 * pollfd array, scanned on every wake-up (O(n) per event, fine for a few
 * hundred descriptors; poller_epoll.c is the default on Linux).
 *
 * Removing a descriptor during dispatch only marks it (no callback, fd -1,
 * which poll() ignores); the array is compacted before the next poll(), and
 * each owner's slot number is updated through the pointer it gave to
 * loop_add().
 */
#ifdef TPROXY_POLL

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loop.h"
#include "poller.h"

const char poller_name[] = "poll";

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
	pfds[nfds].fd = events ? fd : -1;	/* parked until it waits */
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

/* poll() keeps no set in the kernel: the same as loop_del(). */
void
loop_del_closing(int *slotp)
{
	loop_del(slotp);
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

int
poller_wait(int ms, const sigset_t *sigmask)
{
	struct timespec ts, *tsp = NULL;
	size_t i, n;
	int rc;

	if (dirty)
		loop_compact();
	if (ms >= 0) {
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
	return 0;
}

void
poller_free(void)
{
	free(pfds);
	free(hands);
	pfds = NULL;
	hands = NULL;
	nfds = capfds = 0;
}

#endif /* TPROXY_POLL */
