/*
 * conn.c - connections: the life of one (accept, pick and connect the
 * upstream, relay through the chain, half-close, reset, close), and the
 * stream transport (TCP, Unix, TLS).  UDP sessions use the same life with
 * the datagram transport of udp.c.
 *
 * Each side owns an output buffer that exists only while bytes wait; a read
 * goes through one shared scratch buffer and is written on at once when the
 * other side can take it.  A side is not read while the bytes it feeds (the
 * other side's output, what the chain holds in that direction) or the bytes
 * queued back toward it (answers) are over OUT_HIGH: that is the
 * back-pressure, and it bounds memory per connection whatever the peers do.
 * A route without filters moves bulk transfers through a pipe with
 * splice(2), so the bytes never reach user memory.
 */
#include <sys/socket.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chain.h"
#include "conn.h"
#include "event.h"
#include "loop.h"
#include "net.h"
#include "opts.h"
#include "out.h"
#include "side.h"
#include "transparent.h"

#define IO_CHUNK		(64 * 1024)	/* one read from a socket */
#define OUT_HIGH		(64 * 1024)	/* stop reading above this */
#define CONNECT_TIMEOUT_MS	10000
#define HANDSHAKE_TIMEOUT_MS	10000	/* TLS from the client, whole */
#define HELLO_RETRY_MS		20	/* peeking for the rest of a hello */
#define FIRST_BYTES_WAIT_MS	1000
#define SPLICE_MIN		16384	/* a read this big turns on splice */

enum conn_state {
	CS_HELLO,			/* peeking at the client's TLS ClientHello */
	CS_WAIT_BYTES,			/* waiting for client bytes to pick upstream */
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
	struct side	 side[2];	/* [0] client, [1] server (streams) */
	struct chain	*chain;		/* NULL: no filter applies */
	unsigned	 observes:1;	/* its filters write to stdout */
	uint64_t	 last_ms;
	struct timer	 idle;		/* --idle-timeout, UDP expiry */
	struct timer	 wait;		/* connect timeout, first-bytes wait */
	struct timer	 retry;		/* peek at a partial ClientHello again */
	struct tlsinfo	*ti;		/* TLS listeners only (memory) */
	const struct addr *redirect;	/* chosen by a filter */
	unsigned	 passthrough:1;	/* TLS relayed untouched (by SNI) */
	unsigned	 tls_wait:1;	/* client handshake not finished */
	unsigned	 hello_wait:1;	/* ClientHello incomplete: retry later */
	struct conn	*next, *prev;
};

#define CLIENT(c)	(&(c)->side[0])
#define SERVER(c)	(&(c)->side[1])

void		(*conn_on_close)(void);

static struct conn	*conns;		/* open */
static struct conn	*graveyard;	/* closed, freed after the turn */
static size_t		 nconns;
static uint64_t		 next_id = 1;
static uint64_t		 stat_conns, stat_bytes[2];
static uint8_t		 scratch[IO_CHUNK];

static const struct transport stream;

static void conn_connect(struct conn *c);
static void conn_begin(struct conn *c);
static void conn_opened(struct conn *c);
static void upstream_handshake(struct conn *c);
static void hello_peek(struct conn *c);
static void side_io(void *arg, int revents);

/* ------------------------------------------------------------ helpers */

static enum dir
side_dir(const struct conn *c, const struct side *s)
{
	return s == CLIENT(c) ? C2S : S2C;
}

/* The side the bytes read in direction d go to. */
static struct side *
dst_side(struct conn *c, enum dir d)
{
	if (d == C2S)
		return c->f.echo ? CLIENT(c) : SERVER(c);
	return CLIENT(c);
}

static struct side *
src_side(struct conn *c, enum dir d)
{
	return d == C2S ? CLIENT(c) : SERVER(c);
}

static struct side *
conn_side(struct conn *c, int to_server)
{
	return to_server ? SERVER(c) : CLIENT(c);
}

/* Returns 1 if the client speaks TLS to us but its TLS is not set up. */
static int
client_tls_pending(const struct conn *c, const struct side *s)
{
	return !s->is_server && c->route->listen.tls && !c->passthrough &&
	    s->tls.ssl == NULL;
}

