/*
 * poller_epoll.c - the epoll backend of the loop, the default on Linux: the
 * cost of a wake-up follows the descriptors that are ready, not the ones
 * watched, so 10,000 idle connections cost nothing per event.
 *
 * Level-triggered, as poll() is, so callers keep poll()'s contract.  Each
 * watched descriptor has a slot in one table; a slot number stays the same
 * while it is watched (*slotp is set once).  An event carries its slot and
 * the slot's generation: a slot freed during a dispatch, even if a new
 * descriptor takes it in the same turn, never receives the old one's
 * events.  A descriptor that waits for nothing is taken out of the epoll
 * set (epoll reports hang-ups and errors whatever is asked: parked, it
 * must not be there, or it would spin).
 *
 * epoll refuses regular files and some character devices (EPERM); poll()
 * calls them always ready, and so does this backend: such a descriptor is
 * dispatched on every turn while it waits for something.
 */
#ifndef TPROXY_POLL

#include <sys/epoll.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "loop.h"
#include "poller.h"

#define MAX_EVENTS	512		/* dispatched per wake-up */

const char poller_name[] = "epoll";

struct handler {
	int		 fd;
	io_cb		 cb;		/* NULL: a free slot */
	void		*arg;
	uint32_t	 gen;
	short		 want;		/* POLLIN | POLLOUT */
	unsigned	 in_set:1;	/* registered with epoll */
	unsigned	 always:1;	/* epoll refused it: always ready */
};

static int		 epfd = -1;
static struct handler	*hands;
static size_t		 nhands, caphands;
static int		*freeslots;	/* a stack of free slots */
static size_t		 nfree;
static size_t		 nalways;	/* slots with always set */

static uint32_t
to_epoll(short events)
{
	return (events & POLLIN ? EPOLLIN : 0) |
	    (events & POLLOUT ? EPOLLOUT : 0);
}

static short
from_epoll(uint32_t ev)
{
	return (short)((ev & EPOLLIN ? POLLIN : 0) |
	    (ev & EPOLLOUT ? POLLOUT : 0) | (ev & EPOLLERR ? POLLERR : 0) |
	    (ev & EPOLLHUP ? POLLHUP : 0));
}

/* Makes epoll's set say what h waits for; returns 0 or -1 (errno). */
static int
sync_set(struct handler *h, int slot)
{
	struct epoll_event ev = { 0 };
	int op;

	if (h->always)
		return 0;
	if (h->want == 0) {
		if (h->in_set)
			(void)epoll_ctl(epfd, EPOLL_CTL_DEL, h->fd, &ev);
		h->in_set = 0;
		return 0;
	}
	ev.events = to_epoll(h->want);
	ev.data.u64 = (uint64_t)h->gen << 32 | (uint32_t)slot;
	op = h->in_set ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(epfd, op, h->fd, &ev) == -1) {
		if (errno != EPERM)
			return -1;
		h->always = 1;		/* a regular file: always ready */
		nalways++;
		return 0;
	}
	h->in_set = 1;
	return 0;
}

/* Returns a free slot, or -1 when out of memory. */
static int
slot_get(void)
{
	if (nfree > 0)
		return freeslots[--nfree];
	if (nhands == caphands) {
		size_t ncap = caphands ? caphands * 2 : 64;
		struct handler *nh = realloc(hands, ncap * sizeof(*nh));
		int *nf;

		if (nh == NULL)
			return -1;
		hands = nh;
		if ((nf = realloc(freeslots, ncap * sizeof(*nf))) == NULL)
			return -1;
		freeslots = nf;
		caphands = ncap;
	}
	hands[nhands].gen = 0;
	return (int)nhands++;
}

int
loop_add(int fd, short events, io_cb cb, void *arg, int *slotp)
{
	struct handler *h;
	int slot;

	if (epfd == -1 && (epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		return -1;
	if ((slot = slot_get()) == -1)
		return -1;
	h = &hands[slot];
	h->fd = fd;
	h->cb = cb;
	h->arg = arg;
	h->gen++;
	h->want = events & (POLLIN | POLLOUT);
	h->in_set = 0;
	h->always = 0;
	if (sync_set(h, slot) == -1) {
		h->cb = NULL;
		freeslots[nfree++] = slot;
		return -1;
	}
	*slotp = slot;
	return slot;
}

/* Sets what a descriptor waits for; nothing parks it. */
void
loop_set(int slot, short events)
{
	struct handler *h;

	if (slot < 0 || (size_t)slot >= nhands || hands[slot].cb == NULL)
		return;
	h = &hands[slot];
	events &= POLLIN | POLLOUT;
	if (events == h->want)
		return;
	h->want = events;
	(void)sync_set(h, slot);
}

static void
del(int *slotp, int closing)
{
	int slot = *slotp;
	struct handler *h;

	*slotp = -1;
	if (slot < 0 || (size_t)slot >= nhands || hands[slot].cb == NULL)
		return;
	h = &hands[slot];
	h->want = 0;
	if (closing)
		h->in_set = 0;		/* close() takes it out of the set */
	(void)sync_set(h, slot);
	if (h->always)
		nalways--;
	h->always = 0;
	h->cb = NULL;
	h->gen++;			/* its pending events are stale now */
	freeslots[nfree++] = slot;
}

void
loop_del(int *slotp)
{
	del(slotp, 0);
}

void
loop_del_closing(int *slotp)
{
	del(slotp, 1);
}

/* Dispatches the descriptors epoll cannot watch (always ready). */
static void
dispatch_always(void)
{
	size_t i, n = nhands;

	for (i = 0; i < n && nalways > 0; i++) {
		struct handler *h = &hands[i];

		if (h->cb != NULL && h->always && h->want != 0)
			h->cb(h->arg, h->want);
	}
}

int
poller_wait(int ms, const sigset_t *sigmask)
{
	struct epoll_event evs[MAX_EVENTS];
	int i, n;

	if (epfd == -1 && (epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		return -1;
	if (nalways > 0)
		ms = 0;
	n = epoll_pwait(epfd, evs, MAX_EVENTS, ms, sigmask);
	if (n < 0)
		return -1;
	for (i = 0; i < n; i++) {
		uint32_t slot = (uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		struct handler *h;

		if (slot >= nhands)
			continue;
		h = &hands[slot];
		if (h->cb == NULL || h->gen != gen)
			continue;
		h->cb(h->arg, from_epoll(evs[i].events));
	}
	if (nalways > 0)
		dispatch_always();
	return 0;
}

void
poller_free(void)
{
	if (epfd != -1)
		close(epfd);
	epfd = -1;
	free(hands);
	free(freeslots);
	hands = NULL;
	freeslots = NULL;
	nhands = caphands = nfree = nalways = 0;
}

#endif /* TPROXY_POLL */
