/*
 * stream.c - the stream transport: TCP and Unix connections, and TLS on
 * either side.  Relay, back-pressure, half-close, splice, the PROXY
 * header (streampp.c: read before anything else on a proxy-protocol
 * listener, written first toward a proxy-protocol target), the TLS steps (the ClientHello
 * first, then the upstream's handshake, then the client's with a forged
 * certificate), and the handshake of the explicit proxy listeners
 * (socks5-listen, http-listen: explicit.c), which names the original
 * destination before anything else; there the reply waits for the
 * upstream's connect, and on a tls listener the ClientHello comes after it.
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

#include "conn.h"
#include "event.h"
#include "explicit.h"
#include "loop.h"
#include "net.h"
#include "out.h"
#include "proxy.h"
#include "side.h"
#include "stream.h"
#include "streamint.h"
#include "tlsdetect.h"
#include "transparent.h"

static uint8_t		 scratch[IO_CHUNK];

static void upstream_handshake(struct stream *st);
static void side_io(void *arg, int revents);

/* ------------------------------------------------------------ helpers */

static enum dir
side_dir(const struct stream *st, const struct side *s)
{
	return s == CLIENT(st) ? C2S : S2C;
}

/* The side the bytes read in direction d go to. */
static struct side *
dst_side(struct stream *st, enum dir d)
{
	if (d == C2S)
		return conn_flow(st->c)->echo ? CLIENT(st) : SERVER(st);
	return CLIENT(st);
}

static struct side *
src_side(struct stream *st, enum dir d)
{
	return d == C2S ? CLIENT(st) : SERVER(st);
}

/* Returns 1 if the client speaks TLS to us but its TLS is not set up. */
static int
client_tls_pending(const struct stream *st, const struct side *s)
{
	return !s->is_server && st->cl_tls && !st->passthrough &&
	    s->tls.ssl == NULL;
}

/* Returns 1 if bytes can be written to s now. */
static int
side_writable(const struct stream *st, const struct side *s)
{
	if (s->fd < 0 || s->wr_shut || client_tls_pending(st, s))
		return 0;
	return !s->is_server || conn_open(st->c);
}

static int
side_can_read(struct stream *st, struct side *s)
{
	struct conn *c = st->c;
	enum dir d = side_dir(st, s);
	struct side *dst;

	if (s->fd < 0 || s->rd_eof || conn_closed(c))
		return 0;
	if (st->pp_wait || st->xp_wait || st->hello || st->detect)
		return !s->is_server;
	if (st->hp_stop && !s->is_server)
		return 0;		/* a refused request: no more */
	if (st->upgrade && !(s->is_server && st->await_reply))
		return 0;	/* the bytes that follow are TLS */
	if (st->starttls && !s->is_server && conn_connecting(c))
		return 0;	/* a ClientHello now finds the upstream open */
	if (s->is_server && !conn_open(c))
		return 0;
	if (client_tls_pending(st, s))
		return 0;
	if (!s->is_server && conn_open(c) && !conn_flow(c)->echo &&
	    SERVER(st)->fd < 0)
		return 0;
	if (conn_observes(c) && out_blocked())
		return 0;	/* stdout's reader is behind: wait for it */
	dst = dst_side(st, d);
	return buf_pending(&dst->out) < OUT_HIGH && dst->inpipe == 0 &&
	    buf_pending(&s->out) < BACK_HIGH && conn_held(c, d) < OUT_HIGH;
}

static void
side_update(struct stream *st, struct side *s)
{
	short ev = 0;

	if (s->fd < 0 || conn_closed(st->c))
		return;
	if (s->is_server && (st->hello || st->detect)) {
		loop_set(s->slot, 0);	/* connected, waiting for the client */
		return;
	}
	if (side_can_read(st, s))
		ev |= POLLIN;
	if (s->is_server && conn_connecting(st->c))
		ev |= s->tls.ssl ? s->tls.want : POLLOUT;
	else if (side_writable(st, s) && (side_pending(s) > 0 ||
	    (s->want_shut && !s->wr_shut)))
		ev |= POLLOUT;
	if (s->tls.ssl != NULL && !conn_connecting(st->c))
		ev |= s->tls.want;
	loop_set(s->slot, ev);
}

static void
stream_update(struct conn *c, void *tp)
{
	struct stream *st = tp;

	(void)c;
	side_update(st, CLIENT(st));
	side_update(st, SERVER(st));
}

/* ------------------------------------------------------------ writing */

/* Writes what waits for s, if it can be written.  Returns 0 or -1 (closed). */
static int
side_write(struct stream *st, struct side *s)
{
	char why[ERRLEN];

	if (!side_writable(st, s))
		return 0;
	if (side_flush(s, why, sizeof(why)) == -1) {
		conn_fail(st->c, why);
		return -1;
	}
	return 0;
}

