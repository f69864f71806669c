/*
 * stream.h - the stream transport: TCP and Unix connections, with TLS.
 */
#ifndef STREAM_H
#define STREAM_H

#include "route.h"
#include "sockname.h"

/* A new connection on accepted socket fd, started; 0, or -1 if it ended. */
int	 stream_accept(struct route *r, int fd, const struct sockname *peer)
	    __attribute__((nonnull));

#endif /* STREAM_H */
