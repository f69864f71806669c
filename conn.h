/*
 * conn.h - connections: a client, an upstream, and the chain between them.
 * struct conn is private to conn.c.  How bytes move is the transport's
 * business: streams (TCP, Unix, TLS) live in conn.c; datagrams (UDP) in
 * udp.c, behind the same table of operations.
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
 *  connected: the upstream socket fd (connecting or connected): take it;
 *             returns 0, or -1 after closing fd.
 *  send:      bytes toward the client (to_server 0) or the upstream (1).
 *  shut:      the end of the stream toward that side (FIN once drained).
 *  update:    the chain's or a side's state changed: what to wait for.
 *  close:     the connection ends: close sockets (with RST when reset) and
 *             free what tp holds.
 */
struct transport {
	int		 sock_type;	/* SOCK_STREAM or SOCK_DGRAM */
	const char	*expired;	/* why an idle one closes */
	int	(*connected)(struct conn *c, void *tp, int fd);
	void	(*send)(struct conn *c, void *tp, int to_server,
		    const uint8_t *p, size_t n);
	void	(*shut)(struct conn *c, void *tp, int to_server);
	void	(*update)(struct conn *c, void *tp);
	void	(*close)(struct conn *c, void *tp, int reset);
};

/*
 * A new connection of route r from peer (dst: where it meant to go, NULL
 * for the listener's address).  Returns it, or NULL when out of memory.
 */
struct conn *conn_new(struct route *r, const struct sockname *peer,
	    const struct sockname *dst, const struct transport *tp, void *tparg)
	    __attribute__((nonnull(1, 2, 4)));
/* A new stream connection on accepted socket fd; NULL if it ended at once. */
struct conn *conn_stream(struct route *r, int fd, const struct sockname *peer)
	    __attribute__((nonnull));
/* Reports the accept, opens the chain and picks the upstream. */
void	 conn_start(struct conn *c) __attribute__((nonnull));
/* A chunk read in direction d (counted, then through the chain). */
void	 conn_input(struct conn *c, enum dir d, const uint8_t *p, size_t n)
	    __attribute__((nonnull));
void	 conn_close(struct conn *c, const char *reason, int reset)
	    __attribute__((nonnull));
/* An error event with the reason, then a reset. */
void	 conn_fail(struct conn *c, const char *reason) __attribute__((nonnull));
int	 conn_closed(const struct conn *c) __attribute__((nonnull));
int	 conn_open(const struct conn *c) __attribute__((nonnull));
const struct flow *conn_flow(const struct conn *c) __attribute__((nonnull));
/* Bytes the chain holds in direction d. */
size_t	 conn_held(const struct conn *c, enum dir d) __attribute__((nonnull));
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
