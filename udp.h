/*
 * udp.h - UDP routes: one session per client, the datagram transport.
 */
#ifndef UDP_H
#define UDP_H

#include "route.h"

/* The route's socket is readable: sessions, datagrams. */
void	 udp_listen_ready(struct route *r) __attribute__((nonnull));

#endif /* UDP_H */
