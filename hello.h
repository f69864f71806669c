/*
 * hello.h - the TLS ClientHello parser (untrusted input): SNI and ALPN.
 */
#ifndef HELLO_H
#define HELLO_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

struct hello {
	char		 sni[256];	/* "" when absent or invalid */
	int		 sni_bad;	/* an invalid name was sent */
	uint8_t		 alpn[256];	/* the offer, in wire format */
	size_t		 alpn_len;
};

/* Returns 1 parsed, 0 need more bytes, -1 malformed. */
int	 hello_parse(const uint8_t *p, size_t n, struct hello *h)
	    __attribute__((nonnull));

/* The end of the records begun in p[0..n): a count above n. */
size_t	 hello_need(const uint8_t *p, size_t n) __attribute__((nonnull));

#endif /* HELLO_H */
