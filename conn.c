/*
 * conn.c - TCP and Unix stream connections: accept, connect upstream, relay
 * both directions through the filter chain, half-close, reset, close.
 *
 * Each side owns an output buffer that exists only while bytes wait; a read
 * goes through one shared scratch buffer and is written on at once when the
 * other side can take it.  While a side has OUT_HIGH bytes waiting, the side
 * feeding it is not read: that is the back-pressure, and it bounds memory per
 * connection whatever the peers do.  A route without filters moves bulk
 * transfers through a pipe with splice(2), so the bytes never reach user
 * memory.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tproxy.h"

#define CONNECT_TIMEOUT_MS	10000
#define HANDSHAKE_TIMEOUT_MS	10000	/* TLS from the client, whole */
#define HELLO_RETRY_MS		20	/* peeking for the rest of a hello */
#define FIRST_BYTES_WAIT_MS	1000
#define EMFILE_PAUSE_MS		100
#define ACCEPTS_PER_TURN	64
#define SPLICE_MIN		16384	/* a read this big turns on splice */
#define PIPE_MAX		256	/* pipes in use or pooled */
#define PIPE_BYTES		(256 * 1024)

uint64_t	 stat_conns, stat_bytes[2];
long		 opt_max_conns, opt_idle_timeout;

static struct conn	*conns;		/* open */
static struct conn	*graveyard;	/* closed, freed after the turn */
static size_t		 nconns;
static uint64_t		 next_id = 1;
static uint8_t		 scratch[IO_CHUNK];

static int		 pool[PIPE_MAX][2];
static int		 npool, npipes;

static struct timer	 emfile_timer;
static int		 emfile_paused, full_paused;

static void conn_connect(struct conn *c);
static void conn_begin(struct conn *c);
static void conn_opened(struct conn *c);
static void upstream_handshake(struct conn *c);
static void hello_peek(struct conn *c);

/* ------------------------------------------------------------ buffers */

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n > b->cap) {
		size_t pend = b->len - b->off, ncap = b->cap ? b->cap : 4096;
		uint8_t *nd;

		if (b->off > 0) {	/* slide the pending bytes down */
			memmove(b->data, b->data + b->off, pend);
			b->off = 0;
			b->len = pend;
		}
		while (ncap < b->len + n)
			ncap *= 2;
		if (ncap > b->cap) {
			if ((nd = realloc(b->data, ncap)) == NULL)
				return -1;
			b->data = nd;
			b->cap = ncap;
		}
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

size_t
buf_pending(const struct buf *b)
{
	return b->len - b->off;
}

void
buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		buf_free(b);
}

void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ------------------------------------------------------------ pipes */

static int
pipe_get(struct side *s)
{
	if (npool > 0) {
		npool--;
		s->pipefd[0] = pool[npool][0];
		s->pipefd[1] = pool[npool][1];
		return 0;
	}
	if (npipes >= PIPE_MAX || pipe2(s->pipefd, O_NONBLOCK | O_CLOEXEC))
		return -1;
	/* a bigger pipe moves more per splice(), up to the system's limit */
	(void)fcntl(s->pipefd[1], F_SETPIPE_SZ, PIPE_BYTES);
	npipes++;
	return 0;
}

/* Returns the side's pipe to the pool; one with bytes in it is closed. */
static void
pipe_put(struct side *s)
{
	if (s->pipefd[0] < 0)
		return;
	if (s->inpipe == 0 && npool < PIPE_MAX) {
		pool[npool][0] = s->pipefd[0];
		pool[npool][1] = s->pipefd[1];
		npool++;
	} else {
		close(s->pipefd[0]);
		close(s->pipefd[1]);
		npipes--;
	}
	s->pipefd[0] = s->pipefd[1] = -1;
	s->inpipe = 0;
}

/* ------------------------------------------------------------ listeners */

static void
listeners_update(void)
{
	size_t i;
	int paused = emfile_paused || full_paused;

	for (i = 0; i < nroutes; i++)
		loop_set(routes[i].lslot, paused ? 0 : POLLIN);
}

