/*
 * taps/slice.c - "slice:N[,delay=MS]": pass chunks on in pieces of at most
 * N bytes (k, m), each piece a chunk of its own for the filters after it;
 * with delay=, MS milliseconds apart.  A datagram is never cut: on UDP only
 * delay= has an effect, spacing the datagrams.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"

#define SLICE_MAX	(1LL << 30)
#define DELAY_MAX	3600000

struct slice {
	size_t		 n;
	uint64_t	 delay;
};

static const char *const slice_keys[] = { "delay", NULL };

static int
slice_parse(struct tap *t, const char *arg, char *err, size_t len)
{
	struct slice *s = calloc(1, sizeof(*s));
	long long n;

	if (s == NULL)
		return -1;
	t->conf = s;
	if (size_parse(arg, SLICE_MAX, &n) == -1) {
		snprintf(err, len, "slice: bad N '%s' (expected bytes, "
		    "1..%lld, with k or m)", arg, SLICE_MAX);
		return -1;
	}
	s->n = (size_t)n;
	return 0;
}

static int
slice_key(struct tap *t, const char *k, const char *v, char *err, size_t len)
{
	struct slice *s = t->conf;

	if (strcmp(k, "delay") != 0)
		return 1;
	return ms_parse("slice", "delay", v, DELAY_MAX, &s->delay, err, len);
}

static enum verdict
slice_open(const struct tap *t, struct tapctx *x)
{
	(void)t;
	x->st = calloc(1, sizeof(uint64_t));	/* when the next piece may go */
	return V_PASS;
}

static enum verdict
slice_chunk(const struct tap *t, struct tapctx *x, struct chunk *ch)
{
	const struct slice *s = t->conf;

	if (x->st == NULL || (x->held == 0 && s->delay == 0 &&
	    (ch->n <= s->n || x->flow->udp)))
		return V_PASS;
	x->due = 0;
	return V_HOLD;
}

static size_t
slice_release(const struct tap *t, struct tapctx *x, const struct chunk *h)
{
	const struct slice *s = t->conf;
	uint64_t *next = x->st;

	if (s->delay > 0) {
		if (x->now < *next) {
			x->wake = *next;
			return 0;
		}
		*next = x->now + s->delay;
		x->wake = *next;
	}
	return h->n < s->n ? h->n : s->n;
}

const struct tap_ops tap_slice = {
	.name = "slice",
	.usage = "slice:N[,delay=MS]",
	.takes_arg = 2,
	.keys = slice_keys,
	.parse = slice_parse,
	.key = slice_key,
	.open = slice_open,
	.chunk = slice_chunk,
	.release = slice_release,
	.close = tap_state_free,
	.free = tap_conf_free,
};
