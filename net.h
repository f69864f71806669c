/*
 * net.h - sockets: resolving, listening, non-blocking connects,
 * IP_TRANSPARENT, SO_ORIGINAL_DST.
 */
#ifndef NET_H
#define NET_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "sockname.h"

/* Binds and listens a; returns the socket (bound address in *bound), or -1. */
int	 net_listen(const struct addr *a, struct sockname *bound, char *err,
	    size_t errlen) __attribute__((nonnull, warn_unused_result));
int	 net_connect(const struct addr *a, int type,
	    const struct sockname *pre, const struct sockname *spoof,
	    struct sockname *to, char *err, size_t errlen)
	    __attribute__((nonnull(1, 5, 6), warn_unused_result));
int	 net_transparent(int fd, int family, char *err, size_t errlen);
int	 net_original_dst(int fd, int family, struct sockname *out)
	    __attribute__((nonnull));
int	 net_is_local(const struct sockname *sn) __attribute__((nonnull));
int	 net_resolve(const char *host, uint16_t port, int passive,
	    struct sockname *out, char *err, size_t errlen)
	    __attribute__((nonnull, warn_unused_result));
/* Large socket buffers for a UDP socket. */
void	 net_udp_buffers(int fd);

#endif /* NET_H */
