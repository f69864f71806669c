/*
 * httpproxy.h - the client's stream on an http-listen connection that
 * forwards absolute-URI requests: each request head rewritten to origin
 * form, its body passed on as its framing says, so keep-alive works.
 */
#ifndef HTTPPROXY_H
#define HTTPPROXY_H

#include <stddef.h>
#include <stdint.h>

#include "httpreq.h"

struct hp;

/* Bytes that go upstream, in order. */
typedef void (*hp_emit)(void *arg, const uint8_t *p, size_t n);

/*
 * A new forwarder for the connection's host:port, after its first request
 * head r (whose body comes next).  Returns NULL when out of memory.
 */
struct hp *hp_new(const struct httpreq *r) __attribute__((nonnull));
/*
 * The client's next bytes.  Returns 0, or -1 when the connection must end:
 * *status is then the response for the client (400 or 431; 0: none) and
 * *why the reason.
 */
int	 hp_feed(struct hp *h, const uint8_t *p, size_t n, hp_emit emit,
	    void *arg, int *status, const char **why)
	    __attribute__((nonnull(1, 4, 6, 7)));
void	 hp_free(struct hp *h);
/* The response with status (400, 431, 502) and a one-line reason. */
size_t	 hp_response(char *out, size_t len, int status, const char *why)
	    __attribute__((nonnull));

#endif /* HTTPPROXY_H */
