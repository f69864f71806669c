/*
 * taps/log.c - "log": one line per chunk on standard output: time,
 * connection id, direction, endpoints and byte count.  With --json, a data
 * event instead.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../event.h"
#include "../opts.h"
#include "../out.h"
#include "../tap.h"

static enum verdict
log_chunk(const struct tap *t, struct tapctx *x, struct chunk *ch)
{
	char ts[40], from[ADDRSTR], to[ADDRSTR], sf[4 * ADDRSTR], st[4 * ADDRSTR];

	(void)t;
	if (opt.json) {
		ev_data(x->flow, x->dir, ch->n, x->off, NULL);
		return V_PASS;
	}
	out_time(ts, sizeof(ts), 0);
	flow_endpoints(x->flow, x->dir, from, to, sizeof(from));
	out_printf("%s #%llu %s %s > %s %zu bytes\n", ts,
	    (unsigned long long)x->flow->id, x->dir == C2S ? "c2s" : "s2c",
	    out_safe(from, sf, sizeof(sf)), out_safe(to, st, sizeof(st)),
	    ch->n);
	return V_PASS;
}

const struct tap_ops tap_log = {
	.name = "log",
	.usage = "log",
	.observes = 1,
	.chunk = log_chunk,
};
