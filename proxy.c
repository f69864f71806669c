/*
 * proxy.c - the PROXY protocol header, read and written (haproxy's
 * proxy-protocol.txt).  The bytes read are untrusted: every length is
 * bounded before it is used, and tests/fuzz/fuzz_proxy.c runs pp_parse()
 * under libFuzzer.
 *
 * Version 1, one text line of at most 107 bytes:
 *   header  = "PROXY" SP proto CRLF
 *   proto   = "TCP4" SP ip4 SP ip4 SP port SP port
 *           | "TCP6" SP ip6 SP ip6 SP port SP port
 *           | "UNKNOWN" *( any byte but CR or LF )
 *   port    = 1*5DIGIT                          ; 0..65535
 * Version 2, binary, all numbers big-endian:
 *   header  = sig ver-cmd fam len payload
 *   sig     = %x0D.0A.0D.0A.00.0D.0A.51.55.49.54.0A   ; 12 bytes
 *   ver-cmd = %x20 (LOCAL) | %x21 (PROXY)
 *   fam     = %x00 (UNSPEC) | %x11 (TCP over IPv4) | %x21 (TCP over IPv6)
 *           | %x31 (stream over Unix)
 *   len     = 2 bytes: the payload's length (PP_MAX - 16 at most here)
 *   payload = addresses (12 bytes for IPv4: src dst sport dport; 36 for
 *             IPv6), then TLVs, skipped
 * The first byte tells them apart: 'P' for v1, CR for v2.  LOCAL, UNKNOWN
 * and Unix addresses mean that the real peer is the client.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "proxy.h"

static const uint8_t v2sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

/* Fills sn with an IPv4 (a4) or IPv6 (a6) address and a port. */
static void
set_addr(struct sockname *sn, int family, const uint8_t *a, uint16_t port)
{
	memset(sn, 0, sizeof(*sn));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (void *)&sn->ss;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a, 4);
		s4->sin_port = htons(port);
		sn->len = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (void *)&sn->ss;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, a, 16);
		s6->sin6_port = htons(port);
		sn->len = sizeof(*s6);
	}
}

