/*
 * taps/inspect.c - "inspect[:REGEX][,timeout=S][,edit=raw|hex]": hold each
 * chunk (that matches REGEX) until someone decides it, at the terminal
 * (prompt.c) or over the control socket (control.c).
 *
 * A matching chunk is held by the chain (V_HOLD); the chain asks decide()
 * about the oldest one whenever its connection is kicked.  The first time,
 * the chunk is registered in held.c and gets an id; then decide() reads
 * the decision made there.  Later chunks of the same direction wait behind
 * it in the chain's queue, so only this direction of this connection
 * waits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../held.h"
#include "../opts.h"
#include "../tap.h"

struct inspect {
	void		*re;		/* NULL: every chunk */
	uint64_t	 timeout_ms;	/* 0: wait for ever */
	enum held_edit	 edit;
};

struct ist {
	uint64_t	 conn;
	uint64_t	 hid;		/* the registered head chunk, or 0 */
	uint64_t	 deadline;
	uint8_t		*out;		/* decided bytes, until the next call */
};

static const char *const inspect_keys[] = { "timeout", "edit", NULL };

static int
inspect_parse(struct tap *t, const char *arg, char *err, size_t len)
{
	struct inspect *in = calloc(1, sizeof(*in));

	if ((t->conf = in) == NULL) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	if (arg == NULL)
		return 0;
	if (*arg == '\0') {
		snprintf(err, len, "inspect: empty regex (use plain 'inspect' "
		    "to hold every chunk)");
		return -1;
	}
	in->re = re_compile(arg, 0, err, len);
	return in->re ? 0 : -1;
}

static int
inspect_key(struct tap *t, const char *k, const char *v, char *err,
    size_t len)
{
	struct inspect *in = t->conf;
	long long n;

	if (strcmp(k, "timeout") == 0) {
		if (num_parse(v, 1, 86400, &n) == -1) {
			snprintf(err, len, "bad timeout '%s' (expected "
			    "1..86400 seconds)", v);
			return -1;
		}
		in->timeout_ms = (uint64_t)n * 1000;
		return 0;
	}
	if (strcmp(k, "edit") == 0) {
		if (strcmp(v, "raw") == 0)
			in->edit = EDIT_RAW;
		else if (strcmp(v, "hex") == 0)
			in->edit = EDIT_HEX;
		else {
			snprintf(err, len, "bad edit '%s' (expected raw or "
			    "hex)", v);
			return -1;
		}
		return 0;
	}
	return 1;
}

/* Somebody must be able to answer: a terminal or the control socket. */
static int
inspect_check(struct tap *t, char *err, size_t len)
{
	(void)t;
	if (opt.control != NULL || isatty(STDIN_FILENO))
		return 0;
	snprintf(err, len, "inspect needs a terminal on standard input or "
	    "--control=PATH: nobody could answer it");
	return -1;
}

static enum verdict
inspect_open(const struct tap *t, struct tapctx *x)
{
	struct ist *st = calloc(1, sizeof(*st));

	(void)t;
	if (st == NULL)
		return V_RESET;
	st->conn = x->flow->id;
	x->st = st;
	return V_PASS;
}

static int
inspect_wants(const struct tap *t, const struct tapctx *x,
    const struct chunk *c)
{
	const struct inspect *in = t->conf;

	if (held_passes(x->flow->id))
		return 0;
	return in->re == NULL || re_search(in->re, c->p, c->n);
}

static enum verdict
inspect_chunk(const struct tap *t, struct tapctx *x, struct chunk *c)
{
	if (!inspect_wants(t, x, c))
		return V_PASS;
	x->due = 0;
	return V_HOLD;
}

/* Forgets the registered chunk. */
static void
forget(struct ist *st)
{
	if (st->hid != 0)
		held_remove(st->hid);
	st->hid = 0;
	st->deadline = 0;
}

static enum verdict
inspect_decide(const struct tap *t, struct tapctx *x, struct chunk *h)
{
	const struct inspect *in = t->conf;
	struct ist *st = x->st;
	struct held_chunk *hc;
	enum held_how how;

	free(st->out);
	st->out = NULL;
	x->wake = 0;
	if (st->hid == 0) {
		if (!inspect_wants(t, x, h))
			return V_PASS;
		if ((st->hid = held_add(st->conn, x->dir, in->edit, h->p,
		    h->n)) == 0)
			return V_PASS;	/* no memory: let it go */
		if (in->timeout_ms > 0)
			x->wake = st->deadline = x->now + in->timeout_ms;
		return V_HOLD;
	}
	if ((hc = held_find(st->hid)) == NULL) {
		st->hid = 0;
		return V_PASS;
	}
	how = hc->how;
	if (how == H_UNDECIDED && held_passes(st->conn))
		how = H_FORWARD;
	if (how == H_UNDECIDED) {
		if (st->deadline == 0 || x->now < st->deadline) {
			x->wake = st->deadline;
			return V_HOLD;
		}
		how = H_FORWARD;	/* timeout=: undecided goes on */
	}
	if (hc->np != NULL) {
		st->out = hc->np;
		h->p = hc->np;
		h->n = hc->nn;
		hc->np = NULL;
	}
	forget(st);
	return how == H_DROP ? V_DROP : how == H_ANSWER ? V_ANSWER : V_PASS;
}

/* Switched off, or the end of the stream: what was registered goes. */
static int
inspect_flush(const struct tap *t, struct tapctx *x, struct chunk *out)
{
	(void)t;
	(void)out;
	if (x->st != NULL)
		forget(x->st);
	return 0;
}

static void
inspect_close(const struct tap *t, void *sp)
{
	struct ist *st = sp;

	(void)t;
	forget(st);
	held_conn_gone(st->conn);
	free(st->out);
	free(st);
}

static void
inspect_free(struct tap *t)
{
	struct inspect *in = t->conf;

	if (in != NULL)
		re_free(in->re);
	free(in);
	t->conf = NULL;
}

const struct tap_ops tap_inspect = {
	.name = "inspect",
	.usage = "inspect[:REGEX][,timeout=S][,edit=raw|hex]",
	.takes_arg = 1,
	.keys = inspect_keys,
	.parse = inspect_parse,
	.key = inspect_key,
	.check = inspect_check,
	.open = inspect_open,
	.chunk = inspect_chunk,
	.decide = inspect_decide,
	.flush = inspect_flush,
	.close = inspect_close,
	.free = inspect_free,
};
