/*
 * conn.h - connections: a client, an upstream, and the chain between them.
 * struct conn is private to conn.c: it holds a connection's life (the
 * chain, choosing and connecting the upstream, idle time, the close and
 * its reason).  How bytes move is a transport's business, behind one table
 * of operations: streams (TCP, Unix, TLS) in stream.c, datagrams (UDP) in
 * udp.c.
 */
#ifndef CONN_H
#define CONN_H

#include <stddef.h>
#include <stdint.h>

#include "route.h"
#include "sockname.h"
#include "tap.h"

struct conn;

/*
 * A transport's operations; tp is what the transport gave conn_new().
 *  start:     after the accept event; a transport that must learn something
 *             first (a TLS ClientHello) calls conn_begin() itself later.
 *             NULL: conn_begin(c, 0) at once.
 *  connected: the upstream socket fd, connecting: take it; returns 1 when
 *             it is open at once, 0 when conn_opened() will follow, -1
 *             after closing fd (no memory).
 *  opened:    the upstream is open (or echo): let bytes flow.
 *  send:      bytes toward the client (to_server 0) or the upstream (1).
 *  shut:      the end of the stream toward that side (FIN once drained).
 *  room:      1 if what direction d feeds, and its sender's output, can
 *             take more bytes (back-pressure on held bytes).
 *  update:    the chain's or a side's state changed: what to wait for.
 *  close:     the connection ends: close sockets (with RST when reset).
 *  free:      after the loop turn: free what tp holds.
 */
struct transport {
	int		 sock_type;	/* SOCK_STREAM or SOCK_DGRAM */
	const char	*expired;	/* why an idle one closes */
	void	(*start)(struct conn *c, void *tp);
	int	(*connected)(struct conn *c, void *tp, int fd);
	void	(*opened)(struct conn *c, void *tp);
	void	(*send)(struct conn *c, void *tp, int to_server,
		    const uint8_t *p, size_t n);
	void	(*shut)(struct conn *c, void *tp, int to_server);
	int	(*room)(struct conn *c, void *tp, enum dir d);
	void	(*update)(struct conn *c, void *tp);
	void	(*close)(struct conn *c, void *tp, int reset);
	void	(*free)(void *tp);
};

/*
 * A new connection of route r from peer (dst: where it meant to go, NULL
 * for the listener's address).  Returns it, or NULL when out of memory.
 */
struct conn *conn_new(struct route *r, const struct sockname *peer,
	    const struct sockname *dst, const struct transport *tp, void *tparg)
	    __attribute__((nonnull(1, 2, 4)));
/* Reports the accept, then lets the transport start. */
void	 conn_start(struct conn *c) __attribute__((nonnull));
/* Opens the chain (none when passthrough) and picks the upstream. */
void	 conn_begin(struct conn *c, int passthrough) __attribute__((nonnull));
/* The upstream is open: say so, and let the transport go on. */
void	 conn_opened(struct conn *c) __attribute__((nonnull));
/* A chunk read in direction d (counted, then through the chain). */
void	 conn_input(struct conn *c, enum dir d, const uint8_t *p, size_t n)
	    __attribute__((nonnull));
/* Bytes moved by the transport itself (splice): counted only. */
void	 conn_count_bytes(struct conn *c, enum dir d, size_t n)
	    __attribute__((nonnull));
/* The end of direction d was read. */
void	 conn_eof(struct conn *c, enum dir d) __attribute__((nonnull));
/* Held bytes may go on: the transport's output drained. */
void	 conn_kick(struct conn *c) __attribute__((nonnull));
void	 conn_close(struct conn *c, const char *reason, int reset)
	    __attribute__((nonnull));
/* An error event with the reason, then a reset. */
void	 conn_fail(struct conn *c, const char *reason) __attribute__((nonnull));

int	 conn_closed(const struct conn *c) __attribute__((nonnull));
/* Why it closes: for the transport's close operation. */
const char *conn_why(const struct conn *c) __attribute__((nonnull));
int	 conn_open(const struct conn *c) __attribute__((nonnull));
int	 conn_connecting(const struct conn *c) __attribute__((nonnull));
/* 1 while filters run on the bytes (no splice then). */
int	 conn_filtered(const struct conn *c) __attribute__((nonnull));
/* 1 if its filters write to stdout (they wait while stdout is behind). */
int	 conn_observes(const struct conn *c) __attribute__((nonnull));
size_t	 conn_held(const struct conn *c, enum dir d) __attribute__((nonnull));
const struct flow *conn_flow(const struct conn *c) __attribute__((nonnull));
/* The transport fills in what it learns (the SNI). */
void	 conn_set_sni(struct conn *c, const char *sni) __attribute__((nonnull(1)));
/* An explicit proxy's client named its destination (host outlives c). */
void	 conn_set_host(struct conn *c, const char *host)
	    __attribute__((nonnull(1)));
/*
 * A PROXY header named the client and where it connected: the real peer
 * becomes flow's peer.
 */
void	 conn_set_proxied(struct conn *c, const struct sockname *client,
	    const struct sockname *dst) __attribute__((nonnull));
/* Our address the client reached, and where it meant to go. */
void	 conn_set_ends(struct conn *c, const struct sockname *local,
	    const struct sockname *dst) __attribute__((nonnull));
struct route *conn_route(const struct conn *c) __attribute__((nonnull));
/* Where the upstream is: a filter's redirect, else the route's target. */
const struct addr *conn_target(const struct conn *c) __attribute__((nonnull));

/* The open connection with that id, or NULL. */
struct conn *conn_find(uint64_t id);
/* Calls fn for every open connection (fn may close the one it gets). */
void	 conn_walk(void (*fn)(struct conn *, void *), void *arg)
	    __attribute__((nonnull(1)));
/* "waiting" (for first bytes), "connecting", "open" or "closed". */
const char *conn_state(const struct conn *c) __attribute__((nonnull));
/* When bytes last moved (ms, monotonic). */
uint64_t conn_last_ms(const struct conn *c) __attribute__((nonnull));

void	 conn_close_all(const char *reason);
/* Every connection looks again at what it waits for (stdout drained). */
void	 conn_update_all(void);
/* Frees the connections closed during this loop turn. */
void	 conn_reap(void);
size_t	 conn_count(void);
/* Connections since the start, and bytes per direction. */
void	 conn_stats(uint64_t *conns, uint64_t bytes[2]);
/* Returns 1 if another connection may start under --max-conns. */
int	 conn_room(void);
/* Called when a connection ends: the room for another may have come. */
extern void (*conn_on_close)(void);

#endif /* CONN_H */