static void
emfile_resume(struct timer *t)
{
	(void)t;
	emfile_paused = 0;
	listeners_update();
}

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
		return c->echo ? CLIENT(c) : SERVER(c);
	return CLIENT(c);
}

static struct side *
src_side(struct conn *c, enum dir d)
{
	return d == C2S ? CLIENT(c) : SERVER(c);
}

/* Returns 1 if the client speaks TLS to us but its TLS is not set up. */
static int
client_tls_pending(const struct conn *c, const struct side *s)
{
	return !s->is_server && c->route->listen.tls && !c->passthrough &&
	    s->ssl == NULL;
}

/* Returns 1 if bytes can be written to s now. */
static int
side_writable(const struct conn *c, const struct side *s)
{
	if (s->fd < 0 || s->wr_shut || client_tls_pending(c, s))
		return 0;
	return !s->is_server || c->state == CS_OPEN;
}

static int
side_can_read(struct conn *c, struct side *s)
{
	struct side *dst;

	if (s->fd < 0 || s->rd_eof || c->state == CS_CLOSED)
		return 0;
	if (c->state == CS_HELLO)
		return !s->is_server && !c->hello_wait;
	if (s->is_server && c->state != CS_OPEN)
		return 0;
	if (client_tls_pending(c, s))
		return 0;
	if (!s->is_server && c->state == CS_OPEN && !c->echo &&
	    SERVER(c)->fd < 0)
		return 0;
	dst = dst_side(c, side_dir(c, s));
	return buf_pending(&dst->out) < OUT_HIGH && dst->inpipe == 0;
}

static void
side_update(struct conn *c, struct side *s)
{
	short ev = 0;

	if (s->fd < 0 || c->state == CS_CLOSED)
		return;
	if (c->udp) {		/* datagrams: no back-pressure, no stream */
		loop_set(s->slot, c->state == CS_OPEN ? POLLIN : 0);
		return;
	}
	if (side_can_read(c, s))
		ev |= POLLIN;
	if (s->is_server && c->state == CS_CONNECTING)
		ev |= s->ssl ? s->ssl_want : POLLOUT;
	else if (side_writable(c, s) && (buf_pending(&s->out) > 0 ||
	    s->inpipe > 0 || (s->want_shut && !s->wr_shut)))
		ev |= POLLOUT;
	if (s->ssl != NULL && c->state != CS_CONNECTING)
		ev |= s->ssl_want;
	loop_set(s->slot, ev);
}

static void
conn_update(struct conn *c)
{
	side_update(c, CLIENT(c));
	side_update(c, SERVER(c));
}

void
conn_endpoints(const struct conn *c, enum dir d, char *from, char *to,
    size_t len)
{
	const struct sockname *cl = &CLIENT(c)->peer;
	const struct sockname *sv = c->echo || SERVER(c)->peer.len == 0 ?
	    &c->dst : &SERVER(c)->peer;

	sockname_str(d == C2S ? cl : sv, from, len);
	sockname_str(d == C2S ? sv : cl, to, len);
}

size_t
conn_count(void)
{
	return nconns;
}

/* ------------------------------------------------------------ closing */

static void
side_close(struct side *s, int reset)
{
	struct linger lg = { 1, 0 };

	tls_free(s);
	if (s->fd >= 0) {
		loop_del(&s->slot);
		if (reset)
			(void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg,
			    sizeof(lg));
		close(s->fd);
		s->fd = -1;
	}
	pipe_put(s);
	buf_free(&s->out);
}

/*
 * Closes both sides (with RST when reset), reports the close with its
 * reason, and queues c to be freed after this loop turn, so callers up the
 * stack may still look at c->state.
 */
