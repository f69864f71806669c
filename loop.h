/*
 * loop.h - the one readiness loop: watched descriptors and timers.
 * Everything in tproxy that waits, waits here.
 */
#ifndef LOOP_H
#define LOOP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*io_cb)(void *arg, int revents);

struct timer;
typedef void (*timer_cb)(struct timer *t);
struct timer {
	uint64_t	 when;		/* ms, monotonic */
	size_t		 idx;		/* position in the heap; 0 = unarmed */
	timer_cb	 cb;
	void		*arg;
};

uint64_t now_ms(void);
/* Watches fd; returns the slot (also stored in *slotp), or -1 (memory). */
int	 loop_add(int fd, short events, io_cb cb, void *arg, int *slotp)
	    __attribute__((warn_unused_result));
void	 loop_set(int slot, short events);
void	 loop_del(int *slotp) __attribute__((nonnull));
/*
 * loop_del() for a descriptor the caller closes next, opened close-on-exec
 * and never shared: the close takes it out of epoll's set, so this costs no
 * system call.
 */
void	 loop_del_closing(int *slotp) __attribute__((nonnull));
void	 timer_arm(struct timer *t, uint64_t ms_from_now)
	    __attribute__((nonnull));
void	 timer_stop(struct timer *t) __attribute__((nonnull));
int	 timer_armed(const struct timer *t) __attribute__((nonnull));
int	 loop_run_once(const sigset_t *sigmask);
void	 loop_free(void);

#endif /* LOOP_H */
