/*
 * chain.c - running a connection's chunks through its filters.
 *
 * The chain keeps, per direction, one slot for every filter: the filter's
 * state, the stream offset of the bytes that reached it, when it wants to
 * be woken, and the queue of chunks it holds (V_HOLD).  Held chunks are
 * copies, released by the filter's release() (or at their due time) into
 * the rest of the chain; a chunk that a filter passes while earlier ones
 * are held waits behind them, so a stream keeps its order.  What reaches
 * the end of the chain, and every other action (answer, end of direction,
 * close, redirect), goes to the connection through its sink: the chain
 * never knows what a connection is.
 *
 * The end of a direction travels the chain too: it passes a filter once
 * that filter holds nothing, after flush() gave up what it kept itself.
 * One timer per direction fires at the earliest time a filter asked for.
 */
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "filter.h"
#include "loop.h"

/* One held chunk. */
struct held {
	struct held	*next;
	uint64_t	 due;		/* not before (ms) */
	size_t		 off, len;	/* bytes data[off..len) still held */
	uint8_t		 data[];
};

/* One filter in one direction of one connection. */
struct slot {
	void		*st;
	struct held	*head, *tail;
	size_t		 held;		/* bytes in the queue */
	uint64_t	 off;		/* stream offset at this filter */
	uint64_t	 wake;		/* ms; 0 = none */
	unsigned	 on:1;		/* the filter applies */
};

struct way {
	struct slot	*s;
	struct timer	 timer;
	size_t		 held;		/* bytes in all queues */
	size_t		 eof_at;	/* the end of stream reached filter i */
	unsigned	 eof:1;		/* the end of stream is under way */
	unsigned	 eof_done:1;	/* and was handed to the sink */
};

struct chain {
	const struct tap	*taps;
	size_t			 n;
	const struct flow	*flow;
	const struct chain_sink	*sink;
	void			*arg;
	int			 closed;
	struct way		 w[2];
};

static void run_from(struct chain *ch, enum dir d, size_t i,
    const uint8_t *p, size_t n);
static void pump(struct chain *ch, enum dir d);
static void dequeue(struct way *w, struct slot *s, size_t n);
static int drain(struct chain *ch, enum dir d, size_t i);

static struct tapctx
ctx(struct chain *ch, enum dir d, size_t i)
{
	struct slot *s = &ch->w[d].s[i];
	struct tapctx x = {
		.flow = ch->flow, .dir = d, .st = s->st, .off = s->off,
		.now = now_ms(), .held = s->held, .wake = s->wake,
	};

	return x;
}

/* Acts on a verdict that is not about the chunk.  Returns 1 if it acted. */
static int
act(struct chain *ch, const struct tap *t, enum verdict v)
{
	if (v == V_CLOSE || v == V_RESET) {
		ch->sink->close(ch->arg, t->spec, v == V_RESET);
		return 1;
	}
	return 0;
}

/* Queues a copy of p[0..n) in slot i; datagrams in order of due. */
static int
enqueue(struct chain *ch, enum dir d, size_t i, const uint8_t *p, size_t n,
    uint64_t due)
{
	struct slot *s = &ch->w[d].s[i];
	struct held *h = malloc(sizeof(*h) + n), **pp;

	if (h == NULL)
		return -1;
	memcpy(h->data, p, n);
	h->off = 0;
	h->len = n;
	h->next = NULL;
	if (!ch->flow->udp) {		/* a stream keeps its order */
		if (s->tail != NULL && s->tail->due > due)
			due = s->tail->due;
		h->due = due;
		if (s->tail)
			s->tail->next = h;
		else
			s->head = h;
		s->tail = h;
	} else {
		h->due = due;
		for (pp = &s->head; *pp && (*pp)->due <= due; pp = &(*pp)->next)
			;
		h->next = *pp;
		*pp = h;
		if (h->next == NULL)
			s->tail = h;
	}
	s->held += n;
	ch->w[d].held += n;
	return 0;
}

