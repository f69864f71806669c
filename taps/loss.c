/*
 * taps/loss.c - "loss:PERCENT[,seed=N]": UDP routes only; drop each
 * datagram with that probability (0 to 100, decimals allowed).  The generator is per session and
 * direction, seeded with N (mixed with the direction), so the same seed
 * drops the same datagrams of a session; without seed= it is random.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../tap.h"

struct loss {
	uint64_t	 cut;		/* drop when a draw is below this */
	int		 all;		/* 100 %: drop every datagram */
	int		 seeded;
	uint64_t	 seed;
};

static const char *const loss_keys[] = { "seed", NULL };

static int
loss_parse(struct tap *t, const char *arg, char *err, size_t len)
{
	struct loss *l = calloc(1, sizeof(*l));
	char *end;
	double pct;

	if (l == NULL)
		return -1;
	t->conf = l;
	errno = 0;
	pct = strtod(arg, &end);
	if (!isdigit((unsigned char)arg[0]) || *end != '\0' || errno != 0 ||
	    !(pct >= 0 && pct <= 100)) {
		snprintf(err, len, "loss: bad PERCENT '%s' (expected 0..100, "
		    "decimals allowed)", arg);
		return -1;
	}
	l->all = pct == 100;
	l->cut = (uint64_t)(pct / 100 * 18446744073709551616.0);
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
	return l->all || next(x->st) < l->cut ? V_DROP : V_PASS;
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
