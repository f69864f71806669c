/*
 * taps/replace.c - "s/REGEX/REPLACEMENT/[gi]": sed-style substitution with
 * PCRE2, on the stream rather than on reads.
 *
 * Each direction keeps a window: a little context already passed on (for
 * lookbehind) and the bytes held back.  A chunk is appended to the window and
 * matched with PCRE2_PARTIAL_HARD: bytes before a complete match or before
 * the start of a partial match are passed on at once; a partial match at the
 * end is held until more bytes arrive, at most HOLD_MAX bytes, and flushed at
 * EOF or after hold_ms without new bytes (key flush=MS), so a prompt is never
 * held hostage.  Without g only the first match of the direction is replaced.
 *
 * An idle connection holds no buffer: once nothing is held, the window's
 * context moves into the state's small ctxb[] and the window is freed; the
 * output of a call goes into one buffer per filter, shared by every
 * connection (the chain is done with a chunk before it calls this filter
 * again for any connection: what it keeps, it copies).
 *
 * Expression grammar (sed's): s D REGEX D REPLACEMENT D FLAGS, D any
 * punctuation character; "\D" stands for D in both parts.  In REPLACEMENT:
 * & and \0 = the match, \1..\9 = groups, \& \\ literal, and the C escapes
 * \r \n \t \xHH.  FLAGS: g (every match), i (ignore case).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"

#define HOLD_MAX	(64 * 1024)
#define HOLD_MS		750
#define CTX_MAX		255

struct part {
	int		 group;		/* -1: literal */
	size_t		 off, len;	/* literal bytes in lit */
};

struct replace {
	pcre2_code		*re;
	pcre2_match_data	*md;
	int			 global;
	size_t			 maxlb;		/* lookbehind context to keep */
	char			*lit;
	struct part		*parts;
	size_t			 nparts;
	uint64_t		 hold_ms;	/* flush held bytes after */
	struct buf		 out;		/* what the last call produced */
};

struct rstate {
	struct buf	 win;		/* context + held bytes, while any held */
	size_t		 ctx;		/* leading bytes of win already sent */
	uint64_t	 base;		/* stream offset of win's first byte */
	int		 done;		/* no g, and the match happened */
	uint8_t		 ctxb[CTX_MAX];	/* the context while win is free */
	size_t		 nctx;
};

static const char *const replace_keys[] = { "flush", NULL };

static int
is_meta(char c)
{
	return strchr("\\^$.[]|()?*+{}", c) != NULL;
}

/* Copies the regex part, turning "\D" into D when D is not a metachar. */
static char *
regex_part(const char *s, size_t n, char d)
{
	char *r = malloc(n + 1), *o = r;
	size_t i;

	if (r == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n && s[i + 1] == d && !is_meta(d)) {
			*o++ = d;
			i++;
		} else if (s[i] == '\\' && i + 1 < n) {
			*o++ = s[i++];
			*o++ = s[i];
		} else
			*o++ = s[i];
	}
	*o = '\0';
	return r;
}

static int
add_part(struct replace *r, int group, size_t off, size_t len)
{
	struct part *np;

	if (group < 0 && len == 0)
		return 0;
	if (group < 0 && r->nparts > 0 && r->parts[r->nparts - 1].group < 0) {
		r->parts[r->nparts - 1].len += len;	/* adjacent literal */
		return 0;
	}
	np = realloc(r->parts, (r->nparts + 1) * sizeof(*np));
	if (np == NULL)
		return -1;
	r->parts = np;
	r->parts[r->nparts].group = group;
	r->parts[r->nparts].off = off;
	r->parts[r->nparts].len = len;
	r->nparts++;
	return 0;
}

