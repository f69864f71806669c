/*
 * control.h - the control socket (--control=PATH): a Unix stream socket
 * that takes one command per line and answers in JSON lines.
 */
#ifndef CONTROL_H
#define CONTROL_H

#include <sys/types.h>

/*
 * Listens on path (mode 0600, owned by uid:gid unless uid is -1): a stale
 * socket file is replaced; any other file, or a live socket, is an error.
 * Exits 1 on a failure.
 */
void	 control_open(const char *path, uid_t uid, gid_t gid)
	    __attribute__((nonnull));
/* Closes every control connection and removes the socket file. */
void	 control_close(void);
/* SIGUSR1: the show stats lines on standard error. */
void	 control_stats_stderr(void);

#endif /* CONTROL_H */
