/*
 * taps/limit.c - "limit:N": let N bytes (k, m) through in each direction
 * it applies to, then end that direction gracefully: the receiver gets a
 * FIN after exactly N bytes, and what the sender sends afterwards is read
 * and discarded.  On UDP, datagrams pass while they fit whole; the rest
 * are dropped.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../tap.h"

#define LIMIT_MAX	(1LL << 50)

static int
limit_parse(struct tap *t, const char *arg, char *err, size_t len)
{
	long long n;

	if (size_parse(arg, LIMIT_MAX, &n) == -1) {
		snprintf(err, len, "limit: bad N '%s' (expected bytes, 1..%lld, "
		    "with k or m)", arg, LIMIT_MAX);
		return -1;
	}
	if ((t->conf = malloc(sizeof(uint64_t))) == NULL)
		return -1;
	*(uint64_t *)t->conf = (uint64_t)n;
	return 0;
}

/* The chain's offset at this filter is the count of bytes that reached it. */
static enum verdict
limit_chunk(const struct tap *t, struct tapctx *x, struct chunk *ch)
{
	uint64_t limit = *(const uint64_t *)t->conf, left;
	uint64_t *passed = x->st;

	if (passed == NULL)
		return V_DROP;
	if (*passed >= limit)
		return V_DROP;		/* the direction has ended */
	left = limit - *passed;
	if (ch->n < left) {
		*passed += ch->n;
		return V_PASS;
	}
	if (x->flow->udp) {
		if (ch->n > left)
			return V_DROP;
		*passed = limit;
		return V_PASS;
	}
	ch->n = (size_t)left;
	*passed = limit;
	return V_SHUT;
}

static enum verdict
limit_open(const struct tap *t, struct tapctx *x)
{
	(void)t;
	x->st = calloc(1, sizeof(uint64_t));
	return V_PASS;
}

const struct tap_ops tap_limit = {
	.name = "limit",
	.usage = "limit:N",
	.takes_arg = 2,
	.parse = limit_parse,
	.open = limit_open,
	.chunk = limit_chunk,
	.close = tap_state_free,
	.free = tap_conf_free,
};
