/*
 * taps/stall.c - "stall[:MS]": pass nothing in the direction it applies
 * to; MS milliseconds after the connection began, close it (toxiproxy's
 * timeout).  Without MS the connection stays open.  The stalled bytes are
 * held, so the sender is soon not read at all: a stalled link, with memory
 * bounded by the back-pressure.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../tap.h"

#define STALL_MAX	86400000	/* a day, in ms */
#define STALL_FOREVER	UINT64_MAX

static int
stall_parse(struct tap *t, const char *arg, char *err, size_t len)
{
	long long ms = -1;
	uint64_t v;

	if (arg != NULL && ms_parse("stall", "MS", arg, STALL_MAX, &v, err,
	    len) == -1)
		return -1;
	if (arg != NULL)
		ms = (long long)v;
	if ((t->conf = malloc(sizeof(uint64_t))) == NULL)
		return -1;
	*(uint64_t *)t->conf = ms < 0 ? STALL_FOREVER : (uint64_t)ms;
	return 0;
}

static enum verdict
stall_open(const struct tap *t, struct tapctx *x)
{
	uint64_t ms = *(const uint64_t *)t->conf;

	if (ms == 0)
		return V_CLOSE;
	if (ms != STALL_FOREVER)
		x->wake = x->flow->start_ms + ms;
	return V_PASS;
}

static enum verdict
stall_chunk(const struct tap *t, struct tapctx *x, struct chunk *ch)
{
	(void)t;
	(void)ch;
	x->due = DUE_NEVER;
	return V_HOLD;
}

static enum verdict
stall_tick(const struct tap *t, struct tapctx *x, struct chunk *out)
{
	(void)t;
	(void)x;
	(void)out;
	return V_CLOSE;
}

const struct tap_ops tap_stall = {
	.name = "stall",
	.usage = "stall[:MS]",
	.takes_arg = 1,
	.parse = stall_parse,
	.open = stall_open,
	.chunk = stall_chunk,
	.tick = stall_tick,
	.free = tap_conf_free,
};