/* Runs p[0..n) through filters [i, n) of direction d and delivers it. */
static void
run_from(struct chain *ch, enum dir d, size_t i, const uint8_t *p, size_t n)
{
	for (; i < ch->n && n > 0; i++) {
		const struct tap *t = &ch->taps[i];
		struct slot *s = &ch->w[d].s[i];
		struct chunk c = { p, n };
		struct tapctx x;
		enum verdict v;

		if (!s->on)
			continue;
		if (tap_off(t)) {	/* what it holds goes first */
			if (drain(ch, d, i) == 0)
				continue;
			if (!ch->closed && enqueue(ch, d, i, p, n, 0) == -1)
				ch->sink->close(ch->arg, "out of memory", 1);
			return;
		}
		if (t->ops->chunk == NULL)
			continue;
		x = ctx(ch, d, i);
		v = t->ops->chunk(t, &x, &c);
		s->off += n;
		s->wake = x.wake;
		if (v == V_PASS && s->head != NULL)
			v = V_HOLD, x.due = 0;	/* behind what is held */
		switch (v) {
		case V_PASS:
			break;
		case V_HOLD:
			if (c.n > 0 && enqueue(ch, d, i, c.p, c.n, x.due) == -1)
				ch->sink->close(ch->arg, "out of memory", 1);
			return;
		case V_DROP:
			return;
		case V_ANSWER:
			ch->sink->answer(ch->arg, d, c.p, c.n);
			return;
		case V_SHUT:
			run_from(ch, d, i + 1, c.p, c.n);
			if (ch->closed)
				return;
			if (!ch->w[d].eof || ch->w[d].eof_at <= i) {
				ch->w[d].eof = 1;
				ch->w[d].eof_at = i + 1;
			}
			return;
		case V_REDIRECT:
			if (x.to != NULL)
				ch->sink->redirect(ch->arg, x.to);
			break;
		default:
			act(ch, t, v);
			return;
		}
		if (ch->closed)
			return;
		p = c.p;
		n = c.n;
	}
	if (n > 0)
		ch->sink->deliver(ch->arg, d, p, n);
}

/* Takes n bytes off the head of slot s's queue. */
static void
dequeue(struct way *w, struct slot *s, size_t n)
{
	struct held *h = s->head;

	h->off += n;
	s->held -= n;
	w->held -= n;
	if (h->off < h->len)
		return;
	s->head = h->next;
	if (s->head == NULL)
		s->tail = NULL;
	free(h);
}

/*
 * A filter switched off gives up what it holds, in order: its queue, then
 * what it keeps itself (a filter that waits for decisions forgets them).
 * Returns 0 when it holds nothing more, -1 while bytes wait for room.
 */
static int
drain(struct chain *ch, enum dir d, size_t i)
{
	const struct tap *t = &ch->taps[i];
	struct way *w = &ch->w[d];
	struct slot *s = &w->s[i];
	struct chunk out = { NULL, 0 };
	struct tapctx x;

	while (s->head != NULL && !ch->closed && ch->sink->room(ch->arg, d)) {
		struct held *h = s->head;
		size_t n = h->len - h->off;

		run_from(ch, d, i + 1, h->data + h->off, n);
		if (ch->closed)
			return -1;
		dequeue(w, s, n);
	}
	if (s->head != NULL || ch->closed)
		return -1;
	s->wake = 0;
	if (s->st == NULL || t->ops->flush == NULL || (t->ops->decide == NULL &&
	    (t->ops->held == NULL || t->ops->held(t, s->st) == 0)))
		return 0;
	x = ctx(ch, d, i);
	if (t->ops->flush(t, &x, &out) && out.n > 0)
		run_from(ch, d, i + 1, out.p, out.n);
	return ch->closed ? -1 : 0;
}

/* Acts on the decisions about slot i's oldest chunks, while made. */
static void
decided(struct chain *ch, enum dir d, size_t i)
{
	const struct tap *t = &ch->taps[i];
	struct way *w = &ch->w[d];
	struct slot *s = &w->s[i];

	while (s->head != NULL && !ch->closed && ch->sink->room(ch->arg, d)) {
		struct held *h = s->head;
		size_t n = h->len - h->off;
		struct chunk c = { h->data + h->off, n };
		struct tapctx x = ctx(ch, d, i);
		enum verdict v;

		v = t->ops->decide(t, &x, &c);
		s->wake = x.wake;
		switch (v) {
		case V_HOLD:
			return;
		case V_PASS:
			run_from(ch, d, i + 1, c.p, c.n);
			break;
		case V_DROP:
			break;
		case V_ANSWER:
			ch->sink->answer(ch->arg, d, c.p, c.n);
			break;
		default:
			act(ch, t, v);
			return;
		}
		if (ch->closed)
			return;
		dequeue(w, s, n);
	}
}

