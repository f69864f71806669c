/*
 * tlsdetect.c - is a client starting TLS?  A TLS connection begins with a
 * handshake record (content type 22, RFC 8446 5.1): no plain-text protocol
 * in use starts a message with that byte (it is not printable, and no
 * binary protocol tproxy is put in front of begins with it).  One byte
 * decides, so a client is never held waiting for a second one: what
 * follows is checked by hello.c, and a record that begins like a
 * ClientHello but is not one is refused there with a reason (tls=auto) or
 * passed on as plain bytes (starttls).
 *
 * The socket is only peeked at: the bytes stay for the reader that the
 * verdict picks (the ClientHello reader, or the relay).
 */
#include <sys/socket.h>

#include <errno.h>

#include "tlsdetect.h"

#define TLS_HANDSHAKE	22		/* the record's content type */

enum sniff
tls_sniff(const uint8_t *p, size_t n)
{
	if (n == 0)
		return SNIFF_WAIT;
	return p[0] == TLS_HANDSHAKE ? SNIFF_TLS : SNIFF_PLAIN;
}

enum sniff
tls_sniff_fd(int fd)
{
	uint8_t b;
	ssize_t n;

	do
		n = recv(fd, &b, 1, MSG_PEEK);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? SNIFF_WAIT : SNIFF_END;
	if (n == 0)
		return SNIFF_END;
	return tls_sniff(&b, 1);
}