/* Returns 1 if bytes can be written to s now. */
static int
side_writable(const struct conn *c, const struct side *s)
{
	if (s->fd < 0 || s->wr_shut || client_tls_pending(c, s))
		return 0;
	return !s->is_server || c->state == CS_OPEN;
}

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

const struct flow *
conn_flow(const struct conn *c)
{
	return &c->f;
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

/* ------------------------------------------------------------ closing */

/*
 * Closes both sides (with RST when reset), reports the close with its
 * reason, and queues c to be freed after this loop turn, so callers up the
 * stack may still look at its state.
 */
void
conn_close(struct conn *c, const char *reason, int reset)
{
	if (c->state == CS_CLOSED)
		return;
	ev_close(&c->f, reason);
	c->state = CS_CLOSED;
	chain_close(c->chain);
	c->tp->close(c, c->tparg, reset);
	timer_stop(&c->idle);
	timer_stop(&c->wait);
	timer_stop(&c->retry);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = graveyard;
	graveyard = c;
	nconns--;
	if (conn_on_close)
		conn_on_close();
}

void
conn_fail(struct conn *c, const char *reason)
{
	ev_error(&c->f, reason);
	conn_close(c, reason, 1);
}

void
conn_update_all(void)
{
	struct conn *c;

	for (c = conns; c; c = c->next)
		conn_update(c);
}

void
conn_close_all(const char *reason)
{
	while (conns)
		conn_close(conns, reason, 0);
}

void
conn_reap(void)
{
	while (graveyard) {
		struct conn *c = graveyard;

		graveyard = c->next;
		chain_free(c->chain);
		free(c->ti);
		free(c);
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

	if (c->tp->sock_type == SOCK_DGRAM)
		return 1;		/* datagrams: no back-pressure */
	return buf_pending(&dst_side(c, d)->out) < OUT_HIGH &&
	    buf_pending(&src_side(c, d)->out) < OUT_HIGH;
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

/* ------------------------------------------------------------ input */

void
conn_input(struct conn *c, enum dir d, const uint8_t *p, size_t n)
{
	c->f.bytes[d] += n;
	c->f.chunks[d]++;
	stat_bytes[d] += n;
	c->last_ms = now_ms();
	if (c->chain != NULL)
		chain_input(c->chain, d, p, n);
	else
		sink_deliver(c, d, p, n);
	if (c->state == CS_WAIT_BYTES && d == C2S)
		conn_connect(c);
}

/* The end of direction d was read: through the chain, then FIN. */
static void
conn_eof(struct conn *c, enum dir d)
{
	if (c->chain != NULL)
		chain_eof(c->chain, d);
	else
		sink_eof(c, d);
	if (c->state == CS_WAIT_BYTES)
		conn_connect(c);
}

/* ------------------------------------------------------------ streams */

static int
side_can_read(struct conn *c, struct side *s)
{
	enum dir d = side_dir(c, s);
	struct side *dst;

	if (s->fd < 0 || s->rd_eof || c->state == CS_CLOSED)
		return 0;
	if (c->state == CS_HELLO)
		return !s->is_server && !c->hello_wait;
	if (s->is_server && c->state != CS_OPEN)
		return 0;
	if (client_tls_pending(c, s))
		return 0;
	if (!s->is_server && c->state == CS_OPEN && !c->f.echo &&
	    SERVER(c)->fd < 0)
		return 0;
	if (c->observes && out_blocked())
		return 0;	/* stdout's reader is behind: wait for it */
	dst = dst_side(c, d);
	return buf_pending(&dst->out) < OUT_HIGH && dst->inpipe == 0 &&
	    buf_pending(&s->out) < OUT_HIGH && conn_held(c, d) < OUT_HIGH;
}

static void
side_update(struct conn *c, struct side *s)
{
	short ev = 0;

	if (s->fd < 0 || c->state == CS_CLOSED)
		return;
	if (side_can_read(c, s))
		ev |= POLLIN;
	if (s->is_server && c->state == CS_CONNECTING)
		ev |= s->tls.ssl ? s->tls.want : POLLOUT;
	else if (side_writable(c, s) && (side_pending(s) > 0 ||
	    (s->want_shut && !s->wr_shut)))
		ev |= POLLOUT;
	if (s->tls.ssl != NULL && c->state != CS_CONNECTING)
		ev |= s->tls.want;
	loop_set(s->slot, ev);
}

static void
stream_update(struct conn *c, void *tp)
{
	(void)tp;
	side_update(c, CLIENT(c));
	side_update(c, SERVER(c));
}

/* Writes what waits for s, if it can be written.  Returns 0 or -1 (closed). */
static int
side_write(struct conn *c, struct side *s)
{
	char why[ERRLEN];

	if (!side_writable(c, s))
		return 0;
	if (side_flush(s, why, sizeof(why)) == -1) {
		conn_fail(c, why);
		return -1;
	}
	return 0;
}

/* Sends bytes to a side: written at once when nothing waits, else queued. */
static void
stream_send(struct conn *c, void *tp, int to_server, const uint8_t *p,
    size_t n)
{
	struct side *s = conn_side(c, to_server);
	char why[ERRLEN];
	ssize_t w;

	(void)tp;
	if (c->state == CS_CLOSED || s->wr_shut)
		return;
	if (side_writable(c, s) && side_pending(s) == 0) {
		w = side_raw_write(s, p, n, why, sizeof(why));
		if (w == -2) {
			conn_fail(c, why);
			return;
		}
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		}
	}
	if (n > 0 && buf_append(&s->out, p, n) == -1) {
		conn_fail(c, "out of memory");
		return;
	}
	side_update(c, s);
}

static void
stream_shut(struct conn *c, void *tp, int to_server)
{
	struct side *s = conn_side(c, to_server);

	(void)tp;
	s->want_shut = 1;
	(void)side_write(c, s);
}

static void
stream_close(struct conn *c, void *tp, int reset)
{
	(void)tp;
	side_close(CLIENT(c), reset);
	side_close(SERVER(c), reset);
}

/* Closes c once both directions are done (EOF read and passed on). */
static void
conn_check_done(struct conn *c)
{
	int d;

	if (c->state != CS_OPEN)
		return;
	for (d = 0; d < (c->f.echo ? 1 : 2); d++)
		if (!src_side(c, d)->rd_eof || !dst_side(c, d)->wr_shut)
			return;
	conn_close(c, "closed", 0);
}

static void
side_eof(struct conn *c, struct side *s)
{
	s->rd_eof = 1;
	conn_eof(c, side_dir(c, s));
}

/* Returns 1 if reads from s may go through a pipe to the other side. */
static int
can_splice(const struct conn *c, const struct side *s)
{
	return c->chain == NULL && !c->f.echo && s->tls.ssl == NULL &&
	    !c->route->listen.tls && !c->route->target.tls &&
	    c->f.client.ss.ss_family != AF_UNIX;
}

/*
 * Moves one read's worth from s to dst through a pipe.  Returns 1 when done
 * (whatever happened), 0 to fall back to a copying read.
 */
static int
splice_read(struct conn *c, struct side *s, struct side *dst)
{
	char why[ERRLEN];
	ssize_t n = side_splice(s, dst, why, sizeof(why));
	enum dir d = side_dir(c, s);

	if (n > 0) {
		c->f.bytes[d] += (size_t)n;
		c->f.chunks[d]++;
		stat_bytes[d] += (size_t)n;
		c->last_ms = now_ms();
		(void)side_write(c, dst);
	} else if (n == 0)
		side_eof(c, s);
	else if (n == -2)
		conn_fail(c, why);
	return n != -3;
}

static void
side_read_chunk(struct conn *c, struct side *s)
{
	enum dir d = side_dir(c, s);
	struct side *dst = dst_side(c, d);
	char why[ERRLEN];
	ssize_t n;

	if (c->state == CS_HELLO) {
		hello_peek(c);
		return;
	}
	if (s->splice && buf_pending(&dst->out) == 0 && c->state == CS_OPEN &&
	    splice_read(c, s, dst))
		return;
	n = side_read(s, scratch, sizeof(scratch), why, sizeof(why));
	if (s->tls.ssl != NULL && c->tls_wait && !s->is_server &&
	    tls_ready(&s->tls)) {
		c->tls_wait = 0;	/* the client's handshake is done */
		s->tls.hs = 0;
		timer_stop(&c->wait);
	}
	if (n == -1)
		return;
	if (n == -2) {
		conn_fail(c, why);
		return;
	}
	if (n == 0) {
		side_eof(c, s);
		return;
	}
	if (n >= SPLICE_MIN && can_splice(c, s))
		s->splice = 1;
	conn_input(c, d, scratch, (size_t)n);
}

static void
connect_done(struct conn *c)
{
	struct side *sv = SERVER(c);
	const struct addr *t = c->redirect ? c->redirect : &c->route->target;
	char why[ERRLEN], a[ADDRSTR];
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(sv->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		sockname_str(&c->f.server, a, sizeof(a));
		snprintf(why, sizeof(why), "connect %s: %s", a, strerror(err));
		conn_fail(c, why);
		return;
	}
	if (c->route->target.tls && !c->passthrough) {
		if (tls_upstream_start(&sv->tls, c->route, sv->fd, c->f.sni,
		    t->host, &c->f.server, t->verify, c->ti, why,
		    sizeof(why)) == -1) {
			conn_fail(c, why);
			return;
		}
		upstream_handshake(c);
		return;
	}
	conn_opened(c);
}

/*
 * The upstream is connected (and its TLS set up): start the client's TLS
 * when we forge its certificate from the upstream's, and let bytes flow.
 */
static void
conn_opened(struct conn *c)
{
	struct side *cl = CLIENT(c), *sv = SERVER(c);
	char why[ERRLEN];
	struct x509_st *up = NULL;
	int rc;

	timer_stop(&c->wait);
	c->state = CS_OPEN;
	if (!c->f.echo)
		ev_connect(&c->f);
	if (client_tls_pending(c, cl)) {
		if (sv->tls.ssl != NULL)
			up = tls_peer_cert(&sv->tls);
		rc = tls_client_start(&cl->tls, c->route, cl->fd, up, c->f.sni,
		    c->ti, why, sizeof(why));
		X509_free_ref(up);
		if (rc == -1) {
			conn_fail(c, why);
			return;
		}
	}
	if (c->tls_wait)
		timer_arm(&c->wait, HANDSHAKE_TIMEOUT_MS);
	if (!c->f.echo)
		(void)side_write(c, sv);
	if (c->state != CS_CLOSED)
		(void)side_write(c, cl);
}

/* Drives the upstream's TLS handshake; opens the connection when done. */
static void
upstream_handshake(struct conn *c)
{
	char why[ERRLEN];
	int rc = tls_handshake(&SERVER(c)->tls, c->ti, why, sizeof(why));

	if (rc == -1)
		conn_fail(c, why);
	else if (rc == 1)
		conn_opened(c);
}

/*
 * Peeks at the client's first bytes for a whole ClientHello: its SNI picks
 * passthrough and the upstream's name, its ALPN offer goes upstream.
 */
static void
hello_peek(struct conn *c)
{
	struct side *cl = CLIENT(c);
	struct hello h;
	char why[ERRLEN];
	ssize_t n;
	int rc;

	n = recv(cl->fd, scratch, sizeof(scratch), MSG_PEEK);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			snprintf(why, sizeof(why), errno == ECONNRESET ?
			    "reset by client" : "read from client: %s",
			    strerror(errno));
			conn_fail(c, why);
		}
		return;
	}
	if (n == 0) {
		conn_fail(c, "client closed before its TLS ClientHello");
		return;
	}
	rc = hello_parse(scratch, (size_t)n, &h);
	if (rc == 0 && (size_t)n < sizeof(scratch)) {
		/* peeked bytes stay readable: look again a little later */
		c->hello_wait = 1;
		timer_arm(&c->retry, HELLO_RETRY_MS);
		return;
	}
	if (rc != 1) {
		conn_fail(c, "not a TLS ClientHello from the client");
		return;
	}
	if (h.sni_bad)
		diag_err("tproxy: #%llu invalid SNI in the ClientHello "
		    "ignored", (unsigned long long)c->f.id);
	if ((c->ti = calloc(1, sizeof(*c->ti))) == NULL) {
		conn_fail(c, "out of memory");
		return;
	}
	c->ti->hello = h;
	if (h.sni[0] != '\0')
		c->f.sni = c->ti->hello.sni;
	if (c->route->listen.passthrough != NULL && c->f.sni != NULL &&
	    re_search(c->route->listen.passthrough, (const uint8_t *)c->f.sni,
	    strlen(c->f.sni)))
		c->passthrough = 1;
	c->state = CS_WAIT_BYTES;
	conn_begin(c);
}

