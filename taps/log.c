/*
 * taps/log.c - "log": one line per chunk on standard output: time,
 * connection id, direction, endpoints and byte count.  With --json, a data
 * event instead.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../tproxy.h"

static void *
log_open(struct tap *t, struct conn *c, enum dir d)
{
	(void)t;
	(void)c;
	(void)d;
	return calloc(1, sizeof(uint64_t));	/* stream offset */
}

static enum verdict
log_chunk(struct tap *t, struct tapctx *x, struct chunk *ch)
{
	uint64_t *off = x->st, o = off ? *off : 0;
	char ts[40], from[ADDRSTR], to[ADDRSTR];

	(void)t;
	if (off)
		*off += ch->n;
	if (opt_json) {
		ev_data(x->conn, x->dir, ch->n, o, NULL);
		return V_PASS;
	}
	out_time(ts, sizeof(ts), 0);
	conn_endpoints(x->conn, x->dir, from, to, sizeof(from));
	out_printf("%s #%llu %s %s > %s %zu bytes\n", ts,
	    (unsigned long long)x->conn->id, x->dir == C2S ? "c2s" : "s2c",
	    from, to, ch->n);
	return V_PASS;
}

static void
log_close(struct tap *t, void *st)
{
	(void)t;
	free(st);
}

const struct tap_ops tap_log = {
	.name = "log",
	.takes_arg = 0,
	.open = log_open,
	.chunk = log_chunk,
	.close = log_close,
};
