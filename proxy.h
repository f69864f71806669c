/*
 * proxy.h - the PROXY protocol (haproxy's proxy-protocol.txt, v1 and v2):
 * reading the header a load balancer or another tproxy puts in front of a
 * stream, and writing one in front of ours.
 */
#ifndef PROXY_H
#define PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "sockname.h"

#define PP_V1_MAX	107		/* a v1 line, CRLF included */
#define PP_MAX		4096		/* a whole header we accept (v2) */
#define PP_OUT_MAX	(PP_V1_MAX + 1)	/* a header we write, and a NUL */

/* What a header says. */
struct pp_hdr {
	int		 version;	/* 1 or 2 */
	int		 local;		/* LOCAL, UNKNOWN, or not IP: the real
					   peer is the client */
	struct sockname	 src;		/* the client, unless local */
	struct sockname	 dst;		/* where it connected */
	size_t		 len;		/* header bytes, TLVs included */
};

/*
 * Parses the header at the start of p[0..n).  Returns 1 with h filled
 * (h->len bytes are the header), 0 when every byte so far is a prefix of a
 * header that needs more, or -1 with a reason in *why when it is not a
 * valid one.
 */
int	 pp_parse(const uint8_t *p, size_t n, struct pp_hdr *h,
	    const char **why) __attribute__((nonnull));

/*
 * Writes a version 1 or 2 header saying that src connected to dst into
 * out (PP_OUT_MAX bytes); returns its length.  Addresses that are not IPv4
 * or IPv6 make "PROXY UNKNOWN" (v1) or a LOCAL header (v2).
 */
size_t	 pp_build(int version, const struct sockname *src,
	    const struct sockname *dst, uint8_t *out) __attribute__((nonnull));

#endif /* PROXY_H */
