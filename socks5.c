/*
 * socks5.c - the client's side of a SOCKS5 handshake (RFC 1928, RFC 1929).
 * The bytes are the client's: every length is checked before it is used,
 * and tests/fuzz/fuzz_socks.c runs these parsers under libFuzzer.
 *
 *   greeting = VER(1)=5 NMETHODS(1) METHODS(NMETHODS)
 *   auth     = VER(1)=1 ULEN(1) UNAME(ULEN) PLEN(1) PASSWD(PLEN)
 *   request  = VER(1)=5 CMD(1) RSV(1) ATYP(1) DST.ADDR DST.PORT(2)
 *   DST.ADDR = 4 bytes (ATYP 1) | LEN(1) NAME(LEN) (ATYP 3) | 16 bytes (4)
 *   reply    = VER(1)=5 REP(1) RSV(1)=0 ATYP(1) BND.ADDR BND.PORT(2)
 *
 * A name is 1 to 255 bytes of letters, digits, '.', '-' and '_': what a
 * resolver takes, and nothing a log line could be fooled by.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <string.h>

#include "socks5.h"

int
s5_greeting(const uint8_t *p, size_t n, size_t *len, unsigned *methods,
    const char **bad)
{
	size_t i;

	if (n >= 1 && p[0] != S5_VERSION) {
		*bad = "not SOCKS version 5";
		return -1;
	}
	if (n < 2 || n < 2 + (size_t)p[1])
		return 0;
	if (p[1] == 0) {
		*bad = "SOCKS greeting offers no method";
		return -1;
	}
	*methods = 0;
	for (i = 0; i < p[1]; i++) {
		if (p[2 + i] == S5_M_NONE)
			*methods |= 1u << S5_M_NONE;
		else if (p[2 + i] == S5_M_USERPASS)
			*methods |= 1u << S5_M_USERPASS;
	}
	*len = 2 + (size_t)p[1];
	return 1;
}

/* Copies a length-prefixed field at p[off] into out; the offset after it. */
static size_t
field(const uint8_t *p, size_t off, char out[256])
{
	size_t l = p[off];

	memcpy(out, p + off + 1, l);
	out[l] = '\0';
	return off + 1 + l;
}

int
s5_auth(const uint8_t *p, size_t n, size_t *len, char user[256],
    char pass[256], const char **bad)
{
	size_t plen_at;

	if (n >= 1 && p[0] != S5_AUTH_VERSION) {
		*bad = "not user/password authentication version 1";
		return -1;
	}
	if (n < 2)
		return 0;
	plen_at = 2 + (size_t)p[1];
	if (n < plen_at + 1 || n < plen_at + 1 + (size_t)p[plen_at])
		return 0;
	*len = field(p, plen_at, pass);
	(void)field(p, 1, user);
	/* a NUL inside a field would cut it short: never equal */
	if (strlen(user) != p[1] || strlen(pass) != p[plen_at]) {
		*bad = "NUL byte in the user name or password";
		return -1;
	}
	return 1;
}

/* Returns 1 if the l bytes at p make a host name we resolve. */
static int
name_ok(const uint8_t *p, size_t l)
{
	size_t i;

	if (l == 0)
		return 0;
	for (i = 0; i < l; i++)
		if (!isalnum(p[i]) && p[i] != '.' && p[i] != '-' &&
		    p[i] != '_')
			return 0;
	return 1;
}

int
s5_request(const uint8_t *p, size_t n, struct s5_req *r, const char **bad)
{
	size_t alen;

	r->rep = S5_FAIL;
	if (n >= 1 && p[0] != S5_VERSION) {
		*bad = "not SOCKS version 5";
		return -1;
	}
	if (n < 5)
		return 0;
	r->cmd = p[1];
	r->atyp = p[3];
	switch (p[3]) {
	case S5_ATYP_V4:
		alen = 4;
		break;
	case S5_ATYP_V6:
		alen = 16;
		break;
	case S5_ATYP_NAME:
		alen = 1 + (size_t)p[4];
		break;
	default:
		r->rep = S5_BADATYP;
		*bad = "unknown SOCKS address type";
		return -1;
	}
	if (n < 4 + alen + 2)
		return 0;
	r->len = 4 + alen + 2;
	r->port = (uint16_t)(p[4 + alen] << 8 | p[4 + alen + 1]);
	if (p[3] == S5_ATYP_V4)
		inet_ntop(AF_INET, p + 4, r->host, sizeof(r->host));
	else if (p[3] == S5_ATYP_V6)
		inet_ntop(AF_INET6, p + 4, r->host, sizeof(r->host));
	else {
		if (!name_ok(p + 5, alen - 1)) {
			*bad = "bad host name in the SOCKS request";
			return -1;
		}
		memcpy(r->host, p + 5, alen - 1);
		r->host[alen - 1] = '\0';
	}
	if (r->port == 0) {
		*bad = "port 0 in the SOCKS request";
		return -1;
	}
	return 1;
}

size_t
s5_reply(uint8_t out[S5_REPLY_MAX], int rep, const struct sockaddr *bnd)
{
	const struct sockaddr_in *s4 = (const void *)bnd;
	const struct sockaddr_in6 *s6 = (const void *)bnd;

	out[0] = S5_VERSION;
	out[1] = (uint8_t)rep;
	out[2] = 0;
	if (bnd != NULL && bnd->sa_family == AF_INET6) {
		out[3] = S5_ATYP_V6;
		memcpy(out + 4, &s6->sin6_addr, 16);
		memcpy(out + 20, &s6->sin6_port, 2);
		return 22;
	}
	out[3] = S5_ATYP_V4;
	if (bnd != NULL && bnd->sa_family == AF_INET) {
		memcpy(out + 4, &s4->sin_addr, 4);
		memcpy(out + 8, &s4->sin_port, 2);
	} else
		memset(out + 4, 0, 6);
	return 10;
}
