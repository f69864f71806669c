/*
 * ctlrun.h - running control socket commands: the JSON lines of a reply.
 */
#ifndef CTLRUN_H
#define CTLRUN_H

#include "buf.h"
#include "ctlcmd.h"

/* Runs cmd (hex: its bytes) and appends the reply, empty line included. */
void	 ctl_run(const struct ctlcmd *cmd, const uint8_t *hex, struct buf *r)
	    __attribute__((nonnull));
/* Appends {"error":msg} and the empty line. */
void	 ctl_error(struct buf *r, const char *msg) __attribute__((nonnull));
/* The show stats lines, without the empty line. */
void	 ctl_stats(struct buf *r) __attribute__((nonnull));

#endif /* CTLRUN_H */
