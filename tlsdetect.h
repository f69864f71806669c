/*
 * tlsdetect.h - telling a TLS client from a plain one by its first bytes
 * (tls=auto), and a ClientHello at the start of a read from plain text
 * (starttls).
 */
#ifndef TLSDETECT_H
#define TLSDETECT_H

#include <stddef.h>
#include <stdint.h>

enum sniff {
	SNIFF_WAIT,			/* nothing to read yet */
	SNIFF_TLS,			/* a TLS handshake record begins */
	SNIFF_PLAIN,			/* anything else */
	SNIFF_END,			/* EOF or an error: let the read say */
};

/* What the bytes p[0..n) begin with (n 0: SNIFF_WAIT). */
enum sniff tls_sniff(const uint8_t *p, size_t n) __attribute__((nonnull));
/* The same for what waits in the socket fd, left there (MSG_PEEK). */
enum sniff tls_sniff_fd(int fd);

#endif /* TLSDETECT_H */
