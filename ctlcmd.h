/*
 * ctlcmd.h - the control socket's command line parser (untrusted input):
 * one line in, one command out, no I/O.
 */
#ifndef CTLCMD_H
#define CTLCMD_H

#include <stddef.h>
#include <stdint.h>

#define CTL_LINE_MAX	(64 * 1024)	/* a longer line closes the client */

enum ctl_op {
	CTL_NONE = 0,			/* a blank line: no reply */
	CTL_HELP,
	CTL_SHOW_STATS,
	CTL_SHOW_CONNS,
	CTL_SHOW_FILTERS,
	CTL_SHOW_HELD,
	CTL_KILL_CONN,
	CTL_KILL_ALL,
	CTL_ADD_FILTER,
	CTL_DEL_FILTER,
	CTL_ENABLE_FILTER,
	CTL_DISABLE_FILTER,
	CTL_FORWARD,
	CTL_DROP,
	CTL_REPLACE,
	CTL_ANSWER,
};

struct ctlcmd {
	enum ctl_op	 op;
	uint64_t	 id;		/* kill conn, forward ... answer */
	long		 route;		/* from 1 */
	long		 index;		/* from 1 */
	const char	*spec;		/* add filter: in the line, not ended */
	size_t		 speclen;
	size_t		 hexlen;	/* replace, answer: bytes in hex[] */
};

/*
 * Parses line[0..n) (no newline).  Returns 0 with cmd filled (the bytes of
 * replace and answer in hex[0..cmd->hexlen), at most cap), or -1 with a
 * message in err.
 */
int	 ctl_parse(const char *line, size_t n, struct ctlcmd *cmd,
	    uint8_t *hex, size_t cap, char *err, size_t errlen)
	    __attribute__((nonnull));

#endif /* CTLCMD_H */