/* A v1 port: 1 to 5 digits, at most 65535; returns 0 or -1. */
static int
v1_port(const char *s, uint16_t *port)
{
	size_t i, n = strlen(s);
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* The fields of a v1 line after "PROXY " (line: NUL-terminated, no CRLF). */
static int
v1_fields(char *line, struct pp_hdr *h, const char **why)
{
	char *f[5], *p = line;
	uint8_t a[2][16];
	uint16_t port[2];
	int family, i;

	for (i = 0; i < 5; i++) {
		f[i] = p;
		if ((p = strchr(p, ' ')) == NULL) {
			i++;
			break;
		}
		*p++ = '\0';
	}
	if (strcmp(f[0], "UNKNOWN") == 0) {
		h->local = 1;
		return 1;
	}
	if (strcmp(f[0], "TCP4") == 0)
		family = AF_INET;
	else if (strcmp(f[0], "TCP6") == 0)
		family = AF_INET6;
	else {
		*why = "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN";
		return -1;
	}
	if (i != 5 || p != NULL) {
		*why = "PROXY v1: expected two addresses and two ports";
		return -1;
	}
	for (i = 0; i < 2; i++)
		if (inet_pton(family, f[1 + i], a[i]) != 1 ||
		    v1_port(f[3 + i], &port[i]) == -1) {
			*why = "PROXY v1: bad address or port";
			return -1;
		}
	set_addr(&h->src, family, a[0], port[0]);
	set_addr(&h->dst, family, a[1], port[1]);
	return 1;
}

static int
v1_parse(const uint8_t *p, size_t n, struct pp_hdr *h, const char **why)
{
	char line[PP_V1_MAX + 1];
	const uint8_t *lf;
	size_t len, scan = n < PP_V1_MAX ? n : PP_V1_MAX;

	if (memcmp(p, "PROXY ", n < 6 ? n : 6) != 0) {
		*why = "not a PROXY protocol header";
		return -1;
	}
	if ((lf = memchr(p, '\n', scan)) == NULL) {
		if (n >= PP_V1_MAX) {
			*why = "PROXY v1 line longer than 107 bytes";
			return -1;
		}
		return 0;
	}
	len = (size_t)(lf - p) + 1;
	if (len < 8 || p[len - 2] != '\r' || memchr(p, '\r', len - 2) ||
	    memchr(p, '\0', len)) {
		*why = "PROXY v1: malformed line";
		return -1;
	}
	memcpy(line, p + 6, len - 8);
	line[len - 8] = '\0';
	h->version = 1;
	h->len = len;
	return v1_fields(line, h, why);
}

static int
v2_parse(const uint8_t *p, size_t n, struct pp_hdr *h, const char **why)
{
	size_t len;

	if (memcmp(p, v2sig, n < 12 ? n : 12) != 0) {
		*why = "not a PROXY protocol header";
		return -1;
	}
	if (n < 16)
		return 0;
	if ((p[12] >> 4) != 2 || (p[12] & 0x0f) > 1) {
		*why = "PROXY v2: unknown version or command";
		return -1;
	}
	len = 16 + ((size_t)p[14] << 8 | p[15]);
	if (len > PP_MAX) {
		*why = "PROXY v2 header longer than 4096 bytes";
		return -1;
	}
	if (n < len)
		return 0;
	h->version = 2;
	h->len = len;
	if ((p[12] & 0x0f) == 0) {		/* LOCAL: a health check */
		h->local = 1;
		return 1;
	}
	switch (p[13]) {
	case 0x00:				/* UNSPEC */
	case 0x31:				/* Unix stream */
		h->local = 1;
		return 1;
	case 0x11:
		if (len < 16 + 12)
			break;
		set_addr(&h->src, AF_INET, p + 16, (uint16_t)(p[24] << 8 |
		    p[25]));
		set_addr(&h->dst, AF_INET, p + 20, (uint16_t)(p[26] << 8 |
		    p[27]));
		return 1;
	case 0x21:
		if (len < 16 + 36)
			break;
		set_addr(&h->src, AF_INET6, p + 16, (uint16_t)(p[48] << 8 |
		    p[49]));
		set_addr(&h->dst, AF_INET6, p + 32, (uint16_t)(p[50] << 8 |
		    p[51]));
		return 1;
	default:
		*why = "PROXY v2: not a stream over IPv4, IPv6 or Unix";
		return -1;
	}
	*why = "PROXY v2: addresses longer than the header";
	return -1;
}

int
pp_parse(const uint8_t *p, size_t n, struct pp_hdr *h, const char **why)
{
	memset(h, 0, sizeof(*h));
	if (n == 0)
		return 0;
	if (p[0] == 'P')
		return v1_parse(p, n, h, why);
	if (p[0] == v2sig[0])
		return v2_parse(p, n, h, why);
	*why = "not a PROXY protocol header";
	return -1;
}

/*
 * The address of sn as 16 bytes (IPv4 as ::ffff:a.b.c.d) and its port;
 * returns AF_INET, AF_INET6, or 0 when it is not an IP address.
 */
static int
ip_of(const struct sockname *sn, uint8_t a[16], uint16_t *port)
{
	const struct sockaddr_in *s4 = (const void *)&sn->ss;
	const struct sockaddr_in6 *s6 = (const void *)&sn->ss;

	if (sn->len > 0 && sn->ss.ss_family == AF_INET) {
		memset(a, 0, 10);
		a[10] = a[11] = 0xff;
		memcpy(a + 12, &s4->sin_addr, 4);
		*port = ntohs(s4->sin_port);
		return AF_INET;
	}
	if (sn->len > 0 && sn->ss.ss_family == AF_INET6) {
		memcpy(a, &s6->sin6_addr, 16);
		*port = ntohs(s6->sin6_port);
		return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) ? AF_INET :
		    AF_INET6;
	}
	return 0;
}

size_t
pp_build(int version, const struct sockname *src, const struct sockname *dst,
    uint8_t *out)
{
	uint8_t a[2][16];
	uint16_t port[2];
	char t[2][INET6_ADDRSTRLEN];
	int fs = ip_of(src, a[0], &port[0]), fd = ip_of(dst, a[1], &port[1]);
	int family = fs == AF_INET && fd == AF_INET ? AF_INET : AF_INET6;
	int i, n;

	if (version == 1) {
		if (fs == 0 || fd == 0)
			return (size_t)snprintf((char *)out, PP_OUT_MAX,
			    "PROXY UNKNOWN\r\n");
		for (i = 0; i < 2; i++)
			inet_ntop(family, family == AF_INET ? a[i] + 12 : a[i],
			    t[i], sizeof(t[i]));
		n = snprintf((char *)out, PP_OUT_MAX, "PROXY %s %s %s %u %u\r\n",
		    family == AF_INET ? "TCP4" : "TCP6", t[0], t[1], port[0],
		    port[1]);
		return (size_t)n;
	}
	memcpy(out, v2sig, 12);
	if (fs == 0 || fd == 0) {
		out[12] = 0x20;			/* LOCAL */
		out[13] = out[14] = out[15] = 0;
		return 16;
	}
	out[12] = 0x21;
	out[13] = family == AF_INET ? 0x11 : 0x21;
	out[14] = 0;
	out[15] = family == AF_INET ? 12 : 36;
	n = family == AF_INET ? 4 : 16;
	for (i = 0; i < 2; i++) {
		memcpy(out + 16 + i * n, family == AF_INET ? a[i] + 12 : a[i],
		    (size_t)n);
		out[16 + 2 * n + 2 * i] = (uint8_t)(port[i] >> 8);
		out[16 + 2 * n + 2 * i + 1] = (uint8_t)port[i];
	}
	return 16 + (size_t)out[15];
}