static void
side_io(void *arg, int revents)
{
	struct side *s = arg;
	struct conn *c = (struct conn *)((char *)(s - (s->is_server ? 1 : 0)) -
	    offsetof(struct conn, side));
	int i;

	if (c->state == CS_CLOSED)
		return;
	if (s->is_server && c->state == CS_CONNECTING) {
		if (s->tls.ssl != NULL)
			upstream_handshake(c);
		else
			connect_done(c);
	} else {
		if ((revents & (POLLOUT | POLLERR | POLLHUP)) &&
		    (side_pending(s) > 0 || (s->want_shut && !s->wr_shut)))
			if (side_write(c, s) == -1)
				return;
		if ((revents & (POLLIN | POLLHUP | POLLERR | (s->tls.ssl ?
		    s->tls.want : 0))) && side_can_read(c, s))
			side_read_chunk(c, s);
	}
	/* plaintext OpenSSL already holds wakes no poll(): read it now */
	for (i = 0; i < 16 && c->state != CS_CLOSED; i++) {
		if (tls_pending(&CLIENT(c)->tls) && side_can_read(c, CLIENT(c)))
			side_read_chunk(c, CLIENT(c));
		else if (tls_pending(&SERVER(c)->tls) &&
		    side_can_read(c, SERVER(c)))
			side_read_chunk(c, SERVER(c));
		else
			break;
	}
	if (c->state == CS_CLOSED)
		return;
	if (c->chain != NULL && (revents & POLLOUT))
		chain_kick(c->chain);	/* room again for held bytes */
	if (c->state == CS_CLOSED)
		return;
	conn_check_done(c);
	conn_update(c);
}