/* Sends bytes to a side: written at once when nothing waits, else queued. */
static void
stream_send(struct conn *c, void *tp, int to_server, const uint8_t *p,
    size_t n)
{
	struct stream *st = tp;
	struct side *s = to_server ? SERVER(st) : CLIENT(st);
	char why[ERRLEN];
	ssize_t w;

	if (conn_closed(c) || s->wr_shut)
		return;
	if (side_writable(st, s) && side_pending(s) == 0) {
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
	side_update(st, s);
}

static void hp_refusal(struct stream *st);

static void
stream_shut(struct conn *c, void *tp, int to_server)
{
	struct stream *st = tp;
	struct side *s = to_server ? SERVER(st) : CLIENT(st);

	(void)c;
	if (!to_server && st->hp_stop)
		hp_refusal(st);
	s->want_shut = 1;
	(void)side_write(st, s);
}

static int
stream_room(struct conn *c, void *tp, enum dir d)
{
	struct stream *st = tp;

	(void)c;
	return buf_pending(&dst_side(st, d)->out) < OUT_HIGH &&
	    buf_pending(&src_side(st, d)->out) < BACK_HIGH;
}

static void
stream_close(struct conn *c, void *tp, int reset)
{
	struct stream *st = tp;
	uint8_t r[XP_REPLY_MAX];
	struct sockname bnd;
	size_t n;

	if (st->xp_pending && CLIENT(st)->fd >= 0) {
		/* the upstream was not reached: the proxy's failure reply */
		n = xp_result(st->xp, conn_why(c),
		    flowaddr_get(&conn_flow(c)->server_local, &bnd), r,
		    sizeof(r));
		if (n > 0 && send(CLIENT(st)->fd, r, n, MSG_NOSIGNAL |
		    MSG_DONTWAIT) == (ssize_t)n) {
			shutdown(CLIENT(st)->fd, SHUT_WR);
			side_close(CLIENT(st), 0);
		}
		st->xp_pending = 0;
	}
	side_close(CLIENT(st), reset);
	side_close(SERVER(st), reset);
	timer_stop(&st->timer);
	buf_free(&st->hbuf);
}

static void
stream_free(void *tp)
{
	struct stream *st = tp;

	free(st->ti);
	free(st->pp);
	xp_free(st->xp);
	hp_free(st->hp);
	buf_free(&st->hbuf);
	free(st);
}

/* Closes the connection once both directions are done. */
static void
check_done(struct stream *st)
{
	int d;

	if (!conn_open(st->c))
		return;
	/* a command's output ended and reached the client: it is over */
	if (conn_target(st->c)->type == A_EXEC && SERVER(st)->rd_eof &&
	    CLIENT(st)->wr_shut) {
		conn_close(st->c, "command ended", 0);
		return;
	}
	for (d = 0; d < (conn_flow(st->c)->echo ? 1 : 2); d++)
		if (!src_side(st, d)->rd_eof || !dst_side(st, d)->wr_shut)
			return;
	conn_close(st->c, "closed", 0);
}

/* ------------------------------------------------------------ reading */

/*
 * The end of what s sends.  A TLS stream that ended without close_notify
 * may have been cut short by anyone on the path: the side it goes to gets
 * its end the same way, without close_notify, so its peer can tell.
 */
static void
side_eof(struct stream *st, struct side *s)
{
	s->rd_eof = 1;
	if (s->tls.ssl != NULL && !tls_eof_clean(&s->tls))
		dst_side(st, side_dir(st, s))->cut = 1;
	conn_eof(st->c, side_dir(st, s));
}

/* Returns 1 if reads from s may go through a pipe to the other side. */
static int
can_splice(const struct stream *st, const struct side *s)
{
	return !conn_filtered(st->c) && !conn_flow(st->c)->echo &&
	    (st->hp == NULL || s->is_server) &&
	    s->tls.ssl == NULL && !st->cl_tls && !st->up_tls &&
	    !st->starttls && conn_flow(st->c)->client.ip.family != AF_UNIX;
}

/*
 * Moves one read's worth from s to dst through a pipe.  Returns 1 when done
 * (whatever happened), 0 to fall back to a copying read.
 */
static int
splice_read(struct stream *st, struct side *s, struct side *dst)
{
	char why[ERRLEN];
	ssize_t n = side_splice(s, dst, why, sizeof(why));

	if (n > 0) {
		conn_count_bytes(st->c, side_dir(st, s), (size_t)n);
		(void)side_write(st, dst);
	} else if (n == 0)
		side_eof(st, s);
	else if (n == -2)
		conn_fail(st->c, why);
	return n != -3;
}

static void hello_read(struct stream *st);
static void hp_input(struct stream *st, const uint8_t *p, size_t n);
static void upgrade_heard(struct stream *st);
static void detect_read(struct stream *st);
static int starttls_peek(struct stream *st);
static void hello_begin(struct stream *st);

static void
side_read_chunk(struct stream *st, struct side *s)
{
	enum dir d = side_dir(st, s);
	struct side *dst = dst_side(st, d);
	char why[ERRLEN];
	ssize_t n;

	if (st->detect) {
		detect_read(st);
		return;
	}
	if (st->hello) {
		hello_read(st);
		return;
	}
	if (st->starttls && !s->is_server && starttls_peek(st))
		return;
	if (s->splice && buf_pending(&dst->out) == 0 && conn_open(st->c) &&
	    splice_read(st, s, dst))
		return;
	n = side_read(s, scratch, sizeof(scratch), why, sizeof(why));
	if (s->tls.ssl != NULL && st->tls_wait && !s->is_server &&
	    tls_ready(&s->tls)) {
		st->tls_wait = 0;	/* the client's handshake is done */
		s->tls.hs = 0;
		timer_stop(&st->timer);
	}
	if (n == -1)
		return;
	if (n == -2) {
		conn_fail(st->c, why);
		return;
	}
	if (n == 0) {
		side_eof(st, s);
		return;
	}
	if (n >= SPLICE_MIN && can_splice(st, s))
		s->splice = 1;
	if (st->upgrade && s->is_server)
		upgrade_heard(st);
	if (st->hp != NULL && d == C2S)
		hp_input(st, scratch, (size_t)n);
	else
		conn_input(st->c, d, scratch, (size_t)n);
}

/* ------------------------------------------------------------ explicit proxy */

/* Sends a handshake reply on the client's socket: 0, or -1. */
static int
xp_send(struct stream *st, const uint8_t *p, size_t n)
{
	if (n == 0)
		return 0;
	return send(CLIENT(st)->fd, p, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/*
 * The proxy request is refused (why, which outlives the call when drain):
 * the accept and error events, then a close.  With drain, what the client
 * still sends is read and dropped first (until its EOF, at most
 * XP_DRAIN_MS), so that it reads the response rather than a reset.
 */
static void
xp_refuse(struct stream *st, const char *why, int drain)
{
	struct conn *c = st->c;

	ev_accept(conn_flow(c));
	ev_error(conn_flow(c), why);
	if (!drain) {
		conn_close(c, why, 0);
		return;
	}
	(void)shutdown(CLIENT(st)->fd, SHUT_WR);
	st->xp_drain = 1;
	st->hp_why = why;
	timer_arm(&st->timer, XP_DRAIN_MS);
}

/* Reads and drops what a refused client still sends, up to its EOF. */
static void
xp_drain(struct stream *st)
{
	ssize_t n;
	int i;

	for (i = 0; i < 16; i++) {
		n = recv(CLIENT(st)->fd, scratch, sizeof(scratch), 0);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		conn_close(st->c, st->hp_why, 0);
		return;
	}
}

/*
 * The client named its destination: resolved here (a name with a blocking
 * getaddrinfo(), as for tcp:NAME targets), it becomes the original
 * destination, and the connection starts as any other.  An absolute-URI
 * request's head goes first, in origin form.
 */
static void
xp_dest(struct stream *st)
{
	struct conn *c = st->c;
	struct sockname dst, local, none = { .len = 0 };
	char why[ERRLEN];
	uint8_t r[XP_REPLY_MAX], *head = NULL;
	size_t n, hl = 0;

	if (net_resolve(xp_host(st->xp), xp_port(st->xp), 0, &dst, why,
	    sizeof(why)) == -1) {
		n = xp_result(st->xp, why, &none, r, sizeof(r));
		(void)xp_send(st, r, n);
		xp_refuse(st, why, 0);
		return;
	}
	flowaddr_get(&conn_flow(c)->local, &local);
	conn_set_ends(c, &local, &dst);
	if (!host_is_literal(xp_host(st->xp)))
		conn_set_host(c, xp_host(st->xp));
	st->xp_wait = 0;
	timer_stop(&st->timer);
	if (xp_is_forward(st->xp)) {
		if ((st->hp = xp_forward(st->xp, &head, &hl)) == NULL) {
			proxy_fail(st, "out of memory");
			return;
		}
		st->passthrough = 1;	/* plain HTTP, even on a tls listener */
	}
	xp_release(st->xp);
	st->xp_pending = 1;
	conn_start(c);
	if (head != NULL && !conn_closed(c))
		conn_input(c, C2S, head, hl);
	free(head);
}

/*
 * Reads the client's proxy request: each message is peeked at, parsed
 * with what came before it, and only its own bytes are taken out of the
 * socket, as for the PROXY header.
 */
static void
xp_read(struct stream *st)
{
	struct xp_out o;
	char why[ERRLEN];
	uint8_t *room;
	size_t cap, take;
	ssize_t n;
	enum xp_rc rc;

	if (st->xp_drain) {
		xp_drain(st);
		return;
	}
	do {
		room = xp_room(st->xp, &cap);
		n = recv(CLIENT(st)->fd, room, cap, MSG_PEEK);
		if (n <= 0) {
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			snprintf(why, sizeof(why), n == 0 ? "client closed "
			    "before its proxy request" : "read from client: %s",
			    strerror(errno));
			proxy_fail(st, why);
			return;
		}
		rc = xp_feed(st->xp, (size_t)n, &take, &o);
		if (take > 0 && recv(CLIENT(st)->fd, room, take, 0) !=
		    (ssize_t)take) {
			proxy_fail(st, "read from client: lost the proxy "
			    "request");
			return;
		}
		if (xp_send(st, o.reply, o.rlen) == -1) {
			snprintf(why, sizeof(why), "write to client: %s",
			    strerror(errno));
			proxy_fail(st, why);
			return;
		}
		if (rc == XP_FAIL) {
			xp_refuse(st, o.why, o.drain);
			return;
		}
	} while (rc == XP_NEXT);
	if (rc == XP_DEST)
		xp_dest(st);
}

/*
 * The upstream is connected: the proxy's success reply (none for a
 * forwarded request).  On a tls listener the ClientHello comes next.
 * Returns 0, or -1 after failing the connection.
 */
static int
xp_reached(struct stream *st)
{
	struct conn *c = st->c;
	const struct route *r = conn_route(c);
	uint8_t rep[XP_REPLY_MAX];
	struct sockname bnd;
	size_t n = xp_result(st->xp, NULL,
	    flowaddr_get(&conn_flow(c)->server_local, &bnd), rep, sizeof(rep));

	st->xp_pending = 0;
	if (xp_send(st, rep, n) == -1) {
		conn_fail(c, "write to client: the proxy's reply");
		return -1;
	}
	if (r->listen.tls_detect == TLS_AUTO) {
		st->detect = 1;		/* the client's first bytes tell */
		timer_arm(&st->timer, (uint64_t)r->listen.detect_ms);
	} else if (r->listen.tls_detect == TLS_STARTTLS)
		st->starttls = 1;
	else if (r->listen.tls && !st->passthrough)
		hello_begin(st);
	return 0;
}

/* A refused forwarded request: its response, after the upstream's. */
static void
hp_refusal(struct stream *st)
{
	char resp[XP_REPLY_MAX];

	if (st->hp_status == 0)
		return;
	stream_send(st->c, st, 0, (const uint8_t *)resp,
	    hp_response(resp, sizeof(resp), st->hp_status, st->hp_why));
	st->hp_status = 0;
}

/* A refused forwarded request: the end once its response is out. */
static void
hp_done(struct stream *st)
{
	if (st->hp_stop && CLIENT(st)->wr_shut && !conn_closed(st->c))
		conn_close(st->c, st->hp_why, 0);
}

static void
hp_emit_up(void *arg, const uint8_t *p, size_t n)
{
	struct stream *st = arg;

	if (!conn_closed(st->c) && n > 0)
		conn_input(st->c, C2S, p, n);
}

/*
 * The client's bytes on a forwarding http-listen connection: each request
 * head rewritten.  A refused request ends the client's stream there: the
 * upstream gets its end, answers what came before, and once it is done
 * (stream_shut()), the refusal follows its responses.
 */
static void
hp_input(struct stream *st, const uint8_t *p, size_t n)
{
	const char *why = NULL;
	int status = 0;

	if (hp_feed(st->hp, p, n, hp_emit_up, st, &status, &why) == 0)
		return;
	if (conn_closed(st->c))
		return;
	ev_error(conn_flow(st->c), why);
	if (status == 0) {
		conn_close(st->c, why, 1);
		return;
	}
	st->hp_stop = 1;
	st->hp_why = why;
	st->hp_status = status;
	conn_eof(st->c, C2S);
}

/* ------------------------------------------------------------ opening */

/* The upstream socket is connected: the PROXY header, TLS, or open. */
static void
upstream_go(struct stream *st)
{
	struct conn *c = st->c;
	struct side *sv = SERVER(st);
	const struct addr *t = conn_target(c);
	const char *name = t->host;
	char why[ERRLEN];

	if (name[0] == '\0' && st->xp != NULL)
		name = xp_host(st->xp);	/* the name the client asked for */
	if (t->proxy_protocol && proxy_send(st, t->proxy_protocol) == -1)
		return;
	if (st->up_tls && !st->passthrough) {
		if (tls_upstream_start(&sv->tls, conn_route(c), sv->fd,
		    conn_flow(c)->sni, name, &conn_flow(c)->server,
		    t->verify, st->ti, why, sizeof(why)) == -1) {
			conn_fail(c, why);
			return;
		}
		upstream_handshake(st);
		return;
	}
	conn_opened(c);
}

/*
 * The upstream's connect ended (revents from the loop): writable without an
 * error or hang-up is a success, so only a failure costs a getsockopt().
 */
static void
connect_done(struct stream *st, int revents)
{
	struct conn *c = st->c;
	struct side *sv = SERVER(st);
	char why[ERRLEN], a[ADDRSTR];
	int err = 0;
	socklen_t len = sizeof(err);

	if (((revents & (POLLERR | POLLHUP)) || !(revents & POLLOUT)) &&
	    getsockopt(sv->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		flowaddr_str(&conn_flow(c)->server, a, sizeof(a));
		snprintf(why, sizeof(why), "connect %s: %s", a, strerror(err));
		conn_fail(c, why);
		return;
	}
	if (st->xp_pending && xp_reached(st) == -1)
		return;
	if (!st->hello && !st->detect)
		upstream_go(st);
}

/*
 * The upstream is connected (and its TLS set up): start the client's TLS
 * when we forge its certificate from the upstream's, and let bytes flow.
 */
/*
 * Starts the client's TLS, with a certificate forged from the upstream's
 * (or the route's own), the ClientHello read so far first.  Returns 0, or
 * -1 after failing the connection.
 */
static int
client_tls_begin(struct stream *st)
{
	struct conn *c = st->c;
	struct side *cl = CLIENT(st), *sv = SERVER(st);
	char why[ERRLEN];
	struct x509_st *up = NULL;
	int rc;

	if (sv->tls.ssl != NULL)
		up = tls_peer_cert(&sv->tls);
	rc = tls_client_start(&cl->tls, conn_route(c), cl->fd, up,
	    conn_flow(c)->sni, st->ti, why, sizeof(why));
	X509_free_ref(up);
	if (rc == 0)
		rc = tls_client_prefix(&cl->tls, cl->fd, st->hbuf.data +
		    st->hbuf.off, buf_pending(&st->hbuf), why, sizeof(why));
	buf_free(&st->hbuf);
	if (rc == -1) {
		conn_fail(c, why);
		return -1;
	}
	return 0;
}

static void
stream_opened(struct conn *c, void *tp)
{
	struct stream *st = tp;
	struct side *cl = CLIENT(st), *sv = SERVER(st);

	timer_stop(&st->timer);
	if (client_tls_pending(st, cl) && client_tls_begin(st) == -1)
		return;
	if (st->tls_wait)
		timer_arm(&st->timer, HANDSHAKE_TIMEOUT_MS);
	if (!conn_flow(c)->echo)
		(void)side_write(st, sv);
	if (!conn_closed(c))
		(void)side_write(st, cl);
	/* OpenSSL holds the ClientHello already: no poll() says so */
	if (!conn_closed(c) && cl->tls.ssl != NULL && st->tls_wait &&
	    side_can_read(st, cl))
		side_read_chunk(st, cl);
}

/* Drives the upstream's TLS handshake; opens the connection when done. */
static void
upstream_handshake(struct stream *st)
{
	char why[ERRLEN];
	int rc = tls_handshake(&SERVER(st)->tls, st->ti, why, sizeof(why));

	if (rc == -1)
		conn_fail(st->c, why);
	else if (rc == 1)
		conn_opened(st->c);
}

/*
 * Reads the client's first bytes into st->hbuf until they hold a whole
 * ClientHello: its SNI picks passthrough and the upstream's name, its ALPN
 * offer goes upstream.  Reads stop at the end of the hello's records, so
 * what the client sends next stays in the socket; a partial hello costs
 * nothing until more bytes come.  The hello goes on later: to OpenSSL
 * (stream_opened()), or as the first bytes upstream when passed through.
 */
static void hello_bad(struct stream *st, const char *why, int eof);
static void starttls_hello(struct stream *st);

static void
hello_read(struct stream *st)
{
	struct conn *c = st->c;
	const struct route *r = conn_route(c);
	struct buf *hb = &st->hbuf;
	struct hello h;
	char why[ERRLEN];
	size_t have, want;
	ssize_t n;
	int rc;

	for (;;) {
		have = buf_pending(hb);
		want = have == 0 ? 5 : hello_need(hb->data + hb->off, have);
		if (want > sizeof(scratch)) {
			hello_bad(st, "not a TLS ClientHello from the client", 0);
			return;
		}
		n = recv(CLIENT(st)->fd, scratch, want - have, 0);
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
			hello_bad(st, "client closed before its TLS ClientHello", 1);
			return;
		}
		if (buf_append(hb, scratch, (size_t)n) == -1) {
			conn_fail(c, "out of memory");
			return;
		}
		rc = hello_parse(hb->data + hb->off, buf_pending(hb), &h);
		if (rc == 1)
			break;
		if (rc == -1) {
			hello_bad(st, "not a TLS ClientHello from the client", 0);
			return;
		}
		if ((size_t)n < want - have)
			return;		/* the rest when it comes */
	}
	if (h.sni_bad)
		diag_limited("tproxy: #%llu invalid SNI in the ClientHello "
		    "ignored", (unsigned long long)conn_flow(c)->id);
	if ((st->ti = calloc(1, sizeof(*st->ti))) == NULL) {
		conn_fail(c, "out of memory");
		return;
	}
	st->ti->hello = h;
	if (h.sni[0] != '\0')
		conn_set_sni(c, st->ti->hello.sni);
	if (r->listen.passthrough != NULL && conn_flow(c)->sni != NULL &&
	    re_search(r->listen.passthrough,
	    (const uint8_t *)conn_flow(c)->sni, strlen(conn_flow(c)->sni))) {
		st->passthrough = 1;
		st->tls_wait = 0;	/* no handshake of ours to wait for */
	}
	if (st->starttls) {
		starttls_hello(st);
		return;
	}
	if (r->listen.tls_detect)
		st->up_tls = !st->passthrough;	/* the upstream follows */
	st->hello = 0;
	timer_stop(&st->timer);
	if (st->xp != NULL) {
		/* an explicit proxy's: the upstream is connected already */
		timer_arm(&st->timer, CONNECT_TIMEOUT_MS);
		upstream_go(st);
	} else
		conn_begin(c, st->passthrough);
	if (st->passthrough && !conn_closed(c)) {
		/* untouched: the hello is the first of the bytes upstream */
		conn_input(c, C2S, hb->data + hb->off, buf_pending(hb));
		buf_free(hb);
	}
}

static void upgrade_io(struct stream *st, struct side *s, int revents);

static void
side_io(void *arg, int revents)
{
	struct side *s = arg;
	struct stream *st = (struct stream *)(void *)((char *)(s -
	    (s->is_server ? 1 : 0)) - offsetof(struct stream, side));
	struct conn *c = st->c;
	int i;

	if (conn_closed(c))
		return;
	if (st->pp_wait || st->xp_wait) {
		if (revents & (POLLIN | POLLHUP | POLLERR))
			(st->pp_wait ? proxy_read : xp_read)(st);
		if (!conn_closed(c))
			stream_update(c, st);
		return;
	}
	if (st->upgrade) {
		upgrade_io(st, s, revents);
		if (!conn_closed(c))
			stream_update(c, st);
		return;
	}
	if (s->is_server && conn_connecting(c)) {
		if (st->hello || st->detect)
			;		/* connected: the client's bytes first */
		else if (s->tls.ssl != NULL)
			upstream_handshake(st);
		else
			connect_done(st, revents);
	} else {
		if ((revents & (POLLOUT | POLLERR | POLLHUP)) &&
		    (side_pending(s) > 0 || (s->want_shut && !s->wr_shut)))
			if (side_write(st, s) == -1)
				return;
		if ((revents & (POLLIN | POLLHUP | POLLERR | (s->tls.ssl ?
		    s->tls.want : 0))) && side_can_read(st, s))
			side_read_chunk(st, s);
	}
	/* plaintext OpenSSL already holds wakes no poll(): read it now */
	for (i = 0; i < 16 && !conn_closed(c); i++) {
		if (tls_pending(&CLIENT(st)->tls) &&
		    side_can_read(st, CLIENT(st)))
			side_read_chunk(st, CLIENT(st));
		else if (tls_pending(&SERVER(st)->tls) &&
		    side_can_read(st, SERVER(st)))
			side_read_chunk(st, SERVER(st));
		else
			break;
	}
	if (!conn_closed(c) && (revents & POLLOUT))
		conn_kick(c);		/* room again for held bytes */
	if (conn_closed(c))
		return;
	hp_done(st);
	check_done(st);
	if (!conn_closed(c))
		stream_update(c, st);
}

/* The upstream socket is connecting: wait for it to be writable. */
static int
stream_connected(struct conn *c, void *tp, int fd)
{
	struct stream *st = tp;
	struct side *sv = SERVER(st);

	(void)c;
	sv->fd = fd;
	if (loop_add(fd, POLLOUT, side_io, sv, &sv->slot) == -1) {
		close(fd);
		sv->fd = -1;
		return -1;
	}
	timer_arm(&st->timer, CONNECT_TIMEOUT_MS);
	return 0;
}

/* ------------------------------------------------------------ tls=auto, starttls */

/* Reads the client's ClientHello, as a tls listener does. */
static void
hello_begin(struct stream *st)
{
	st->cl_tls = 1;
	st->tls_wait = 1;
	st->hello = 1;
	timer_arm(&st->timer, HANDSHAKE_TIMEOUT_MS);
}

/*
 * tls=auto: the client's first bytes came (tls 1: they begin a TLS
 * record), or it said nothing for detect= ms (tls 0).  A TLS client is
 * intercepted as on a tls listener; any other goes on as plain bytes, and
 * so does its upstream.
 */
static void
detect_done(struct stream *st, int tls)
{
	st->detect = 0;
	timer_stop(&st->timer);
	if (!tls) {
		if (st->xp != NULL)
			upstream_go(st);	/* connected already */
		else
			conn_begin(st->c, 0);
		return;
	}
	hello_begin(st);
	hello_read(st);
}

static void
detect_read(struct stream *st)
{
	switch (tls_sniff_fd(CLIENT(st)->fd)) {
	case SNIFF_WAIT:
		break;
	case SNIFF_TLS:
		detect_done(st, 1);
		break;
	default:			/* plain, or the relay reads the end */
		detect_done(st, 0);
		break;
	}
}

/*
 * starttls: a read from the plain client that begins a TLS record is the
 * start of a ClientHello (after the protocol's STARTTLS, or any upgrade):
 * read it whole first.  Returns 1 if the ClientHello's reader took over.
 */
static int
starttls_peek(struct stream *st)
{
	if (!conn_open(st->c) || tls_sniff_fd(CLIENT(st)->fd) != SNIFF_TLS)
		return 0;
	st->hello = 1;
	timer_arm(&st->timer, (uint64_t)conn_route(st->c)->listen.detect_ms);
	hello_read(st);
	return 1;
}

/*
 * starttls: what looked like a ClientHello was not one (or passthrough=
 * matched its SNI): its bytes go on as plain ones, and the next read may
 * begin one again.
 */
static void
starttls_plain(struct stream *st)
{
	struct buf *hb = &st->hbuf;

	st->hello = 0;
	timer_stop(&st->timer);
	free(st->ti);
	st->ti = NULL;
	conn_set_sni(st->c, NULL);
	if (buf_pending(hb) > 0)
		conn_input(st->c, C2S, hb->data + hb->off, buf_pending(hb));
	buf_free(hb);
}

/*
 * The ClientHello read failed: the connection closes with why (tls,
 * tls=auto), or the bytes go on as plain ones (starttls).
 */
static void
hello_bad(struct stream *st, const char *why, int eof)
{
	if (!st->starttls) {
		conn_fail(st->c, why);
		return;
	}
	starttls_plain(st);
	if (eof && !conn_closed(st->c))
		side_eof(st, CLIENT(st));
}

/* Returns 1 once the client's plain bytes are all with the upstream. */
static int
sent_up(struct stream *st)
{
	return conn_held(st->c, C2S) == 0 && side_pending(SERVER(st)) == 0;
}

/*
 * Returns 1 once nothing plain waits or is held, in either direction, and
 * the upstream's answer to what was held (its reply to STARTTLS) came.
 */
static int
drained(struct stream *st)
{
	return sent_up(st) && !st->await_reply && conn_held(st->c, S2C) == 0 &&
	    side_pending(CLIENT(st)) == 0;
}

/*
 * A plain read from the upstream while switching: once what the client
 * sent before its ClientHello is with the upstream, this is the answer to
 * it (the "220 Ready" of an eager client's STARTTLS), passed on as plain.
 */
static void
upgrade_heard(struct stream *st)
{
	if (sent_up(st))
		st->await_reply = 0;
}

/*
 * Switches both sides to TLS once the plain bytes before the ClientHello
 * are all written (the STARTTLS command the upstream must see first, what
 * filters still hold): then the upstream's handshake, over the same
 * socket, and when it is done the client's, with a certificate forged from
 * the upstream's.  Neither side is read meanwhile.
 */
static void
upgrade_step(struct stream *st)
{
	struct conn *c = st->c;
	struct side *sv = SERVER(st);
	const struct addr *t = conn_target(c);
	char why[ERRLEN];
	int rc;

	if (sv->tls.ssl == NULL) {
		if (sv->rd_eof) {
			conn_fail(c, "upstream closed before the switch to TLS");
			return;
		}
		if (!drained(st))
			return;
		if (tls_upstream_start(&sv->tls, conn_route(c), sv->fd,
		    conn_flow(c)->sni, t->host, &conn_flow(c)->server,
		    t->verify, st->ti, why, sizeof(why)) == -1) {
			conn_fail(c, why);
			return;
		}
		timer_arm(&st->timer, HANDSHAKE_TIMEOUT_MS);
	}
	rc = tls_handshake(&sv->tls, st->ti, why, sizeof(why));
	if (rc == -1) {
		conn_fail(c, why);
		return;
	}
	if (rc == 0)
		return;
	st->upgrade = 0;
	st->cl_tls = 1;
	st->tls_wait = 1;
	if (client_tls_begin(st) == -1)
		return;
	timer_arm(&st->timer, HANDSHAKE_TIMEOUT_MS);
	/* OpenSSL holds the ClientHello already: no poll() says so */
	if (side_can_read(st, CLIENT(st)))
		side_read_chunk(st, CLIENT(st));
}

/* A whole ClientHello came from a starttls client: switch to TLS. */
static void
starttls_hello(struct stream *st)
{
	struct conn *c = st->c;

	st->starttls = 0;	/* one upgrade; passed through: none */
	if (st->passthrough) {
		st->passthrough = 0;
		starttls_plain(st);
		return;
	}
	st->hello = 0;
	st->upgrade = 1;
	st->up_tls = 1;
	/*
	 * Bytes still on their way to the upstream (an eager client, or a
	 * filter holding its STARTTLS) will be answered in plain text: the
	 * switch waits for that answer, and relays it.
	 */
	st->await_reply = !sent_up(st);
	st->deadline = now_ms() + HANDSHAKE_TIMEOUT_MS;
	timer_arm(&st->timer, DRAIN_TICK_MS);
	conn_kick(c);
	if (!conn_closed(c))
		upgrade_step(st);
}

/*
 * While switching: write what waits, read the upstream's plain answer when
 * one is awaited, let held bytes go, go on.
 */
static void
upgrade_io(struct stream *st, struct side *s, int revents)
{
	struct conn *c = st->c;

	if (s->tls.ssl == NULL && (revents & POLLOUT) &&
	    side_write(st, s) == -1)
		return;
	if ((revents & (POLLIN | POLLHUP | POLLERR)) && side_can_read(st, s)) {
		side_read_chunk(st, s);
		if (conn_closed(c))
			return;
	} else if (s->tls.ssl == NULL && (revents & (POLLHUP | POLLERR))) {
		conn_fail(c, s->is_server ? "upstream closed during the "
		    "switch to TLS" : "client closed during the switch to TLS");
		return;
	}
	conn_kick(c);
	if (!conn_closed(c))
		upgrade_step(st);
}

/* Still draining: look again, until the handshake timeout. */
static void
upgrade_timer(struct stream *st)
{
	if (SERVER(st)->tls.ssl != NULL) {
		conn_fail(st->c, "TLS handshake with upstream timed out");
		return;
	}
	if (now_ms() >= st->deadline) {
		conn_fail(st->c, "switch to TLS: the plain bytes before the "
		    "ClientHello were not passed on in time");
		return;
	}
	upgrade_step(st);
	if (!conn_closed(st->c) && st->upgrade && SERVER(st)->tls.ssl == NULL)
		timer_arm(&st->timer, DRAIN_TICK_MS);
}

/* ------------------------------------------------------------ timers */

static void
timer_fired(struct timer *t)
{
	struct stream *st = t->arg;
	struct conn *c = st->c;

	if (st->detect)
		detect_done(st, 0);	/* the client says nothing: plain */
	else if (st->pp_wait)
		proxy_fail(st, "no whole PROXY header from the client in 3 s");
	else if (st->xp_drain)
		conn_close(c, st->hp_why, 0);
	else if (st->xp_wait)
		xp_refuse(st, "no whole proxy request from the client in 5 s",
		    0);
	else if (st->hello && st->starttls)
		starttls_plain(st);	/* never a whole ClientHello */
	else if (st->upgrade)
		upgrade_timer(st);
	else if (st->hello)
		conn_fail(c, "no TLS ClientHello from the client in time");
	else if (conn_connecting(c))
		conn_fail(c, SERVER(st)->tls.ssl ? "TLS handshake with "
		    "upstream timed out" : "connect timeout");
	else if (st->tls_wait)
		conn_fail(c, "TLS handshake with client timed out");
	if (!conn_closed(c))
		stream_update(c, st);
}

/*
 * On a TLS listener the ClientHello comes first: its SNI picks passthrough
 * and the upstream's name; the client's handshake goes on once the
 * upstream's is done.  tls=auto first waits for the client's first
 * bytes (or detect= ms) to tell whether it speaks TLS; starttls begins
 * plain.  The detection is a stage of its own: it may begin after any
 * handshake read from the client before the upstream is chosen.
 */
static void
stream_start(struct conn *c, void *tp)
{
	struct stream *st = tp;
	const struct route *r = conn_route(c);

	/* with tls=auto or starttls the upstream's TLS follows the client's */
	st->up_tls = r->target.tls && !r->listen.tls_detect;
	if (st->xp != NULL) {
		/* explicit proxies: TLS or its detection after the reply */
		conn_begin(c, 0);
		return;
	}
	if (r->listen.tls_detect == TLS_AUTO) {
		st->detect = 1;
		timer_arm(&st->timer, (uint64_t)r->listen.detect_ms);
		stream_update(c, st);
		return;
	}
	st->starttls = r->listen.tls_detect == TLS_STARTTLS;
	if (!r->listen.tls) {
		conn_begin(c, 0);
		return;
	}
	hello_begin(st);
	stream_update(c, st);
}

static const struct transport stream = {
	.sock_type = SOCK_STREAM,
	.expired = "idle timeout",
	.start = stream_start,
	.connected = stream_connected,
	.opened = stream_opened,
	.send = stream_send,
	.shut = stream_shut,
	.room = stream_room,
	.update = stream_update,
	.close = stream_close,
	.free = stream_free,
};

int
stream_accept(struct route *r, int fd, const struct sockname *peer)
{
	struct stream *st = calloc(1, sizeof(*st));
	struct sockname local, dst;
	char err[ERRLEN];

	if (st == NULL || (st->c = conn_new(r, peer, NULL, &stream, st)) ==
	    NULL) {
		diag_err("tproxy: accept: out of memory");
		free(st);
		close(fd);
		return -1;
	}
	side_init(CLIENT(st), 0);
	side_init(SERVER(st), 1);
	st->timer.cb = timer_fired;
	st->timer.arg = st;
	CLIENT(st)->fd = fd;
	/*
	 * Our end is the listener's address, unless it listens on a wildcard
	 * or transparently: then only the accepted socket knows.
	 */
	local.len = sizeof(local.ss);
	if (r->listen.type == A_UNIX_LISTEN ||
	    (r->listen.type != A_TCP_TPROXY && !sockname_is_any(&r->lname)) ||
	    getsockname(fd, (struct sockaddr *)&local.ss, &local.len) == -1)
		local = r->lname;
	dst = local;
	/* TCP_NODELAY: inherited from the listener (net_listen()) */
	if (loop_add(fd, POLLIN, side_io, CLIENT(st), &CLIENT(st)->slot) ==
	    -1) {
		conn_close(st->c, "out of memory", 1);
		return -1;
	}
	if (addr_is_explicit(r->listen.type)) {
		/* the request names the destination: the accept waits for it */
		conn_set_ends(st->c, &local, &dst);
		if ((st->xp = xp_new(&r->listen)) == NULL) {
			proxy_fail(st, "out of memory");
			return -1;
		}
		st->xp_wait = 1;
		timer_arm(&st->timer, XP_HANDSHAKE_MS);
		stream_update(st->c, st);
		return 0;
	}
	if (r->listen.proxy_protocol) {
		/* the header names the client: the accept event waits for it */
		conn_set_ends(st->c, &local, &dst);
		if (!proxy_from_ok(r, peer)) {
			char a[ADDRSTR];

			sockname_host(peer, a, sizeof(a));
			snprintf(err, sizeof(err), "refused: %s may not send "
			    "a PROXY header (not in proxy-from=)", a);
			proxy_fail(st, err);
			return -1;
		}
		st->pp_wait = 1;
		timer_arm(&st->timer, PROXY_HEADER_MS);
		stream_update(st->c, st);
		return 0;
	}
	/* behind a redirect, the accept event names the original destination */
	if (r->target.type == A_ORIG && r->listen.type == A_TCP_LISTEN &&
	    orig_lookup(fd, &local, &dst, err, sizeof(err)) == -1) {
		conn_set_ends(st->c, &local, &dst);
		ev_accept(conn_flow(st->c));
		conn_fail(st->c, err);
		return -1;
	}
	conn_set_ends(st->c, &local, &dst);
	conn_start(st->c);
	return conn_closed(st->c) ? -1 : 0;
}