void
conn_close(struct conn *c, const char *reason, int reset)
{
	if (c->state == CS_CLOSED)
		return;
	ev_close(c, reason);
	if (c->udp)
		udp_forget(c);
	side_close(CLIENT(c), reset);
	side_close(SERVER(c), reset);
	timer_stop(&c->idle);
	timer_stop(&c->hold[C2S]);
	timer_stop(&c->hold[S2C]);
	timer_stop(&c->wait);
	chain_close(c);
	c->state = CS_CLOSED;
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = graveyard;
	graveyard = c;
	nconns--;
	if (full_paused && (opt_max_conns == 0 || (long)nconns <
	    opt_max_conns)) {
		full_paused = 0;
		listeners_update();
	}
}

/* Fails a connection: an error event with the reason, then a reset. */
void
conn_fail(struct conn *c, const char *reason)
{
	ev_error(c, reason);
	conn_close(c, reason, 1);
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
		free(c->ti);
		free(c);
	}
}

/* Closes c once both directions are done (EOF read and passed on). */
static void
conn_check_done(struct conn *c)
{
	int d;

	if (c->state != CS_OPEN)
		return;
	for (d = 0; d < (c->echo ? 1 : 2); d++)
		if (!src_side(c, d)->rd_eof || !dst_side(c, d)->wr_shut)
			return;
	conn_close(c, "closed", 0);
}

/* ------------------------------------------------------------ writing */

static const char *
who(const struct side *s)
{
	return s->is_server ? "server" : "client";
}

/*
 * Writes to s's socket, through TLS when s has it.  Returns the count, -1
 * when it must wait, -2 on an error (the reason in why).
 */
static ssize_t
side_raw_write(struct side *s, const uint8_t *p, size_t n, char *why,
    size_t len)
{
	char e[ERRLEN / 2];
	ssize_t w;

	if (s->ssl != NULL) {
		w = tls_write(s, p, n, e, sizeof(e));
		if (w == -2)
			snprintf(why, len, "write to %s: %s", who(s), e);
		return w;
	}
	do
		w = write(s->fd, p, n);
	while (w < 0 && errno == EINTR);
	if (w >= 0)
		return w;
	if (errno == EAGAIN)
		return -1;
	snprintf(why, len, "write to %s: %s", who(s), strerror(errno));
	return -2;
}

/*
 * Writes what waits for s: its buffer, then its pipe; shuts down writing
 * when asked and drained.  Returns 0, or -1 after closing the connection.
 */
static int
side_write(struct conn *c, struct side *s)
{
	char why[ERRLEN];
	ssize_t n;

	if (!side_writable(c, s))
		return 0;
	while (buf_pending(&s->out) > 0) {
		n = side_raw_write(s, s->out.data + s->out.off,
		    buf_pending(&s->out), why, sizeof(why));
		if (n == -1)
			break;
		if (n == -2) {
			conn_fail(c, why);
			return -1;
		}
		buf_consume(&s->out, (size_t)n);
	}
	while (s->inpipe > 0 && buf_pending(&s->out) == 0) {
		n = splice(s->pipefd[0], NULL, s->fd, NULL, s->inpipe,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			goto fail;
		}
		s->inpipe -= (size_t)n;
	}
	if (s->inpipe == 0)
		pipe_put(s);
	if (s->want_shut && !s->wr_shut && buf_pending(&s->out) == 0 &&
	    s->inpipe == 0) {
		tls_shutdown(s);
		(void)shutdown(s->fd, SHUT_WR);
		s->wr_shut = 1;
	}
	return 0;
fail:
	snprintf(why, sizeof(why), "write to %s: %s", who(s), strerror(errno));
	conn_fail(c, why);
	return -1;
}