/* The upstream socket is connecting: wait for it to be writable. */
static int
stream_connected(struct conn *c, void *tp, int fd)
{
	struct side *sv = SERVER(c);

	(void)tp;
	sv->fd = fd;
	if (loop_add(fd, POLLOUT, side_io, sv, &sv->slot) == -1) {
		close(fd);
		sv->fd = -1;
		return -1;
	}
	c->state = CS_CONNECTING;
	timer_arm(&c->wait, CONNECT_TIMEOUT_MS);
	return 0;
}

static const struct transport stream = {
	.sock_type = SOCK_STREAM,
	.expired = "idle timeout",
	.connected = stream_connected,
	.send = stream_send,
	.shut = stream_shut,
	.update = stream_update,
	.close = stream_close,
};

/* ------------------------------------------------------------ timers */

static void
idle_fired(struct timer *t)
{
	struct conn *c = t->arg;
	uint64_t now = now_ms();
	uint64_t idle = (uint64_t)(c->tp->sock_type == SOCK_DGRAM ?
	    opt.udp_timeout : opt.idle_timeout) * 1000;

	if (now - c->last_ms >= idle)
		conn_close(c, c->tp->expired, 0);
	else
		timer_arm(&c->idle, c->last_ms + idle - now);
}

static void
retry_fired(struct timer *t)
{
	struct conn *c = t->arg;

	c->hello_wait = 0;		/* time to peek again */
	conn_update(c);
}

