/*
 * taps/throttle.c - "throttle:RATE": at most RATE bytes a second in each
 * direction it applies to (k = KiB, m = MiB).  A token bucket: credit
 * grows with time up to a tenth of a second's worth (at least 16 KiB), a
 * chunk goes at once while there is credit for it, and otherwise the chain
 * holds it and lets it go as credit comes.  A datagram goes whole.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../tap.h"

#define RATE_MAX	(1LL << 40)
#define BURST_MIN	16384.0

struct bucket {
	double		 credit;	/* bytes that may go now */
	uint64_t	 last;		/* ms of the last refill */
};

static double
burst(uint64_t rate)
{
	return (double)rate / 10 > BURST_MIN ? (double)rate / 10 : BURST_MIN;
}

static void
refill(const struct tap *t, struct bucket *b, uint64_t now)
{
	uint64_t rate = *(const uint64_t *)t->conf;

	b->credit += (double)rate * (double)(now - b->last) / 1000;
	if (b->credit > burst(rate))
		b->credit = burst(rate);
	b->last = now;
}

static int
throttle_parse(struct tap *t, const char *arg, char *err, size_t len)
{
	long long rate;

	if (size_parse(arg, RATE_MAX, &rate) == -1) {
		snprintf(err, len, "throttle: bad RATE '%s' (expected bytes a "
		    "second, 1..1099511627776, with k or m for KiB or MiB)",
		    arg);
		return -1;
	}
	if ((t->conf = malloc(sizeof(uint64_t))) == NULL)
		return -1;
	*(uint64_t *)t->conf = (uint64_t)rate;
	return 0;
}

static enum verdict
throttle_open(const struct tap *t, struct tapctx *x)
{
	struct bucket *b = calloc(1, sizeof(*b));

	if (b != NULL) {
		b->credit = burst(*(const uint64_t *)t->conf);
		b->last = x->now;
	}
	x->st = b;
	return V_PASS;
}

static enum verdict
throttle_chunk(const struct tap *t, struct tapctx *x, struct chunk *ch)
{
	struct bucket *b = x->st;

	if (b == NULL)
		return V_PASS;		/* no memory for state */
	if (x->held == 0) {
		refill(t, b, x->now);
		if (b->credit >= (double)ch->n) {
			b->credit -= (double)ch->n;
			return V_PASS;
		}
	}
	x->due = 0;
	return V_HOLD;
}

/* How much of the oldest held chunk the credit lets go now. */
static size_t
throttle_release(const struct tap *t, struct tapctx *x, const struct chunk *h)
{
	uint64_t rate = *(const uint64_t *)t->conf;
	struct bucket *b = x->st;
	double want, n;

	refill(t, b, x->now);
	/* a datagram whole; a stream in pieces worth waking up for */
	want = (double)h->n;
	if (!x->flow->udp && want > burst(rate) / 4)
		want = burst(rate) / 4;
	if (x->flow->udp && want > burst(rate))
		want = burst(rate);
	if (b->credit >= want) {
		n = x->flow->udp ? (double)h->n : b->credit < (double)h->n ?
		    b->credit : (double)h->n;
		b->credit -= (size_t)n;
		return (size_t)n;
	}
	x->wake = x->now + 1 + (uint64_t)((want - b->credit) * 1000 /
	    (double)rate);
	return 0;
}

const struct tap_ops tap_throttle = {
	.name = "throttle",
	.usage = "throttle:RATE",
	.takes_arg = 2,
	.parse = throttle_parse,
	.open = throttle_open,
	.chunk = throttle_chunk,
	.release = throttle_release,
	.close = tap_state_free,
	.free = tap_conf_free,
};
