/*
 * exec.h - the exec:COMMAND target: one /bin/sh -c COMMAND per connection,
 * in its own process group, its stdin and stdout a socket to tproxy.
 */
#ifndef EXEC_H
#define EXEC_H

#include <stddef.h>

struct conn;

/*
 * Starts cmd for c.  Returns tproxy's end of the socket (non-blocking,
 * connected), or -1 with the reason in err.
 */
int	 exec_spawn(struct conn *c, const char *cmd, char *err, size_t len)
	    __attribute__((nonnull));
/* c ends: its command's process group is killed (SIGTERM). */
void	 exec_conn_closed(struct conn *c) __attribute__((nonnull));
/* At exit: every command's group killed, every child reaped. */
void	 exec_end(void);

#endif /* EXEC_H */