static void
wait_fired(struct timer *t)
{
	struct conn *c = t->arg;

	if (c->state == CS_HELLO)
		conn_fail(c, "no TLS ClientHello from the client in time");
	else if (c->state == CS_WAIT_BYTES)
		conn_connect(c);
	else if (c->state == CS_CONNECTING)
		conn_fail(c, SERVER(c)->tls.ssl ? "TLS handshake with "
		    "upstream timed out" : "connect timeout");
	else if (c->tls_wait)
		conn_fail(c, "TLS handshake with client timed out");
	conn_update(c);
}

/* ------------------------------------------------------------ opening */

/* Starts the upstream connection (or echo) for c. */
static void
conn_connect(struct conn *c)
{
	const struct addr *t = c->redirect ? c->redirect : &c->route->target;
	const struct sockname *pre = NULL;
	struct sockname to;
	char err[ERRLEN];
	int fd;

	timer_stop(&c->wait);
	if (t->type == A_ECHO) {
		c->f.echo = 1;
		conn_opened(c);
		return;
	}
	if (t->type == A_ORIG) {
		if (orig_target(&c->f.dst, c->tp->sock_type == SOCK_DGRAM, t,
		    &to, err, sizeof(err)) == -1) {
			conn_fail(c, err);
			return;
		}
		pre = &to;
	} else if (t == &c->route->target && c->route->tresolved)
		pre = &c->route->tname;
	fd = net_connect(t, c->tp->sock_type, pre, t->spoof ? &c->f.client :
	    NULL, &c->f.server, err, sizeof(err));
	if (fd == -1) {
		conn_fail(c, err);
		return;
	}
	/* a connect() binds the socket at once: our end is known now */
	c->f.server_local.len = sizeof(c->f.server_local.ss);
	if (getsockname(fd, (struct sockaddr *)&c->f.server_local.ss,
	    &c->f.server_local.len) == -1)
		c->f.server_local.len = 0;
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
	c->f.client = *peer;
	c->f.local = r->lname;
	c->f.dst = dst ? *dst : r->lname;
	c->route = r;
	c->tp = tp;
	c->tparg = tparg;
	side_init(CLIENT(c), 0);
	side_init(SERVER(c), 1);
	c->idle.cb = idle_fired;
	c->wait.cb = wait_fired;
	c->retry.cb = retry_fired;
	c->idle.arg = c->wait.arg = c->retry.arg = c;
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	nconns++;
	stat_conns++;
	c->state = CS_WAIT_BYTES;
	return c;
}