/* Parses REPLACEMENT into literal bytes and group references. */
static int
repl_parse(struct replace *r, const char *s, size_t n, char d, char *err,
    size_t errlen)
{
	size_t i, o = 0;
	int hi, lo;

	if ((r->lit = malloc(n + 1)) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '&') {
			if (add_part(r, 0, 0, 0) == -1)
				return -1;
			continue;
		}
		if (c != '\\') {
			r->lit[o] = c;
			if (add_part(r, -1, o++, 1) == -1)
				return -1;
			continue;
		}
		if (++i >= n) {
			snprintf(err, errlen, "trailing backslash in "
			    "replacement");
			return -1;
		}
		c = s[i];
		if (c >= '0' && c <= '9') {
			if (add_part(r, c - '0', 0, 0) == -1)
				return -1;
			continue;
		}
		switch (c) {
		case 'n': c = '\n'; break;
		case 'r': c = '\r'; break;
		case 't': c = '\t'; break;
		case '&': case '\\': break;
		case 'x':
			if (i + 2 >= n + 0 || (hi = hexval(s[i + 1])) < 0 ||
			    (lo = hexval(s[i + 2])) < 0) {
				snprintf(err, errlen, "\\x needs two hex digits "
				    "in replacement");
				return -1;
			}
			c = (char)(hi << 4 | lo);
			i += 2;
			break;
		default:
			if (c != d) {
				snprintf(err, errlen, "unknown escape \\%c in "
				    "replacement (expected \\1..\\9, \\&, "
				    "\\\\, \\%c, \\r, \\n, \\t, \\xHH)", c, d);
				return -1;
			}
		}
		r->lit[o] = c;
		if (add_part(r, -1, o++, 1) == -1)
			return -1;
	}
	return 0;
}

static int
replace_parse(struct tap *t, const char *arg, char *err, size_t len)
{
	struct replace *r = calloc(1, sizeof(*r));
	char d = arg[1], e[ERRLEN], *pat = NULL;
	size_t re_s = 2, re_e, rp_s, rp_e;
	const char *f;
	int caseless = 0, rc = -1, groups;
	uint32_t lb = 0;

	if (r == NULL)
		return -1;
	t->conf = r;
	r->hold_ms = HOLD_MS;
	if (arg[0] != 's' || sexpr_scan(arg, &re_e, &rp_e) == 0) {
		snprintf(err, len, "expected s/REGEX/REPLACEMENT/[gi], got '%s'",
		    arg);
		return -1;
	}
	rp_s = re_e + 1;
	for (f = arg + rp_e + 1; *f; f++) {
		if (*f == 'g')
			r->global = 1;
		else if (*f == 'i')
			caseless = 1;
		else {
			snprintf(err, len, "unknown flag '%c' in '%s' (expected "
			    "g or i)", *f, arg);
			return -1;
		}
	}
	if (re_e == re_s) {
		snprintf(err, len, "empty regex in '%s'", arg);
		return -1;
	}
	if ((pat = regex_part(arg + re_s, re_e - re_s, d)) == NULL)
		return -1;
	if ((r->re = re_compile(pat, caseless, e, sizeof(e))) == NULL) {
		snprintf(err, len, "%s", e);
		goto out;
	}
	if (repl_parse(r, arg + rp_s, rp_e - rp_s, d, e, sizeof(e)) == -1) {
		snprintf(err, len, "%s in '%s'", e, arg);
		goto out;
	}
	if (pcre2_pattern_info(r->re, PCRE2_INFO_CAPTURECOUNT, &groups) == 0)
		for (size_t i = 0; i < r->nparts; i++)
			if (r->parts[i].group > groups) {
				snprintf(err, len, "'\\%d' in '%s' refers to "
				    "a group the regex does not have",
				    r->parts[i].group, arg);
				goto out;
			}
	if (pcre2_pattern_info(r->re, PCRE2_INFO_MAXLOOKBEHIND, &lb) == 0)
		r->maxlb = lb > CTX_MAX ? CTX_MAX : lb;
	r->md = pcre2_match_data_create_from_pattern(r->re, NULL);
	if (r->md == NULL)
		goto out;
	rc = 0;
out:
	free(pat);
	return rc;
}

static int
replace_key(struct tap *t, const char *k, const char *v, char *err,
    size_t len)
{
	long long ms;

	if (strcmp(k, "flush") != 0)
		return 1;
	if (num_parse(v, 1, 3600000, &ms) == -1) {
		snprintf(err, len, "bad flush '%s' (expected milliseconds, "
		    "1..3600000)", v);
		return -1;
	}
	((struct replace *)t->conf)->hold_ms = (uint64_t)ms;
	return 0;
}

