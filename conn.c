/*
 * conn.c - a connection's life: the accept event, the chain, choosing and
 * connecting the upstream (or echo), idle time, and the close with its
 * reason.  How bytes move is the transport's: streams in stream.c,
 * datagrams in udp.c, both behind struct transport.
 *
 * A closed connection is freed after the loop turn, so a filter or a
 * write that closes it mid-call can still look at it.
 */
#include <sys/socket.h>

#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "conn.h"
#include "event.h"
#include "exec.h"
#include "loop.h"
#include "net.h"
#include "opts.h"
#include "out.h"
#include "tapset.h"
#include "transparent.h"

#define FIRST_BYTES_WAIT_MS	1000
#define TRIM_PEAK		64	/* connections: worth trimming after */

enum conn_state {
	CS_WAIT_BYTES,			/* before the upstream is chosen */
	CS_CONNECTING,
	CS_OPEN,
	CS_CLOSED,
};

struct conn {
	struct flow	 f;		/* what filters and events may know */
	struct route	*route;
	enum conn_state	 state;
	const struct transport *tp;
	void		*tparg;
	struct chain	*chain;		/* NULL: no filter applies */
	struct tapset	*set;		/* the filters the chain runs over */
	unsigned	 observes:1;	/* its filters write to stdout */
	uint64_t	 last_ms;
	struct timer	 idle;		/* --idle-timeout, UDP expiry */
	struct timer	 wait;		/* the wait for the first bytes */
	const struct addr *redirect;	/* chosen by a filter */
	const char	*why;		/* while closing: the reason */
	struct conn	*next, *prev;
};

void		(*conn_on_close)(void);

static struct conn	*conns;		/* open */
static struct conn	*graveyard;	/* closed, freed after the turn */
static size_t		 nconns;
static size_t		 nconns_peak;	/* since memory was last trimmed */
static uint64_t		 next_id = 1;
static uint64_t		 stat_conns, stat_bytes[2];

static void conn_connect(struct conn *c);

/* ------------------------------------------------------------ queries */

int
conn_closed(const struct conn *c)
{
	return c->state == CS_CLOSED;
}

int
conn_open(const struct conn *c)
{
	return c->state == CS_OPEN;
}

int
conn_connecting(const struct conn *c)
{
	return c->state == CS_CONNECTING;
}

int
conn_filtered(const struct conn *c)
{
	return c->chain != NULL;
}

int
conn_observes(const struct conn *c)
{
	return c->observes;
}

const struct flow *
conn_flow(const struct conn *c)
{
	return &c->f;
}

const char *
conn_why(const struct conn *c)
{
	return c->why ? c->why : "closed";
}

void
conn_set_host(struct conn *c, const char *host)
{
	c->f.host = host;
}

void
conn_set_sni(struct conn *c, const char *sni)
{
	c->f.sni = sni;
}

struct route *
conn_route(const struct conn *c)
{
	return c->route;
}

const struct addr *
conn_target(const struct conn *c)
{
	return c->redirect ? c->redirect : &c->route->target;
}

size_t
conn_held(const struct conn *c, enum dir d)
{
	return c->chain ? chain_held(c->chain, d) : 0;
}

void
conn_stats(uint64_t *conns_total, uint64_t bytes[2])
{
	*conns_total = stat_conns;
	bytes[C2S] = stat_bytes[C2S];
	bytes[S2C] = stat_bytes[S2C];
}

size_t
conn_count(void)
{
	return nconns;
}

int
conn_room(void)
{
	return opt.max_conns == 0 || (long)nconns < opt.max_conns;
}

static void
conn_update(struct conn *c)
{
	if (c->state != CS_CLOSED)
		c->tp->update(c, c->tparg);
}

void
conn_update_all(void)
{
	struct conn *c;

	for (c = conns; c; c = c->next)
		conn_update(c);
}

struct conn *
conn_find(uint64_t id)
{
	struct conn *c;

	for (c = conns; c; c = c->next)
		if (c->f.id == id)
			return c;
	return NULL;
}

void
conn_walk(void (*fn)(struct conn *, void *), void *arg)
{
	struct conn *c, *next;

	for (c = conns; c; c = next) {
		next = c->next;
		fn(c, arg);
	}
}

const char *
conn_state(const struct conn *c)
{
	static const char *const names[] = {
		[CS_WAIT_BYTES] = "waiting", [CS_CONNECTING] = "connecting",
		[CS_OPEN] = "open", [CS_CLOSED] = "closed",
	};

	return names[c->state];
}

uint64_t
conn_last_ms(const struct conn *c)
{
	return c->last_ms;
}

/* ------------------------------------------------------------ closing */

/*
 * Closes the transport (with RST when reset), reports the close with its
 * reason, and queues c to be freed after this loop turn.
 */
void
conn_close(struct conn *c, const char *reason, int reset)
{
	if (c->state == CS_CLOSED)
		return;
	ev_close(&c->f, reason);
	c->state = CS_CLOSED;
	c->f.reset = reset;
	c->why = reason;
	chain_close(c->chain);
	c->tp->close(c, c->tparg, reset);
	c->why = NULL;
	exec_closed(c);
	timer_stop(&c->idle);
	timer_stop(&c->wait);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = graveyard;
	graveyard = c;
	nconns--;
	c->route->stats.active--;
	if (conn_on_close)
		conn_on_close();
}