struct conn *
conn_stream(struct route *r, int fd, const struct sockname *peer)
{
	struct conn *c = conn_new(r, peer, NULL, &stream, NULL);
	struct side *cl;
	char err[ERRLEN];
	int one = 1;

	if (c == NULL) {
		diag_err("tproxy: accept: out of memory");
		close(fd);
		return NULL;
	}
	cl = CLIENT(c);
	cl->fd = fd;
	c->f.local.len = sizeof(c->f.local.ss);
	if (r->listen.type == A_UNIX_LISTEN ||
	    getsockname(fd, (struct sockaddr *)&c->f.local.ss,
	    &c->f.local.len) == -1)
		c->f.local = r->lname;
	c->f.dst = c->f.local;
	if (peer->ss.ss_family != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	if (loop_add(fd, POLLIN, side_io, cl, &cl->slot) == -1) {
		conn_close(c, "out of memory", 1);
		return NULL;
	}
	/* behind a redirect, the accept event names the original destination */
	if (r->target.type == A_ORIG && r->listen.type == A_TCP_LISTEN &&
	    orig_lookup(fd, &c->f.local, &c->f.dst, err, sizeof(err)) == -1) {
		ev_accept(&c->f);
		conn_fail(c, err);
		return NULL;
	}
	return c;
}

void
conn_start(struct conn *c)
{
	uint64_t idle = (uint64_t)(c->tp->sock_type == SOCK_DGRAM ?
	    opt.udp_timeout : opt.idle_timeout) * 1000;

	ev_accept(&c->f);
	if (idle > 0)
		timer_arm(&c->idle, idle);
	if (c->route->listen.tls) {
		/*
		 * The SNI first: it picks passthrough and the upstream's name;
		 * the client's handshake goes on once the upstream's is done.
		 */
		c->tls_wait = 1;
		timer_arm(&c->wait, HANDSHAKE_TIMEOUT_MS);
		c->state = CS_HELLO;
		conn_update(c);
		return;
	}
	conn_begin(c);
}

/* Opens the chain (the SNI is known by now) and picks the upstream. */
static void
conn_begin(struct conn *c)
{
	size_t n = c->passthrough ? 0 : c->route->ntaps;

	if (n > 0) {
		c->chain = chain_open(c->route->taps, n, &c->f, &sink, c);
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
