/*
 * chain.c - the filter chain: parsing a filter spec into a tap, opening
 * per-connection state, and running chunks through the taps in order.
 *
 * Filter spec grammar:
 *   NAME[:ARG][,KEY=VALUE]...          e.g. answer:hi\r\n,match=^GET,dir=c2s
 *   sDREGEXDREPLACEMENTD[FLAGS][,KEY=VALUE]...   (D: any punctuation)
 * A comma followed by a known key name and '=' ends ARG (or a value); any
 * other comma belongs to it, so texts and regexes may hold commas.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tproxy.h"

static const struct tap_ops *const all_taps[] = {
	&tap_log, &tap_hexdump, &tap_replace, &tap_drop, &tap_answer,
	&tap_redirect, NULL,
};

static const char *const common_keys[] = {
	"dir", "src", "dst", "dport", "sni", NULL,
};

/* Filters of the contract that later work will bring. */
static const char *const later_taps[] = {
	"delay", "throttle", "slice", "limit", "reset", "pcap", NULL,
};

static pcre2_match_data *md;

/* ------------------------------------------------------------ regex */

/* Compiles a binary-safe regex (JIT when available); NULL + err on error. */
void *
re_compile(const char *pat, int caseless, char *err, size_t errlen)
{
	pcre2_code *re;
	int ec;
	PCRE2_SIZE eo;
	PCRE2_UCHAR msg[160];

	re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
	    caseless ? PCRE2_CASELESS : 0, &ec, &eo, NULL);
	if (re == NULL) {
		pcre2_get_error_message(ec, msg, sizeof(msg));
		snprintf(err, errlen, "bad regex '%s' at offset %zu: %s", pat,
		    (size_t)eo, (char *)msg);
		return NULL;
	}
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE |
	    PCRE2_JIT_PARTIAL_HARD);
	return re;
}

/* Returns 1 if the regex matches somewhere in p[0..n). */
int
re_search(void *re, const uint8_t *p, size_t n)
{
	if (md == NULL && (md = pcre2_match_data_create(32, NULL)) == NULL)
		return 0;
	return pcre2_match(re, p, n, 0, 0, md, NULL) >= 0;
}

void
re_free(void *re)
{
	pcre2_code_free(re);
}

/* ------------------------------------------------------------ parsing */

static int
in_keys(const char *k, size_t kl, const char *const *keys)
{
	if (keys == NULL)
		return 0;
	for (; *keys; keys++)
		if (strlen(*keys) == kl && strncmp(k, *keys, kl) == 0)
			return 1;
	return 0;
}

/* Returns a pointer to the next ",KEY=" with KEY known, or NULL. */
static const char *
next_key(const char *s, const struct tap_ops *ops)
{
	for (; (s = strchr(s, ',')) != NULL; s++) {
		const char *k = s + 1, *e = k;

		while (isalnum((unsigned char)*e) || *e == '-' || *e == '_')
			e++;
		if (*e == '=' && (in_keys(k, (size_t)(e - k), common_keys) ||
		    in_keys(k, (size_t)(e - k), ops->keys)))
			return s;
	}
	return NULL;
}

static int
common_key(struct tap *t, const char *k, const char *v, char *err,
    size_t errlen)
{
	long long n;

	if (strcmp(k, "dir") == 0) {
		if (strcasecmp(v, "c2s") == 0)
			t->dirs = DIR_BIT(C2S);
		else if (strcasecmp(v, "s2c") == 0)
			t->dirs = DIR_BIT(S2C);
		else if (strcasecmp(v, "both") == 0)
			t->dirs = DIR_BOTH;
		else {
			snprintf(err, errlen, "bad dir '%s' (expected c2s, "
			    "s2c or both)", v);
			return -1;
		}
	} else if (strcmp(k, "src") == 0 || strcmp(k, "dst") == 0) {
		if (cidr_parse(v, k[0] == 's' ? &t->src : &t->dst) == -1) {
			snprintf(err, errlen, "bad %s '%s' (expected an IPv4 "
			    "or IPv6 address with an optional /BITS)", k, v);
			return -1;
		}
	} else if (strcmp(k, "dport") == 0) {
		if (num_parse(v, 1, 65535, &n) == -1) {
			snprintf(err, errlen, "bad dport '%s' (expected "
			    "1..65535)", v);
			return -1;
		}
		t->dport = (int)n;
	} else if (strcmp(k, "sni") == 0) {
		re_free(t->sni_re);
		if ((t->sni_re = re_compile(v, 1, err, errlen)) == NULL)
			return -1;
	} else
		return 1;
	return 0;
}

/* Length of an s-expression "sDreDreplD" plus its flags, or 0 if malformed. */
static size_t
sexpr_len(const char *s)
{
	char d = s[1];
	size_t i = 2;
	int part;

	for (part = 0; part < 2; part++) {
		for (; s[i] && s[i] != d; i++)
			if (s[i] == '\\' && s[i + 1])
				i++;
		if (s[i] != d)
			return 0;
		i++;
	}
	while (s[i] && s[i] != ',')
		i++;
	return i;
}

