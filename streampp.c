/*
 * streampp.c - the PROXY header on a stream: read whole (within
 * PROXY_HEADER_MS, from proxy-from= sources only) before anything else on a
 * proxy-protocol listener, and written first toward a proxy-protocol
 * target.  The header itself is proxy.c's.
 */

#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "event.h"
#include "loop.h"
#include "parse.h"
#include "proxy.h"
#include "streamint.h"

/*
 * Writes the PROXY header (version v) on the upstream socket just
 * connected: before the client's bytes and before a TLS handshake.  The
 * socket's send buffer is empty and far larger than a header, so one
 * send() takes it whole.  Returns 0, or -1 after failing the connection.
 */
int
proxy_send(struct stream *st, int v)
{
	const struct flow *f = conn_flow(st->c);
	uint8_t hdr[PP_OUT_MAX];
	char why[ERRLEN];
	struct sockname src, dst;
	size_t n = pp_build(v, flowaddr_get(&f->client, &src),
	    flowaddr_get(&f->dst, &dst), hdr);
	ssize_t w = send(SERVER(st)->fd, hdr, n, MSG_NOSIGNAL);

	if (w == (ssize_t)n)
		return 0;
	snprintf(why, sizeof(why), "write PROXY header to upstream: %s",
	    w < 0 ? strerror(errno) : "short write");
	conn_fail(st->c, why);
	return -1;
}

/* A PROXY header was refused: the accept event (of the real peer), why. */
void
proxy_fail(struct stream *st, const char *why)
{
	ev_accept(conn_flow(st->c));
	conn_fail(st->c, why);
}

/*
 * Reads the client's PROXY header.  It peeks at what has come, parses the
 * header read so far with it, and takes out of the socket only the
 * header's own bytes: what follows stays there for the ClientHello or the
 * relay.  Bytes of an incomplete header are all header, so they are taken
 * too, and the socket wakes us only when more arrive.
 */
void
proxy_read(struct stream *st)
{
	struct conn *c = st->c;
	struct pp_hdr h;
	const char *bad = NULL;
	char why[ERRLEN];
	ssize_t n;
	size_t take;
	int rc;

	if (st->pp == NULL && (st->pp = malloc(PP_MAX)) == NULL) {
		proxy_fail(st, "out of memory");
		return;
	}
	n = recv(CLIENT(st)->fd, st->pp + st->pplen, PP_MAX - st->pplen,
	    MSG_PEEK);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		snprintf(why, sizeof(why), n == 0 ? "client closed before "
		    "its PROXY header" : "read from client: %s",
		    strerror(errno));
		proxy_fail(st, why);
		return;
	}
	rc = pp_parse(st->pp, st->pplen + (size_t)n, &h, &bad);
	if (rc == -1) {
		snprintf(why, sizeof(why), "refused: %s", bad);
		proxy_fail(st, why);
		return;
	}
	take = rc == 1 ? h.len - st->pplen : (size_t)n;
	if (recv(CLIENT(st)->fd, st->pp + st->pplen, take, 0) !=
	    (ssize_t)take) {
		proxy_fail(st, "read from client: lost the PROXY header");
		return;
	}
	st->pplen += take;
	if (rc == 0)
		return;
	if (!h.local)
		conn_set_proxied(c, &h.src, &h.dst);
	free(st->pp);
	st->pp = NULL;
	st->pp_wait = 0;
	timer_stop(&st->timer);
	conn_start(c);
}

/* Returns 1 if route r takes PROXY headers from peer. */
int
proxy_from_ok(const struct route *r, const struct sockname *peer)
{
	static const struct cidr lo4 = { AF_INET, { 127 }, 8 };
	static const struct cidr lo6 = { AF_INET6, { [15] = 1 }, 128 };
	int i;

	if (peer->ss.ss_family == AF_UNIX)
		return 1;		/* the socket file's mode decides */
	if (r->listen.nproxy_from == 0)
		return cidr_match(&lo4, peer) || cidr_match(&lo6, peer);
	for (i = 0; i < r->listen.nproxy_from; i++)
		if (cidr_match(&r->listen.proxy_from[i], peer))
			return 1;
	return 0;
}
