/*
 * exec.h - the exec:COMMAND target: one /bin/sh -c COMMAND per connection,
 * in its own process group, its stdin and stdout a socket to tproxy.
 */
#ifndef EXEC_H
#define EXEC_H

#include <stddef.h>
#include <stdint.h>

/*
 * Starts cmd for a connection (owner: what names it to exec_closed(); id:
 * its number, for the lines about the command).  Returns tproxy's end of
 * the socket (non-blocking, connected), or -1 with the reason in err.
 */
int	 exec_spawn(const void *owner, uint64_t id, const char *cmd, char *err,
	    size_t len) __attribute__((nonnull));
/* owner's connection ends: its command's process group is killed (SIGTERM). */
void	 exec_closed(const void *owner) __attribute__((nonnull));
/* At exit: every command's group killed, every child reaped. */
void	 exec_end(void);

#endif /* EXEC_H */
