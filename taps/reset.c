/*
 * taps/reset.c - "reset[:MS]": reset both sides (RST) as soon as the
 * connection starts, or MS milliseconds after it started.  On UDP the
 * session simply ends.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../tap.h"

#define RESET_MAX	86400000	/* a day, in ms */

static int
reset_parse(struct tap *t, const char *arg, char *err, size_t len)
{
	long long ms = 0;
	uint64_t v;

	if (arg != NULL && ms_parse("reset", "MS", arg, RESET_MAX, &v, err,
	    len) == -1)
		return -1;
	if (arg != NULL)
		ms = (long long)v;
	if ((t->conf = malloc(sizeof(uint64_t))) == NULL)
		return -1;
	*(uint64_t *)t->conf = (uint64_t)ms;
	return 0;
}

static enum verdict
reset_open(const struct tap *t, struct tapctx *x)
{
	uint64_t ms = *(const uint64_t *)t->conf;

	if (ms == 0)
		return V_RESET;
	x->wake = x->flow->start_ms + ms;
	return V_PASS;
}

static enum verdict
reset_tick(const struct tap *t, struct tapctx *x, struct chunk *out)
{
	(void)t;
	(void)x;
	(void)out;
	return V_RESET;
}

const struct tap_ops tap_reset = {
	.name = "reset",
	.usage = "reset[:MS]",
	.takes_arg = 1,
	.parse = reset_parse,
	.open = reset_open,
	.tick = reset_tick,
	.free = tap_conf_free,
};