void
conn_fail(struct conn *c, const char *reason)
{
	ev_error(&c->f, reason);
	if (c->state != CS_CLOSED)
		c->route->stats.errors++;
	conn_close(c, reason, 1);
}

void
conn_close_all(const char *reason)
{
	while (conns)
		conn_close(conns, reason, 0);
}

/* The addresses a flow keeps out of line (Unix paths). */
static void
flow_free(struct flow *f)
{
	flowaddr_free(&f->client);
	flowaddr_free(&f->peer);
	flowaddr_free(&f->local);
	flowaddr_free(&f->dst);
	flowaddr_free(&f->server);
	flowaddr_free(&f->server_local);
}

void
conn_reap(void)
{
	if (graveyard == NULL)
		return;
	do {
		struct conn *c = graveyard;

		graveyard = c->next;
		chain_free(c->chain);
		tapset_put(c->set);
		if (c->tp->free)
			c->tp->free(c->tparg);
		flow_free(&c->f);
		free(c);
	} while (graveyard);
	/*
	 * After a crowd has left, give its memory back to the system: the
	 * allocator keeps freed pages otherwise (a 10,000-connection peak
	 * left 14 MB behind).  Once per fall to a quarter of the peak, so a
	 * few times as a crowd leaves, never per connection.
	 */
	if (nconns_peak >= TRIM_PEAK && nconns <= nconns_peak / 4) {
		malloc_trim(0);
		nconns_peak = nconns;
	}
}

/* ------------------------------------------------------------ the chain's sink */

static void
sink_deliver(void *arg, enum dir d, const uint8_t *p, size_t n)
{
	struct conn *c = arg;

	if (c->f.echo) {		/* what comes back counts as s2c */
		c->f.bytes[S2C] += n;
		c->f.chunks[S2C]++;
		stat_bytes[S2C] += n;
		c->route->stats.bytes[S2C] += n;
	}
	c->tp->send(c, c->tparg, d == C2S && !c->f.echo, p, n);
}

static void
sink_answer(void *arg, enum dir d, const uint8_t *p, size_t n)
{
	struct conn *c = arg;

	c->tp->send(c, c->tparg, d == S2C, p, n);
}

static void
sink_eof(void *arg, enum dir d)
{
	struct conn *c = arg;

	c->tp->shut(c, c->tparg, d == C2S && !c->f.echo);
}

static void
sink_close(void *arg, const char *reason, int reset)
{
	conn_close(arg, reason, reset);
}

static void
sink_redirect(void *arg, const struct addr *to)
{
	struct conn *c = arg;

	if (c->redirect == NULL && c->state == CS_WAIT_BYTES)
		c->redirect = to;
}

static void
sink_resume(void *arg)
{
	conn_update(arg);
}

static int
sink_room(void *arg, enum dir d)
{
	struct conn *c = arg;

	return c->tp->room(c, c->tparg, d);
}

static const struct chain_sink sink = {
	.deliver = sink_deliver,
	.answer = sink_answer,
	.eof = sink_eof,
	.close = sink_close,
	.redirect = sink_redirect,
	.resume = sink_resume,
	.room = sink_room,
};

/* ------------------------------------------------------------ bytes */

void
conn_count_bytes(struct conn *c, enum dir d, size_t n)
{
	c->f.bytes[d] += n;
	c->f.chunks[d]++;
	stat_bytes[d] += n;
	c->route->stats.bytes[d] += n;
	c->last_ms = now_ms();
}

void
conn_input(struct conn *c, enum dir d, const uint8_t *p, size_t n)
{
	conn_count_bytes(c, d, n);
	if (c->chain != NULL)
		chain_input(c->chain, d, p, n);
	else
		sink_deliver(c, d, p, n);
	if (c->state == CS_WAIT_BYTES && d == C2S)
		conn_connect(c);
}

void
conn_eof(struct conn *c, enum dir d)
{
	if (c->chain != NULL)
		chain_eof(c->chain, d);
	else
		sink_eof(c, d);
	if (c->state == CS_WAIT_BYTES)
		conn_connect(c);
}

void
conn_kick(struct conn *c)
{
	if (c->chain != NULL)
		chain_kick(c->chain);
}

/* ------------------------------------------------------------ timers */

static uint64_t
idle_ms(const struct conn *c)
{
	return (uint64_t)(c->tp->sock_type == SOCK_DGRAM ? opt.udp_timeout :
	    opt.idle_timeout) * 1000;
}

static void
idle_fired(struct timer *t)
{
	struct conn *c = t->arg;
	uint64_t now = now_ms(), idle = idle_ms(c);

	if (now - c->last_ms >= idle)
		conn_close(c, c->tp->expired, 0);
	else
		timer_arm(&c->idle, c->last_ms + idle - now);
}

/* No first bytes in time (a protocol where the server speaks first). */
static void
wait_fired(struct timer *t)
{
	struct conn *c = t->arg;

	if (c->state == CS_WAIT_BYTES)
		conn_connect(c);
	conn_update(c);
}

