/*
 * poller.h - what loop.c asks of the backend that watches descriptors:
 * poller_epoll.c on Linux (the default), poller_poll.c with
 * `make POLLER=poll`.  Both implement loop_add(), loop_set() and loop_del()
 * of loop.h, and these two.
 */
#ifndef POLLER_H
#define POLLER_H

#include <signal.h>

/*
 * Waits up to ms milliseconds (-1: no limit) with sigmask in force, then
 * calls the callback of each descriptor that is ready.  Returns 0, or -1
 * with errno set (EINTR when a signal arrived).
 */
int	 poller_wait(int ms, const sigset_t *sigmask);
void	 poller_free(void);
/* The name of the backend, for messages. */
extern const char poller_name[];

#endif /* POLLER_H */
