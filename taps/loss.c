/*
 * taps/loss.c - "loss:PERCENT[,seed=N]": UDP routes only; drop each
 * datagram with that probability.  The generator is per session and
 * direction, seeded with N (mixed with the direction), so the same seed
 * drops the same datagrams of a session; without seed= it is random.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../tap.h"

struct loss {
	unsigned	 pct;		/* 0..100 */
	int		 seeded;
	uint64_t	 seed;
};

static const char *const loss_keys[] = { "seed", NULL };

static int
loss_parse(struct tap *t, const char *arg, char *err, size_t len)
{
	struct loss *l = calloc(1, sizeof(*l));
	long long n;

	if (l == NULL)
		return -1;
	t->conf = l;
	if (num_parse(arg, 0, 100, &n) == -1) {
		snprintf(err, len, "loss: bad PERCENT '%s' (expected 0..100)",
		    arg);
		return -1;
	}
	l->pct = (unsigned)n;
	return 0;
}

static int
loss_key(struct tap *t, const char *k, const char *v, char *err, size_t len)
{
	struct loss *l = t->conf;
	long long n;

	if (strcmp(k, "seed") != 0)
		return 1;
	if (num_parse(v, 0, 0x7fffffffffffffffLL, &n) == -1) {
		snprintf(err, len, "loss: bad seed '%s' (expected a whole "
		    "number, 0 or more)", v);
		return -1;
	}
	l->seed = (uint64_t)n;
	l->seeded = 1;
	return 0;
}

/* splitmix64: a well-mixed sequence from any seed, zero included. */
static uint64_t
next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static enum verdict
loss_open(const struct tap *t, struct tapctx *x)
{
	const struct loss *l = t->conf;
	uint64_t *s = malloc(sizeof(*s));

	if (s != NULL) {
		*s = l->seed ^ ((uint64_t)x->dir << 32);
		if (!l->seeded && getrandom(s, sizeof(*s), 0) != sizeof(*s))
			*s = x->now ^ x->flow->id;
	}
	x->st = s;
	return V_PASS;
}

static enum verdict
loss_chunk(const struct tap *t, struct tapctx *x, struct chunk *ch)
{
	const struct loss *l = t->conf;

	(void)ch;
	if (x->st == NULL)
		return V_PASS;
	return next(x->st) % 100 < l->pct ? V_DROP : V_PASS;
}

const struct tap_ops tap_loss = {
	.name = "loss",
	.usage = "loss:PERCENT[,seed=N]",
	.takes_arg = 2,
	.udp_only = 1,
	.keys = loss_keys,
	.parse = loss_parse,
	.key = loss_key,
	.open = loss_open,
	.chunk = loss_chunk,
	.close = tap_state_free,
	.free = tap_conf_free,
};