/* ------------------------------------------------------------ opening */

void
conn_opened(struct conn *c)
{
	c->state = CS_OPEN;
	if (!c->f.echo)
		ev_connect(&c->f);
	c->tp->opened(c, c->tparg);
}

/* Starts the upstream connection (or echo) for c. */
static void
conn_connect(struct conn *c)
{
	const struct addr *t = conn_target(c);
	const struct sockname *pre = NULL;
	struct sockname to, dst, client, server, ours;
	char err[ERRLEN];
	int fd;

	timer_stop(&c->wait);
	if (t->type == A_ECHO) {
		c->f.echo = 1;
		conn_opened(c);
		return;
	}
	if (t->type == A_ORIG) {
		if (orig_target(flowaddr_get(&c->f.dst, &dst), c->tp->sock_type == SOCK_DGRAM, t,
		    &to, err, sizeof(err)) == -1) {
			conn_fail(c, err);
			return;
		}
		pre = &to;
	} else if (t == &c->route->target && c->route->tresolved)
		pre = &c->route->tname;
	if (t->type == A_EXEC) {
		c->f.exec = t->cmd;
		fd = exec_spawn(c, c->f.id, t->cmd, err, sizeof(err));
	}
	else {
		server.len = 0;
		fd = net_connect(t, c->tp->sock_type, pre, t->spoof ?
		    flowaddr_get(&c->f.client, &client) : NULL, &server, err,
		    sizeof(err));
		if (server.len > 0)
			flowaddr_set(&c->f.server, &server);
	}
	if (fd == -1) {
		conn_fail(c, err);
		return;
	}
	/*
	 * A connect() binds the socket at once: our end is known now.  Only
	 * the connect event (-v, --json) and an explicit proxy's reply name
	 * it, so no other connection pays the getsockname().
	 */
	if (t->type != A_EXEC && (opt.verbose > 0 || opt.json ||
	    addr_is_explicit(c->route->listen.type))) {
		ours.len = sizeof(ours.ss);
		if (getsockname(fd, &ours.ss.sa, &ours.len) == -1)
			ours.len = 0;
		flowaddr_set(&c->f.server_local, &ours);
	}
	c->state = CS_CONNECTING;
	switch (c->tp->connected(c, c->tparg, fd)) {
	case -1:
		conn_fail(c, "out of memory");
		break;
	case 1:				/* datagrams: open at once */
		conn_opened(c);
		break;
	}
}

struct conn *
conn_new(struct route *r, const struct sockname *peer,
    const struct sockname *dst, const struct transport *tp, void *tparg)
{
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->f.id = next_id++;
	c->f.route = r->id;
	c->f.udp = tp->sock_type == SOCK_DGRAM;
	c->f.start_ms = c->last_ms = now_ms();
	flowaddr_set(&c->f.client, peer);
	flowaddr_set(&c->f.local, &r->lname);
	flowaddr_set(&c->f.dst, dst ? dst : &r->lname);
	c->route = r;
	c->tp = tp;
	c->tparg = tparg;
	c->idle.cb = idle_fired;
	c->wait.cb = wait_fired;
	c->idle.arg = c->wait.arg = c;
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	if (++nconns > nconns_peak)
		nconns_peak = nconns;
	stat_conns++;
	r->stats.accepted++;
	r->stats.active++;
	c->state = CS_WAIT_BYTES;
	return c;
}

/* The transport learnt where the client meant to go (behind a redirect). */
void
conn_set_ends(struct conn *c, const struct sockname *local,
    const struct sockname *dst)
{
	flowaddr_set(&c->f.local, local);
	flowaddr_set(&c->f.dst, dst);
}

void
conn_set_proxied(struct conn *c, const struct sockname *client,
    const struct sockname *dst)
{
	struct sockname was;

	flowaddr_set(&c->f.peer, flowaddr_get(&c->f.client, &was));
	flowaddr_set(&c->f.client, client);
	flowaddr_set(&c->f.dst, dst);
}

void
conn_start(struct conn *c)
{
	ev_accept(&c->f);
	if (idle_ms(c) > 0)
		timer_arm(&c->idle, idle_ms(c));
	if (c->tp->start != NULL)
		c->tp->start(c, c->tparg);
	else
		conn_begin(c, 0);
}

void
conn_begin(struct conn *c, int passthrough)
{
	const struct tap *taps = NULL;
	size_t n = 0;

	if (!passthrough && c->route->set != NULL)
		c->set = tapset_hold(c->route, &taps, &n);
	if (n > 0) {
		c->chain = chain_open(taps, n, &c->f, &sink, c);
		if (c->chain == NULL) {
			conn_fail(c, "out of memory");
			return;
		}
		c->observes = chain_observes(c->chain);
		chain_start(c->chain);
		if (c->state == CS_CLOSED)
			return;
	}
	if (c->chain != NULL && c->redirect == NULL &&
	    chain_first_bytes(c->chain))
		timer_arm(&c->wait, FIRST_BYTES_WAIT_MS);
	else
		conn_connect(c);
	conn_update(c);
}