static int
is_sexpr(const char *spec)
{
	return spec[0] == 's' && spec[1] != '\0' &&
	    !isalnum((unsigned char)spec[1]) && spec[1] != '\\' &&
	    spec[1] != '\n' && !isspace((unsigned char)spec[1]);
}

static const struct tap_ops *
tap_find(const char *name, size_t len)
{
	const struct tap_ops *const *o;

	for (o = all_taps; *o; o++)
		if (*o != &tap_replace &&	/* only as sDREDREPLD */
		    strlen((*o)->name) == len &&
		    strncasecmp((*o)->name, name, len) == 0)
			return *o;
	return NULL;
}

/*
 * Parses one filter spec into t.  Returns 0, or -1 with a message in err.
 */
int
tap_parse(const char *spec, struct tap *t, char *err, size_t errlen)
{
	char *arg = NULL, *kv = NULL;
	const char *rest, *p;
	size_t nl;
	int rc = -1;

	memset(t, 0, sizeof(*t));
	t->spec = spec;
	t->dirs = DIR_BOTH;
	t->dport = -1;

	if (is_sexpr(spec)) {
		t->ops = &tap_replace;
		nl = sexpr_len(spec);
		if (nl == 0) {
			snprintf(err, errlen, "unterminated s%cREGEX%c"
			    "REPLACEMENT%c[gi] expression", spec[1], spec[1],
			    spec[1]);
			return -1;
		}
		arg = strndup(spec, nl);
		rest = spec + nl;
	} else {
		nl = strcspn(spec, ":,");
		if ((t->ops = tap_find(spec, nl)) == NULL) {
			char name[64];

			snprintf(name, sizeof(name), "%.*s", (int)nl, spec);
			if (in_keys(name, strlen(name), later_taps))
				snprintf(err, errlen, "filter '%s' is not "
				    "supported yet", name);
			else
				snprintf(err, errlen, "unknown filter '%s' "
				    "(expected log, hexdump, s/RE/REPL/, "
				    "drop, answer:TEXT or redirect:HOST:PORT)",
				    name);
			return -1;
		}
		rest = spec + nl;
		if (*rest == ':') {
			rest++;
			p = next_key(rest - 1, t->ops);
			if (p == NULL)
				p = rest + strlen(rest);
			arg = strndup(rest, (size_t)(p - rest));
			rest = p;
		}
	}
	if (arg == NULL && t->ops->takes_arg == 2) {
		snprintf(err, errlen, "filter '%s' needs an argument",
		    t->ops->name);
		goto out;
	}
	if (arg != NULL && t->ops->takes_arg == 0) {
		snprintf(err, errlen, "filter '%s' takes no argument",
		    t->ops->name);
		goto out;
	}
	if (t->ops->parse && t->ops->parse(t, arg, err, errlen) == -1)
		goto out;

	/* the keys: rest is "" or ",KEY=VALUE..." */
	while (*rest) {
		const char *k = rest + 1, *eq = strchr(k, '=');
		int r;

		p = eq ? next_key(eq, t->ops) : NULL;
		if (p == NULL)
			p = k + strlen(k);
		free(kv);
		kv = strndup(k, (size_t)(p - k));
		if (kv == NULL || eq == NULL || eq > p ||
		    !(in_keys(k, (size_t)(eq - k), common_keys) ||
		    in_keys(k, (size_t)(eq - k), t->ops->keys))) {
			snprintf(err, errlen, "unknown key '%s' for filter "
			    "'%s' (expected dir=, src=, dst=, dport=, sni=%s)",
			    kv ? kv : "", t->ops->name, t->ops->keys ?
			    " or its own keys" : "");
			goto out;
		}
		kv[eq - k] = '\0';
		r = common_key(t, kv, kv + (eq - k) + 1, err, errlen);
		if (r == 1 && t->ops->key)
			r = t->ops->key(t, kv, kv + (eq - k) + 1, err, errlen);
		if (r != 0)
			goto out;
		rest = p;
	}
	if (t->ops->check && t->ops->check(t, err, errlen) == -1)
		goto out;
	rc = 0;
out:
	free(arg);
	free(kv);
	return rc;
}

void
tap_free(struct tap *t)
{
	if (t->ops && t->ops->free)
		t->ops->free(t);
	re_free(t->sni_re);
	t->sni_re = NULL;
}

/*
 * Returns 1 if the tap applies to this connection (src=, dst=, dport=,
 * sni=).  None applies to TLS relayed untouched (passthrough).
 */
int
tap_conn_match(const struct tap *t, const struct conn *c)
{
	if (c->passthrough)
		return 0;
	if (!cidr_match(&t->src, &CLIENT(c)->peer))
		return 0;
	if (!cidr_match(&t->dst, &c->dst))
		return 0;
	if (t->dport >= 0 && sockname_port(&c->dst) != t->dport)
		return 0;
	if (t->sni_re != NULL && (c->sni == NULL ||
	    !re_search(t->sni_re, (const uint8_t *)c->sni, strlen(c->sni))))
		return 0;
	return 1;
}

