/*
 * taps/redirect.c - "redirect:HOST:PORT": send the connection to another
 * upstream.  Without match= the decision is made when the client connects
 * (on the connection keys: dport=, src=, dst=, sni=); with match=REGEX the
 * upstream connect waits for the client's first bytes and redirects when
 * they match.  Client side only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"

struct redirect {
	struct addr	 to;
	void		*match;
};

static const char *const redirect_keys[] = { "match", NULL };

static int
redirect_parse(struct tap *t, const char *arg, char *err, size_t len)
{
	struct redirect *r = calloc(1, sizeof(*r));
	char spec[600], e[ERRLEN];

	if (r == NULL)
		return -1;
	t->conf = r;
	if (strchr(arg, ',') != NULL || strlen(arg) > 512) {
		snprintf(err, len, "redirect: expected HOST:PORT, got '%s'",
		    arg);
		return -1;
	}
	snprintf(spec, sizeof(spec), "tcp:%s", arg);
	if (addr_parse(spec, 0, &r->to, e, sizeof(e)) == -1) {
		snprintf(err, len, "redirect: %s", e);
		return -1;
	}
	return 0;
}

static int
redirect_key(struct tap *t, const char *k, const char *v, char *err,
    size_t len)
{
	struct redirect *r = t->conf;

	if (strcmp(k, "match") != 0)
		return 1;
	re_free(r->match);
	r->match = re_compile(v, 0, err, len);
	if (r->match == NULL)
		return -1;
	t->first_bytes = 1;
	return 0;
}

static int
redirect_check(struct tap *t, char *err, size_t len)
{
	if (!(t->dirs & DIR_BIT(C2S))) {
		snprintf(err, len, "redirect: works on the client side only "
		    "(dir=c2s)");
		return -1;
	}
	t->dirs = DIR_BIT(C2S);
	return 0;
}

/* Without match=, the connection goes elsewhere as soon as it opens. */
static enum verdict
redirect_open(const struct tap *t, struct tapctx *x)
{
	struct redirect *r = t->conf;

	if (r->match != NULL)
		return V_PASS;
	x->to = &r->to;
	return V_REDIRECT;
}

/* With match=, the client's first bytes decide (the connection ignores a
 * redirect once its upstream is chosen). */
static enum verdict
redirect_chunk(const struct tap *t, struct tapctx *x, struct chunk *ch)
{
	struct redirect *r = t->conf;

	if (r->match == NULL || x->off > 0 ||
	    !re_search(r->match, ch->p, ch->n))
		return V_PASS;
	x->to = &r->to;
	return V_REDIRECT;
}

static void
redirect_free(struct tap *t)
{
	struct redirect *r = t->conf;

	if (r == NULL)
		return;
	re_free(r->match);
	free(r);
	t->conf = NULL;
}

const struct tap_ops tap_redirect = {
	.name = "redirect",
	.usage = "redirect:HOST:PORT[,match=REGEX]",
	.takes_arg = 2,
	.keys = redirect_keys,
	.parse = redirect_parse,
	.key = redirect_key,
	.check = redirect_check,
	.open = redirect_open,
	.chunk = redirect_chunk,
	.free = redirect_free,
};