static enum verdict
replace_open(const struct tap *t, struct tapctx *x)
{
	(void)t;
	x->st = calloc(1, sizeof(struct rstate));
	return V_PASS;
}

static int
emit(struct replace *r, const uint8_t *p, size_t n)
{
	return n ? buf_append(&r->out, p, n) : 0;
}

static int
emit_repl(struct replace *r, const uint8_t *subj, const PCRE2_SIZE *ov,
    int pairs)
{
	size_t i;

	for (i = 0; i < r->nparts; i++) {
		const struct part *pt = &r->parts[i];
		int g = pt->group;

		if (g < 0) {
			if (emit(r, (const uint8_t *)r->lit + pt->off,
			    pt->len) == -1)
				return -1;
		} else if (g < pairs && ov[2 * g] != PCRE2_UNSET &&
		    ov[2 * g + 1] >= ov[2 * g]) {
			if (emit(r, subj + ov[2 * g], ov[2 * g + 1] -
			    ov[2 * g]) == -1)
				return -1;
		}
	}
	return 0;
}

/*
 * Matches the window from its context on; passes on what cannot be part of
 * a match and keeps the rest.  final: no more bytes are coming for now (eol
 * says whether $ may match at the end).  Returns 0 or -1 (no memory).
 */
static int
replace_run(struct replace *r, struct rstate *st, int final, int eol)
{
	const uint8_t *w = st->win.data ? st->win.data + st->win.off : NULL;
	size_t wl = buf_pending(&st->win), off = st->ctx, keep = wl;
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
	uint32_t opts;
	int rc;

	r->out.off = r->out.len = 0;
	while (off < wl && !st->done) {
		opts = (st->base > 0 ? PCRE2_NOTBOL : 0) |
		    (final ? (eol ? 0 : PCRE2_NOTEOL) : PCRE2_PARTIAL_HARD);
		rc = pcre2_match(r->re, w, wl, off, opts, r->md, NULL);
		if (rc == PCRE2_ERROR_PARTIAL) {
			size_t ps = ov[0] < off ? off : ov[0];

			if (wl - ps > HOLD_MAX)		/* give up on it */
				ps = wl - HOLD_MAX;
			if (emit(r, w + off, ps - off) == -1)
				return -1;
			off = keep = ps;
			break;
		}
		if (rc < 0 && rc != PCRE2_ERROR_NOMATCH && rc != 0)
			rc = PCRE2_ERROR_NOMATCH;	/* limits: pass as is */
		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		size_t s = ov[0], e = ov[1] < ov[0] ? ov[0] : ov[1];

		if (s < off)
			s = off;
		if (emit(r, w + off, s - off) == -1 ||
		    emit_repl(r, w, ov, rc == 0 ? 10 : rc) == -1)
			return -1;
		if (!r->global)
			st->done = 1;
		if (e == s) {		/* empty match: step over one byte */
			if (s < wl && emit(r, w + s, 1) == -1)
				return -1;
			off = s + 1;
		} else
			off = e;
	}
	if (off < keep) {		/* no (more) matches: pass the rest */
		if (emit(r, w + off, keep - off) == -1)
			return -1;
	}
	/*
	 * Keep a little context before the held bytes: lookbehind, \b and a
	 * multiline ^ look at the bytes before the match.
	 */
	{
		size_t want = r->maxlb > 0 ? r->maxlb : 1;
		size_t ctx = keep < want ? keep : want;
		size_t drop = keep - ctx;

		st->base += drop;
		buf_consume(&st->win, drop);
		st->ctx = ctx;
		if (buf_pending(&st->win) == 0) {
			buf_free(&st->win);
			st->ctx = 0;
		}
	}
	return 0;
}

/*
 * Nothing held: keeps the context in ctxb and frees the window, so an idle
 * connection holds no buffer.
 */