/* ------------------------------------------------------------ running */

/* Opens per-direction state of every tap.  Returns 0 or -1 (no memory). */
int
chain_open(struct conn *c)
{
	struct route *r = c->route;
	size_t i;
	int d;

	c->tapon[C2S] = c->tapon[S2C] = 0;
	if (r->ntaps == 0)
		return 0;
	for (d = 0; d < 2; d++) {
		c->tapst[d] = calloc(r->ntaps, sizeof(void *));
		if (c->tapst[d] == NULL)
			return -1;
	}
	for (i = 0; i < r->ntaps; i++) {
		struct tap *t = &r->taps[i];

		if (!tap_conn_match(t, c))
			continue;
		if (t->ops->accept)
			t->ops->accept(t, c);
		for (d = 0; d < 2; d++) {
			if (!(t->dirs & DIR_BIT(d)))
				continue;
			c->tapon[d] |= 1u << i;
			if (t->ops->open)
				c->tapst[d][i] = t->ops->open(t, c, d);
		}
	}
	return 0;
}

void
chain_close(struct conn *c)
{
	struct route *r = c->route;
	size_t i;
	int d;

	for (d = 0; d < 2; d++) {
		if (c->tapst[d] == NULL)
			continue;
		for (i = 0; i < r->ntaps; i++)
			if (c->tapst[d][i] && r->taps[i].ops->close)
				r->taps[i].ops->close(&r->taps[i],
				    c->tapst[d][i]);
		free(c->tapst[d]);
		c->tapst[d] = NULL;
	}
}

/* Runs ch through taps [from, ntaps) of direction d and delivers it. */
static void
chain_from(struct conn *c, enum dir d, size_t from, struct chunk ch)
{
	struct route *r = c->route;
	size_t i;

	for (i = from; i < r->ntaps && ch.n > 0; i++) {
		struct tap *t = &r->taps[i];
		struct tapctx x = { c, d, c->tapst[d][i] };
		enum verdict v;

		if (!(c->tapon[d] & (1u << i)) || t->ops->chunk == NULL)
			continue;
		v = t->ops->chunk(t, &x, &ch);
		switch (v) {
		case V_PASS:
			break;
		case V_DROP:
			return;
		case V_ANSWER:
			conn_answer(c, d, ch.p, ch.n);
			return;
		case V_CLOSE:
			conn_close(c, t->spec, 0);
			return;
		case V_RESET:
			conn_close(c, t->spec, 1);
			return;
		}
		if (c->state == CS_CLOSED)
			return;
	}
	if (ch.n > 0)
		conn_deliver(c, d, ch.p, ch.n);
}

/* Runs a chunk just read through the chain.  Returns 0. */
int
chain_run(struct conn *c, enum dir d, const uint8_t *p, size_t n)
{
	struct chunk ch = { p, n };

	if (c->route->ntaps == 0) {
		conn_deliver(c, d, p, n);
		return 0;
	}
	chain_from(c, d, 0, ch);
	return 0;
}

/* Releases held bytes in direction d (all of them when eof).  Returns 0. */
int
chain_flush(struct conn *c, enum dir d, int eof)
{
	struct route *r = c->route;
	size_t i;

	for (i = 0; i < r->ntaps && c->state != CS_CLOSED; i++) {
		struct tap *t = &r->taps[i];
		struct tapctx x = { c, d, c->tapst[d][i] };
		struct chunk ch = { NULL, 0 };

		if (!(c->tapon[d] & (1u << i)) || t->ops->flush == NULL)
			continue;
		if (t->ops->flush(t, &x, &ch, eof) && ch.n > 0)
			chain_from(c, d, i + 1, ch);
	}
	return 0;
}

/* Returns 1 if a tap holds bytes back in direction d. */
int
chain_holding(struct conn *c, enum dir d)
{
	struct route *r = c->route;
	size_t i;

	for (i = 0; i < r->ntaps; i++)
		if ((c->tapon[d] & (1u << i)) && r->taps[i].ops->held &&
		    r->taps[i].ops->held(&r->taps[i], c->tapst[d][i]))
			return 1;
	return 0;
}

/* The shortest flush delay of the taps that hold bytes in direction d. */
uint64_t
chain_hold_ms(struct conn *c, enum dir d)
{
	struct route *r = c->route;
	uint64_t ms = UINT64_MAX;
	size_t i;

	for (i = 0; i < r->ntaps; i++)
		if ((c->tapon[d] & (1u << i)) && r->taps[i].ops->held &&
		    r->taps[i].ops->held(&r->taps[i], c->tapst[d][i]) &&
		    r->taps[i].hold_ms < ms)
			ms = r->taps[i].hold_ms;
	return ms;
}
