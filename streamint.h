/*
 * streamint.h - the stream transport's insides, shared by stream.c (the
 * relay and its other stages) and streampp.c (the PROXY header, in and
 * out), which stream.c calls and which calls nothing of stream.c's.
 * Nothing outside the stream transport includes it.
 */
#ifndef STREAMINT_H
#define STREAMINT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "conn.h"
#include "loop.h"
#include "side.h"
#include "sockname.h"

#define IO_CHUNK		(64 * 1024)	/* one read from a socket */
#define OUT_HIGH		(64 * 1024)	/* stop reading above this */
/*
 * Bytes queued toward a side stop reads from that side only above this:
 * what is forwarded to it stays under OUT_HIGH plus a read or two, so only
 * answers reach it.  At OUT_HIGH, a peer that stops reading while its own
 * writes wait (an echo server, exec:cat) and the relay would wait for each
 * other.
 */
#define BACK_HIGH		(4 * OUT_HIGH)
#define CONNECT_TIMEOUT_MS	10000
#define HANDSHAKE_TIMEOUT_MS	10000	/* TLS from the client, whole */
#define PROXY_HEADER_MS		3000	/* a PROXY header, whole */
#define XP_HANDSHAKE_MS		5000	/* a SOCKS or HTTP proxy request */
#define XP_DRAIN_MS		2000	/* reading on after refusing one */
#define SPLICE_MIN		16384	/* a read this big turns on splice */
#define DRAIN_TICK_MS		20	/* starttls: look again if drained */

/* The stream transport's side of a connection. */
struct stream {
	struct conn	*c;
	struct side	 side[2];	/* [0] client, [1] server */
	struct tlsinfo	*ti;		/* TLS listeners only (memory) */
	struct timer	 timer;		/* hello, connect and handshake time */
	struct buf	 hbuf;		/* the ClientHello read so far */
	uint8_t		*pp;		/* the PROXY header read so far */
	size_t		 pplen;
	unsigned	 pp_wait:1;	/* reading the client's PROXY header */
	unsigned	 hello:1;	/* reading the client's ClientHello */
	unsigned	 passthrough:1;	/* TLS relayed untouched (by SNI) */
	unsigned	 tls_wait:1;	/* client handshake not finished */
	struct xp	*xp;		/* explicit proxy listeners only */
	struct hp	*hp;		/* forwarding absolute-URI requests */
	const char	*hp_why;	/* why the forwarding stopped */
	int		 hp_status;	/* ...and the response it gets */
	unsigned	 xp_wait:1;	/* reading the proxy request */
	unsigned	 xp_drain:1;	/* refused: reading the client's rest */
	unsigned	 xp_pending:1;	/* its reply waits for the upstream */
	unsigned	 hp_stop:1;	/* a refused request: the end */
	unsigned	 cl_tls:1;	/* the client's side is TLS */
	unsigned	 up_tls:1;	/* the upstream's side is TLS */
	unsigned	 detect:1;	/* tls=auto: waiting for first bytes */
	unsigned	 starttls:1;	/* starttls: a ClientHello may come */
	unsigned	 upgrade:1;	/* starttls: both sides switching */
	unsigned	 await_reply:1;	/* ...once the upstream answered */
	uint64_t	 deadline;	/* ...and by when the bytes drain */
};

#define CLIENT(st)	(&(st)->side[0])
#define SERVER(st)	(&(st)->side[1])


/* streampp.c: the PROXY header */
int	 proxy_send(struct stream *st, int v);
void	 proxy_fail(struct stream *st, const char *why);
int	 proxy_from_ok(const struct route *r, const struct sockname *peer);
void	 proxy_read(struct stream *st);

#endif /* STREAMINT_H */
