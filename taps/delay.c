/*
 * taps/delay.c - "delay:MS[,jitter=MS]": hold each chunk MS milliseconds,
 * plus a random 0..jitter.  A stream keeps its order (the chain releases a
 * chunk only after the one before it); datagrams with jitter may overtake
 * each other, as on a real network.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../tap.h"

#define DELAY_MAX	3600000		/* an hour, in ms */

struct delay {
	uint64_t	 ms;
	uint64_t	 jitter;
};

static const char *const delay_keys[] = { "jitter", NULL };

static int
delay_parse(struct tap *t, const char *arg, char *err, size_t len)
{
	struct delay *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return -1;
	t->conf = d;
	return ms_parse("delay", "MS", arg, DELAY_MAX, &d->ms, err, len);
}

static int
delay_key(struct tap *t, const char *k, const char *v, char *err, size_t len)
{
	struct delay *d = t->conf;

	if (strcmp(k, "jitter") != 0)
		return 1;
	return ms_parse("delay", "jitter", v, DELAY_MAX, &d->jitter, err,
	    len);
}

/* A random number below n (n > 0); quality is not the point here. */
static uint64_t
jitter_draw(uint64_t n)
{
	static uint64_t s;

	if (s == 0 && getrandom(&s, sizeof(s), 0) != sizeof(s))
		s = 0x9e3779b97f4a7c15ull;
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return s % n;
}

static enum verdict
delay_chunk(const struct tap *t, struct tapctx *x, struct chunk *ch)
{
	const struct delay *d = t->conf;

	(void)ch;
	if (d->ms == 0 && d->jitter == 0)
		return V_PASS;
	x->due = x->now + d->ms + (d->jitter ? jitter_draw(d->jitter + 1) : 0);
	return V_HOLD;
}

const struct tap_ops tap_delay = {
	.name = "delay",
	.usage = "delay:MS[,jitter=MS]",
	.takes_arg = 2,
	.keys = delay_keys,
	.parse = delay_parse,
	.key = delay_key,
	.chunk = delay_chunk,
	.free = tap_conf_free,
};