/* Sends bytes to side s: written at once when nothing waits, else queued. */
static void
side_send(struct conn *c, struct side *s, const uint8_t *p, size_t n)
{
	char why[ERRLEN];
	ssize_t w;

	if (c->state == CS_CLOSED || s->wr_shut)
		return;
	if (c->udp) {
		udp_send(c, s, p, n);
		return;
	}
	if (side_writable(c, s) && buf_pending(&s->out) == 0 &&
	    s->inpipe == 0) {
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

void
conn_deliver(struct conn *c, enum dir d, const uint8_t *p, size_t n)
{
	if (c->echo) {		/* what comes back counts as s2c */
		c->bytes[S2C] += n;
		c->chunks[S2C]++;
		stat_bytes[S2C] += n;
	}
	side_send(c, dst_side(c, d), p, n);
}

void
conn_answer(struct conn *c, enum dir d, const uint8_t *p, size_t n)
{
	side_send(c, src_side(c, d), p, n);
}

/* ------------------------------------------------------------ reading */

static void
side_eof(struct conn *c, struct side *s)
{
	enum dir d = side_dir(c, s);
	struct side *dst;

	s->rd_eof = 1;
	timer_stop(&c->hold[d]);
	chain_flush(c, d, 1);
	if (c->state == CS_CLOSED)
		return;
	dst = dst_side(c, d);
	dst->want_shut = 1;
	if (c->state == CS_WAIT_BYTES)
		conn_connect(c);
	if (c->state == CS_CLOSED)
		return;
	(void)side_write(c, dst);
}

static void
read_failed(struct conn *c, struct side *s, int err)
{
	char why[ERRLEN];

	if (err == ECONNRESET)		/* passed on as a reset */
		snprintf(why, sizeof(why), "reset by %s", who(s));
	else
		snprintf(why, sizeof(why), "read from %s: %s", who(s),
		    strerror(err));
	conn_fail(c, why);
}

void
conn_account(struct conn *c, enum dir d, size_t n)
{
	c->bytes[d] += n;
	c->chunks[d]++;
	stat_bytes[d] += n;
	c->last_ms = now_ms();
}

/*
 * Moves one read's worth from s to dst through a pipe.  Returns 1 when done
 * (whatever happened), 0 to fall back to a copying read.
 */
static int
splice_read(struct conn *c, struct side *s, struct side *dst)
{
	ssize_t n;

	if (dst->pipefd[0] < 0 && pipe_get(dst) == -1)
		return 0;
	n = splice(s->fd, NULL, dst->pipefd[1], NULL, PIPE_BYTES,
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		dst->inpipe += (size_t)n;
		conn_account(c, side_dir(c, s), (size_t)n);
		(void)side_write(c, dst);
		return 1;
	}
	if (dst->inpipe == 0)
		pipe_put(dst);
	if (n == 0)
		side_eof(c, s);
	else if (errno == EINVAL) {
		s->splice = 0;
		return 0;
	} else if (errno != EAGAIN && errno != EINTR)
		read_failed(c, s, errno);
	return 1;
}

static void
side_read(struct conn *c, struct side *s)
{
	enum dir d = side_dir(c, s);
	struct side *dst = dst_side(c, d);
	ssize_t n;

	char why[ERRLEN], e[ERRLEN / 2];

	if (c->state == CS_HELLO) {
		hello_peek(c);
		return;
	}
	if (s->splice && buf_pending(&dst->out) == 0 && c->state == CS_OPEN &&
	    splice_read(c, s, dst))
		return;
	if (s->ssl != NULL) {
		n = tls_read(s, scratch, sizeof(scratch), e, sizeof(e));
		if (c->tls_wait && !s->is_server && tls_ready(s)) {
			c->tls_wait = 0;	/* the client's handshake is done */
			s->hs = 0;
			timer_stop(&c->wait);
		}
		if (n == -1)
			return;
		if (n == -2) {
			snprintf(why, sizeof(why), "read from %s: %s", who(s), e);
			conn_fail(c, why);
			return;
		}
	} else {
		n = read(s->fd, scratch, sizeof(scratch));
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				read_failed(c, s, errno);
			return;
		}
	}
	if (n == 0) {
		side_eof(c, s);
		return;
	}
	conn_account(c, d, (size_t)n);
	if (n >= SPLICE_MIN && c->route->ntaps == 0 && !c->echo &&
	    s->ssl == NULL && dst->ssl == NULL && !c->route->listen.tls &&
	    !c->route->target.tls && s->peer.ss.ss_family != AF_UNIX)
		s->splice = 1;
	chain_run(c, d, scratch, (size_t)n);
	conn_after_chunk(c, d);
}

/* After a chunk went through the chain: arm the hold timer, connect. */
void
conn_after_chunk(struct conn *c, enum dir d)
{
	if (c->state == CS_CLOSED)
		return;
	if (c->route->ntaps > 0 && chain_holding(c, d))
		timer_arm(&c->hold[d], chain_hold_ms(c, d));
	if (c->state == CS_WAIT_BYTES && d == C2S)
		conn_connect(c);
}

static void
connect_done(struct conn *c)
{
	struct side *sv = SERVER(c);
	char why[ERRLEN], a[ADDRSTR];
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(sv->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		sockname_str(&sv->peer, a, sizeof(a));
		snprintf(why, sizeof(why), "connect %s: %s", a, strerror(err));
		conn_fail(c, why);
		return;
	}
	sv->local.len = sizeof(sv->local.ss);
	if (getsockname(sv->fd, (struct sockaddr *)&sv->local.ss,
	    &sv->local.len) == -1)
		sv->local.len = 0;
	if (c->route->target.tls && !c->passthrough) {
		if (tls_upstream_start(c, sv, c->redirect ? c->redirect :
		    &c->route->target, why, sizeof(why)) == -1) {
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
	if (!c->echo)
		ev_connect(c);
	if (client_tls_pending(c, cl)) {
		if (sv->ssl != NULL)
			up = tls_peer_cert(sv);
		rc = tls_client_start(c, cl, up, why, sizeof(why));
		X509_free_ref(up);
		if (rc == -1) {
			conn_fail(c, why);
			return;
		}
	}
	if (c->tls_wait)
		timer_arm(&c->wait, HANDSHAKE_TIMEOUT_MS);
	if (!c->echo)
		(void)side_write(c, sv);
	if (c->state != CS_CLOSED)
		(void)side_write(c, cl);
}

/* Drives the upstream's TLS handshake; opens the connection when done. */
static void
upstream_handshake(struct conn *c)
{
	char why[ERRLEN];
	int rc = tls_handshake(c, SERVER(c), why, sizeof(why));

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
	ssize_t n;
	int rc;

	n = recv(cl->fd, scratch, sizeof(scratch), MSG_PEEK);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			read_failed(c, cl, errno);
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
		timer_arm(&c->hold[C2S], HELLO_RETRY_MS);
		return;
	}
	if (rc != 1) {
		conn_fail(c, "not a TLS ClientHello from the client");
		return;
	}
	if (h.sni_bad)
		diag_err("tproxy: #%llu invalid SNI in the ClientHello "
		    "ignored", (unsigned long long)c->id);
	if ((c->ti = calloc(1, sizeof(*c->ti))) == NULL) {
		conn_fail(c, "out of memory");
		return;
	}
	c->ti->hello = h;
	if (h.sni[0] != '\0')
		c->sni = c->ti->hello.sni;
	if (c->route->listen.passthrough != NULL && c->sni != NULL &&
	    re_search(c->route->listen.passthrough, (const uint8_t *)c->sni,
	    strlen(c->sni)))
		c->passthrough = 1;
	c->state = CS_WAIT_BYTES;
	conn_begin(c);
}

void
conn_side_io(void *arg, int revents)
{
	struct side *s = arg;
	struct conn *c = s->conn;
	int i;

	if (c->state == CS_CLOSED)
		return;
	if (s->is_server && c->state == CS_CONNECTING) {
		if (s->ssl != NULL)
			upstream_handshake(c);
		else
			connect_done(c);
	} else {
		if ((revents & (POLLOUT | POLLERR | POLLHUP)) &&
		    (buf_pending(&s->out) > 0 || s->inpipe > 0 ||
		    (s->want_shut && !s->wr_shut)))
			if (side_write(c, s) == -1)
				return;
		if ((revents & (POLLIN | POLLHUP | POLLERR | (s->ssl ?
		    s->ssl_want : 0))) && side_can_read(c, s))
			side_read(c, s);
	}
	/* plaintext OpenSSL already holds wakes no poll(): read it now */
	for (i = 0; i < 16 && c->state != CS_CLOSED; i++) {
		if (tls_pending(CLIENT(c)) && side_can_read(c, CLIENT(c)))
			side_read(c, CLIENT(c));
		else if (tls_pending(SERVER(c)) && side_can_read(c, SERVER(c)))
			side_read(c, SERVER(c));
		else
			break;
	}
	if (c->state == CS_CLOSED)
		return;
	conn_check_done(c);
	if (c->state != CS_CLOSED)
		conn_update(c);
}

/* ------------------------------------------------------------ timers */

static void
idle_fired(struct timer *t)
{
	struct conn *c = t->arg;
	uint64_t idle = c->idle_ms, now = now_ms();

	if (now - c->last_ms >= idle)
		conn_close(c, c->udp ? "expired" : "idle timeout", 0);
	else
		timer_arm(&c->idle, c->last_ms + idle - now);
}

static void
hold_fired(struct timer *t)
{
	struct conn *c = t->arg;

	if (c->state == CS_HELLO) {	/* time to peek again */
		c->hello_wait = 0;
		conn_update(c);
		return;
	}
	chain_flush(c, t == &c->hold[C2S] ? C2S : S2C, 0);
	if (c->state != CS_CLOSED)
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
		conn_fail(c, SERVER(c)->ssl ? "TLS handshake with upstream "
		    "timed out" : "connect timeout");
	else if (c->tls_wait)
		conn_fail(c, "TLS handshake with client timed out");
	if (c->state != CS_CLOSED)
		conn_update(c);
}

/* ------------------------------------------------------------ opening */

/* Starts the upstream connection (or echo) for c. */
static void
conn_connect(struct conn *c)
{
	const struct addr *t = c->redirect ? c->redirect : &c->route->target;
	const struct sockname *pre = NULL;
	struct side *sv = SERVER(c);
	struct sockname to;
	char err[ERRLEN];
	int fd;

	timer_stop(&c->wait);
	if (t->type == A_ECHO) {
		c->echo = 1;
		if (c->udp)
			c->state = CS_OPEN;
		else
			conn_opened(c);
		return;
	}
	if (t->type == A_ORIG) {
		if (orig_target(c, t, &to, err, sizeof(err)) == -1) {
			conn_fail(c, err);
			return;
		}
		pre = &to;
	} else if (t == &c->route->target && c->route->tresolved)
		pre = &c->route->tname;
	fd = net_connect(t, c->udp ? SOCK_DGRAM : SOCK_STREAM, pre,
	    t->spoof ? &CLIENT(c)->peer : NULL, &sv->peer, err, sizeof(err));
	if (fd == -1) {
		conn_fail(c, err);
		return;
	}
	if (c->udp) {			/* connected at once */
		if (udp_opened(c, fd) == -1)
			conn_fail(c, "out of memory");
		return;
	}
	sv->fd = fd;
	if (loop_add(fd, POLLOUT, conn_side_io, sv, &sv->slot) == -1) {
		close(fd);
		sv->fd = -1;
		conn_fail(c, "out of memory");
		return;
	}
	c->state = CS_CONNECTING;
	timer_arm(&c->wait, CONNECT_TIMEOUT_MS);
}

static int
needs_first_bytes(const struct conn *c)
{
	size_t i;

	if (!c->route->first_bytes || c->redirect != NULL)
		return 0;
	for (i = 0; i < c->route->ntaps; i++)
		if (c->route->taps[i].first_bytes &&
		    (c->tapon[C2S] & (1u << i)))
			return 1;
	return 0;
}

static void
side_init(struct conn *c, struct side *s, int is_server)
{
	s->conn = c;
	s->fd = -1;
	s->slot = -1;
	s->pipefd[0] = s->pipefd[1] = -1;
	s->is_server = is_server;
}

/*
 * Creates a connection for a client (an accepted socket, or fd -1 for a UDP
 * session, whose replies leave through the route's socket).  Returns it, or
 * NULL when out of memory.
 */
struct conn *
conn_create(struct route *r, int fd, const struct sockname *peer)
{
	struct conn *c;
	struct side *cl;
	int one = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->id = next_id++;
	c->route = r;
	c->udp = addr_is_udp(r->listen.type);
	c->start_ms = c->last_ms = now_ms();
	cl = CLIENT(c);
	side_init(c, cl, 0);
	side_init(c, SERVER(c), 1);
	cl->peer = *peer;
	cl->local = r->lname;
	if (fd >= 0) {
		cl->fd = fd;
		cl->local.len = sizeof(cl->local.ss);
		if (r->listen.type == A_UNIX_LISTEN ||
		    getsockname(fd, (struct sockaddr *)&cl->local.ss,
		    &cl->local.len) == -1)
			cl->local = r->lname;
		if (peer->ss.ss_family != AF_UNIX)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
		if (loop_add(fd, POLLIN, conn_side_io, cl, &cl->slot) == -1) {
			free(c);
			return NULL;
		}
	}
	c->dst = cl->local;
	c->idle.cb = idle_fired;
	c->hold[C2S].cb = c->hold[S2C].cb = hold_fired;
	c->wait.cb = wait_fired;
	c->idle.arg = c->hold[C2S].arg = c->hold[S2C].arg = c->wait.arg = c;
	c->idle_ms = c->udp ? (uint64_t)opt_udp_timeout * 1000 :
	    (uint64_t)opt_idle_timeout * 1000;
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	nconns++;
	stat_conns++;
	c->state = CS_WAIT_BYTES;
	return c;
}

/* Opens the chain, reports the accept, and picks the upstream. */
void
conn_start(struct conn *c)
{
	const struct addr *l = &c->route->listen;
	char err[ERRLEN];

	/* behind a redirect, the accept event names the original destination */
	if (c->route->target.type == A_ORIG && l->type == A_TCP_LISTEN &&
	    orig_lookup(c, CLIENT(c)->fd, err, sizeof(err)) == -1) {
		ev_accept(c);
		conn_fail(c, err);
		return;
	}
	ev_accept(c);
	if (c->idle_ms > 0)
		timer_arm(&c->idle, c->idle_ms);
	if (l->tls) {
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
	if (chain_open(c) == -1) {
		conn_fail(c, "out of memory");
		return;
	}
	if (needs_first_bytes(c))
		timer_arm(&c->wait, FIRST_BYTES_WAIT_MS);
	else
		conn_connect(c);
	if (c->state != CS_CLOSED)
		conn_update(c);
}

/* Returns 1 if another connection may start under --max-conns. */
int
conn_room(void)
{
	return opt_max_conns == 0 || (long)nconns < opt_max_conns;
}

/* Accepts what waits on a route's listener, within --max-conns and fds. */
void
conn_accept(struct route *r)
{
	struct sockname peer;
	int i, fd;

	emfile_timer.cb = emfile_resume;
	for (i = 0; i < ACCEPTS_PER_TURN; i++) {
		if (!conn_room()) {
			full_paused = 1;
			listeners_update();
			return;
		}
		peer.len = sizeof(peer.ss);
		fd = accept4(r->lfd, (struct sockaddr *)&peer.ss, &peer.len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* back off instead of spinning on a full table */
				static uint64_t warned;

				if (warned == 0 || now_ms() - warned >= 10000) {
					diag_err("tproxy: accept: %s; pausing "
					    "accepts", strerror(errno));
					warned = now_ms();
				}
				emfile_paused = 1;
				listeners_update();
				timer_arm(&emfile_timer, EMFILE_PAUSE_MS);
			}
			return;
		}
		struct conn *c = conn_create(r, fd, &peer);

		if (c == NULL) {
			diag_err("tproxy: accept: out of memory");
			close(fd);
			continue;
		}
		conn_start(c);
	}
}