/* Releases what slot i lets go now into the rest of the chain. */
static void
release(struct chain *ch, enum dir d, size_t i)
{
	const struct tap *t = &ch->taps[i];
	struct way *w = &ch->w[d];
	struct slot *s = &w->s[i];

	if (tap_off(t)) {
		(void)drain(ch, d, i);
		return;
	}
	if (t->ops->decide != NULL) {
		decided(ch, d, i);
		return;
	}
	/* released bytes, and what they may make (answers), wait for room */
	while (s->head != NULL && !ch->closed && ch->sink->room(ch->arg, d)) {
		struct held *h = s->head;
		struct chunk c = { h->data + h->off, h->len - h->off };
		struct tapctx x = ctx(ch, d, i);
		size_t n;

		if (h->due > x.now) {
			if (h->due != DUE_NEVER && (s->wake == 0 ||
			    s->wake > h->due))
				s->wake = h->due;
			return;
		}
		n = t->ops->release ? t->ops->release(t, &x, &c) : c.n;
		s->wake = x.wake;
		if (n == 0)
			return;
		if (n > c.n || ch->flow->udp)
			n = c.n;	/* a datagram goes whole */
		/*
		 * The bytes stay queued until the rest of the chain is done
		 * with them; a close meanwhile has freed the queue.
		 */
		run_from(ch, d, i + 1, c.p, n);
		if (ch->closed)
			return;
		dequeue(w, s, n);
	}
}

/* Passes the end of the stream on through filters that hold nothing. */
static void
eof_advance(struct chain *ch, enum dir d)
{
	struct way *w = &ch->w[d];

	while (w->eof && !w->eof_done && !ch->closed) {
		size_t i = w->eof_at;

		if (i >= ch->n) {
			w->eof_done = 1;
			ch->sink->eof(ch->arg, d);
			return;
		}
		if (w->s[i].on) {
			const struct tap *t = &ch->taps[i];
			struct slot *s = &w->s[i];
			struct tapctx x;
			struct chunk out = { NULL, 0 };

			if (s->head != NULL)
				return;		/* after what it holds */
			x = ctx(ch, d, i);
			if (t->ops->flush && t->ops->flush(t, &x, &out) &&
			    out.n > 0) {
				s->wake = 0;
				run_from(ch, d, i + 1, out.p, out.n);
			}
		}
		if (w->eof_at == i)
			w->eof_at = i + 1;
	}
}

/* Arms the direction's timer for the earliest wake of its filters. */
static void
rearm(struct chain *ch, enum dir d)
{
	struct way *w = &ch->w[d];
	uint64_t min = 0, now;
	size_t i;

	for (i = 0; i < ch->n; i++)
		if (w->s[i].on && w->s[i].wake != 0 &&
		    (min == 0 || w->s[i].wake < min))
			min = w->s[i].wake;
	if (min == 0) {
		timer_stop(&w->timer);
		return;
	}
	now = now_ms();
	timer_arm(&w->timer, min > now ? min - now : 0);
}

/* Releases what may go, moves the end of stream on, rearms the timer. */
static void
pump(struct chain *ch, enum dir d)
{
	size_t i;

	for (i = 0; i < ch->n && !ch->closed; i++)
		if (ch->w[d].s[i].head != NULL || (ch->w[d].s[i].on &&
		    tap_off(&ch->taps[i])))
			release(ch, d, i);
	if (!ch->closed)
		eof_advance(ch, d);
	if (!ch->closed)
		rearm(ch, d);
}

static void
fired(struct timer *tm)
{
	struct chain *ch = tm->arg;
	enum dir d = tm == &ch->w[C2S].timer ? C2S : S2C;
	size_t before = ch->w[d].held, i;

	for (i = 0; i < ch->n && !ch->closed; i++) {
		const struct tap *t = &ch->taps[i];
		struct slot *s = &ch->w[d].s[i];
		struct chunk out = { NULL, 0 };
		struct tapctx x;
		enum verdict v;

		if (!s->on || s->wake == 0 || s->wake > now_ms())
			continue;
		s->wake = 0;
		if (t->ops->tick == NULL || tap_off(t))
			continue;	/* pump() releases (or drains) */
		x = ctx(ch, d, i);
		v = t->ops->tick(t, &x, &out);
		s->wake = x.wake;
		if (act(ch, t, v))
			return;
		if (out.n > 0)
			run_from(ch, d, i + 1, out.p, out.n);
	}
	if (ch->closed)
		return;
	pump(ch, d);
	if (!ch->closed && ch->w[d].held < before)
		ch->sink->resume(ch->arg);
}

