/*
 * httpreq.h - the head of an HTTP/1.x request sent to a proxy: CONNECT
 * host:port, or an absolute URI (http://host[:port]/path), and the body's
 * framing, parsed.
 */
#ifndef HTTPREQ_H
#define HTTPREQ_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_HEAD_MAX	(64 * 1024)	/* a longer head gets 431 */

struct httpreq {
	size_t		 len;		/* the head, through its empty line */
	int		 connect;	/* CONNECT host:port */
	char		 host[256];	/* no brackets */
	uint16_t	 port;
	size_t		 method_len;	/* "GET" */
	size_t		 path_off;	/* absolute URI: where the path starts */
	size_t		 path_len;	/* 0: none ("/" is meant) */
	size_t		 version_off;	/* "HTTP/1.1" through the line's end */
	int		 chunked;	/* Transfer-Encoding: chunked */
	uint64_t	 clen;		/* Content-Length (0 when absent) */
	int		 status;	/* malformed: 400, or 431 when too long */
};

/*
 * Parses the head at p: 1 when it is whole (r filled), 0 when p holds only a
 * beginning of it, -1 when it is malformed or too long (r->status, *bad).
 */
int	 httpreq_parse(const uint8_t *p, size_t n, struct httpreq *r,
	    const char **bad) __attribute__((nonnull));
/*
 * Writes the head with its request line in origin form (METHOD SP path SP
 * version) into out (at least r->len + 1 bytes).  Returns its length.
 */
size_t	 httpreq_origin(const uint8_t *p, const struct httpreq *r,
	    uint8_t *out) __attribute__((nonnull));

#endif /* HTTPREQ_H */