static void
window_park(struct rstate *st)
{
	if (buf_pending(&st->win) > st->ctx)
		return;
	st->nctx = st->ctx;
	if (st->nctx > 0)
		memcpy(st->ctxb, st->win.data + st->win.off, st->nctx);
	buf_free(&st->win);
	st->ctx = 0;
}

/* The window again, from the context in ctxb.  Returns 0 or -1. */
static int
window_unpark(struct rstate *st)
{
	if (buf_pending(&st->win) > 0 || st->nctx == 0)
		return 0;
	if (buf_append(&st->win, st->ctxb, st->nctx) == -1)
		return -1;
	st->ctx = st->nctx;
	st->nctx = 0;
	return 0;
}

static enum verdict
replace_chunk(const struct tap *t, struct tapctx *x, struct chunk *ch)
{
	struct replace *r = t->conf;
	struct rstate *st = x->st;

	if (st == NULL)
		return V_PASS;		/* no memory for state */
	if (x->flow->udp) {	/* one datagram, whole */
		st->done = 0;
		st->base = 0;
		st->ctx = 0;
		if (buf_append(&st->win, ch->p, ch->n) == -1 ||
		    replace_run(r, st, 1, 1) == -1)
			return V_DROP;
		buf_free(&st->win);
		st->ctx = 0;
		st->base = 0;
		ch->p = r->out.data;
		ch->n = buf_pending(&r->out);
		return V_PASS;
	}
	if (st->done && buf_pending(&st->win) == 0)
		return V_PASS;		/* nothing more to do */
	if (window_unpark(st) == -1 ||
	    buf_append(&st->win, ch->p, ch->n) == -1 ||
	    replace_run(r, st, 0, 0) == -1)
		return V_RESET;
	window_park(st);
	ch->p = r->out.data;
	ch->n = buf_pending(&r->out);
	/* held bytes go on after hold_ms without new ones */
	x->wake = buf_pending(&st->win) > st->ctx ? x->now + r->hold_ms : 0;
	return V_PASS;
}

/* Passes on what is held (eof: the stream ends, $ may match there). */
static int
replace_release(const struct tap *t, struct tapctx *x, struct chunk *ch,
    int eof)
{
	struct replace *r = t->conf;
	struct rstate *st = x->st;

	x->wake = 0;
	if (st == NULL || buf_pending(&st->win) <= st->ctx)
		return 0;
	if (replace_run(r, st, 1, eof) == -1)
		return 0;
	window_park(st);
	ch->p = r->out.data;
	ch->n = buf_pending(&r->out);
	return 1;
}

static enum verdict
replace_tick(const struct tap *t, struct tapctx *x, struct chunk *out)
{
	(void)replace_release(t, x, out, 0);
	return V_PASS;
}

static int
replace_flush(const struct tap *t, struct tapctx *x, struct chunk *out)
{
	return replace_release(t, x, out, 1);
}

static size_t
replace_held(const struct tap *t, const void *sp)
{
	const struct rstate *st = sp;

	(void)t;
	return buf_pending(&st->win) > st->ctx ? buf_pending(&st->win) -
	    st->ctx : 0;
}

static void
replace_close(const struct tap *t, void *sp)
{
	struct rstate *st = sp;

	(void)t;
	buf_free(&st->win);
	free(st);
}

static void
replace_free(struct tap *t)
{
	struct replace *r = t->conf;

	if (r == NULL)
		return;
	pcre2_match_data_free(r->md);
	buf_free(&r->out);
	re_free(r->re);
	free(r->lit);
	free(r->parts);
	free(r);
	t->conf = NULL;
}

const struct tap_ops tap_replace = {
	.name = "s",
	.usage = "s/REGEX/REPLACEMENT/[gi][,flush=MS]",
	.takes_arg = 2,
	.keys = replace_keys,
	.parse = replace_parse,
	.key = replace_key,
	.open = replace_open,
	.chunk = replace_chunk,
	.tick = replace_tick,
	.flush = replace_flush,
	.held = replace_held,
	.close = replace_close,
	.free = replace_free,
};