struct chain *
chain_open(const struct tap *taps, size_t n, const struct flow *f,
    const struct chain_sink *sink, void *arg)
{
	struct chain *ch = calloc(1, sizeof(*ch));
	size_t i;
	int d;

	if (ch == NULL)
		return NULL;
	ch->taps = taps;
	ch->n = n;
	ch->flow = f;
	ch->sink = sink;
	ch->arg = arg;
	for (d = 0; d < 2; d++) {
		ch->w[d].timer.cb = fired;
		ch->w[d].timer.arg = ch;
		if (n > 0 && (ch->w[d].s = calloc(n, sizeof(struct slot))) ==
		    NULL) {
			chain_free(ch);
			return NULL;
		}
		for (i = 0; i < n; i++)
			ch->w[d].s[i].on = (taps[i].dirs & DIR_BIT(d)) &&
			    tap_match(&taps[i], f);
	}
	return ch;
}

void
chain_start(struct chain *ch)
{
	size_t i;
	int d;

	for (i = 0; i < ch->n; i++) {
		const struct tap *t = &ch->taps[i];

		for (d = 0; d < 2 && !ch->closed; d++) {
			struct slot *s = &ch->w[d].s[i];
			struct tapctx x;
			enum verdict v;

			if (!s->on || t->ops->open == NULL)
				continue;
			x = ctx(ch, d, i);
			v = t->ops->open(t, &x);
			s->st = x.st;
			s->wake = x.wake;
			if (tap_off(t))
				continue;	/* switched off: state only */
			if (v == V_REDIRECT && x.to != NULL)
				ch->sink->redirect(ch->arg, x.to);
			else if (act(ch, t, v))
				return;
		}
	}
	for (d = 0; d < 2 && !ch->closed; d++)
		rearm(ch, d);
}

void
chain_input(struct chain *ch, enum dir d, const uint8_t *p, size_t n)
{
	if (ch->closed)
		return;
	run_from(ch, d, 0, p, n);
	if (!ch->closed)
		pump(ch, d);
}

void
chain_kick(struct chain *ch)
{
	int d;

	for (d = 0; d < 2 && !ch->closed; d++)
		if (ch->w[d].held > 0) {
			size_t before = ch->w[d].held;

			pump(ch, d);
			if (!ch->closed && ch->w[d].held < before)
				ch->sink->resume(ch->arg);
		}
}

void
chain_eof(struct chain *ch, enum dir d)
{
	struct way *w = &ch->w[d];

	if (ch->closed || w->eof_done)
		return;
	if (!w->eof) {
		w->eof = 1;
		w->eof_at = 0;
	}
	pump(ch, d);
}

size_t
chain_held(const struct chain *ch, enum dir d)
{
	const struct way *w = &ch->w[d];
	size_t i, n = w->held;

	for (i = 0; i < ch->n; i++)
		if (w->s[i].on && ch->taps[i].ops->held && w->s[i].st)
			n += ch->taps[i].ops->held(&ch->taps[i], w->s[i].st);
	return n;
}

int
chain_observes(const struct chain *ch)
{
	size_t i;

	for (i = 0; i < ch->n; i++)
		if ((ch->taps[i].ops->observes || tap_writes_stdout(&ch->taps[i]))
		    && (ch->w[C2S].s[i].on || ch->w[S2C].s[i].on))
			return 1;
	return 0;
}

int
chain_first_bytes(const struct chain *ch)
{
	size_t i;

	for (i = 0; i < ch->n; i++)
		if (ch->taps[i].first_bytes && ch->w[C2S].s[i].on)
			return 1;
	return 0;
}

void
chain_close(struct chain *ch)
{
	size_t i;
	int d;

	if (ch == NULL || ch->closed)
		return;
	ch->closed = 1;
	for (d = 0; d < 2; d++) {
		struct way *w = &ch->w[d];

		timer_stop(&w->timer);
		for (i = 0; w->s && i < ch->n; i++) {
			struct slot *s = &w->s[i];

			while (s->head) {
				struct held *h = s->head;

				s->head = h->next;
				free(h);
			}
			s->tail = NULL;
			s->held = 0;
			if (s->st && ch->taps[i].ops->close)
				ch->taps[i].ops->close(&ch->taps[i], s->st);
			s->st = NULL;
		}
		w->held = 0;
	}
}

void
chain_free(struct chain *ch)
{
	if (ch == NULL)
		return;
	chain_close(ch);
	free(ch->w[C2S].s);
	free(ch->w[S2C].s);
	free(ch);
}
