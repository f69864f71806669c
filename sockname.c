/*
 * sockname.c - socket addresses as text and numbers: "127.0.0.1:8080",
 * "[::1]:80", a Unix path; the host alone; the port; whether it is a
 * loopback address.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockname.h"

/*
 * "127.0.0.1:8080", "[::1]:80" for an IP address sa; "-" for any other
 * family.  Unix paths are the callers' (they keep them differently).
 */
static void
ip_str(const struct sockaddr *sa, char *buf, size_t len)
{
	char h[INET6_ADDRSTRLEN];
	const struct sockaddr_in *s4 = (const void *)sa;
	const struct sockaddr_in6 *s6 = (const void *)sa;

	switch (sa->sa_family) {
	case AF_INET:
		inet_ntop(AF_INET, &s4->sin_addr, h, sizeof(h));
		snprintf(buf, len, "%s:%u", h, ntohs(s4->sin_port));
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &s6->sin6_addr, h, sizeof(h));
		snprintf(buf, len, "[%s]:%u", h, ntohs(s6->sin6_port));
		break;
	default:
		snprintf(buf, len, "-");
	}
}

/* "127.0.0.1:8080", "[::1]:80" or a unix path; "-" when unknown. */
void
sockname_str(const struct sockname *sn, char *buf, size_t len)
{
	const struct sockaddr_un *su = &sn->ss.un;

	if (sn->ss.ss_family != AF_UNIX)
		ip_str(&sn->ss.sa, buf, len);
	else if (sn->len > offsetof(struct sockaddr_un, sun_path) &&
	    su->sun_path[0])
		snprintf(buf, len, "%.*s", (int)(sn->len -
		    offsetof(struct sockaddr_un, sun_path)), su->sun_path);
	else
		snprintf(buf, len, "unix");
}

/* The address alone, without port or brackets ("::1"); "-" when none. */
void
sockname_host(const struct sockname *sn, char *buf, size_t len)
{
	const struct sockaddr_in *s4 = (const void *)&sn->ss;
	const struct sockaddr_in6 *s6 = (const void *)&sn->ss;

	if (sn->ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)len);
	else if (sn->ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
	else
		snprintf(buf, len, "-");
}

uint16_t
sockname_port(const struct sockname *sn)
{
	const struct sockaddr_in *s4 = (const void *)&sn->ss;
	const struct sockaddr_in6 *s6 = (const void *)&sn->ss;

	if (sn->ss.ss_family == AF_INET)
		return ntohs(s4->sin_port);
	if (sn->ss.ss_family == AF_INET6)
		return ntohs(s6->sin6_port);
	return 0;
}

/*
 * Returns 1 if sn is a loopback address: 127.0.0.0/8, ::1, or an IPv4
 * loopback address mapped into IPv6 (::ffff:127.0.0.0/104).
 */
int
sockname_is_loopback(const struct sockname *sn)
{
	const struct sockaddr_in *s4 = (const void *)&sn->ss;
	const struct sockaddr_in6 *s6 = (const void *)&sn->ss;

	if (sn->ss.ss_family == AF_INET)
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	if (sn->ss.ss_family != AF_INET6)
		return 0;
	if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
		return 1;
	return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
	    s6->sin6_addr.s6_addr[12] == 127;
}

int
sockname_is_any(const struct sockname *sn)
{
	if (sn->ss.ss_family == AF_INET)
		return sn->ss.in4.sin_addr.s_addr == htonl(INADDR_ANY);
	if (sn->ss.ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&sn->ss.in6.sin6_addr);
	return 0;
}

/* ------------------------------------------------------------ flowaddr */

/*
 * Keeps sn in fa.  A Unix path is copied out of line; if that copy cannot
 * be made, the address is kept as an unnamed Unix socket ("unix").
 */
void
flowaddr_set(struct flowaddr *fa, const struct sockname *sn)
{
	const size_t off = offsetof(struct sockaddr_un, sun_path);

	if (sn->ss.ss_family == AF_UNIX && fa->len > 0 &&
	    fa->ip.family == AF_UNIX && sn->len == fa->len) {
		/* the same path again (a listener's): keep the copy */
		const char *p = fa->path != NULL ? fa->path : "";

		if (strncmp(p, sn->ss.un.sun_path, sn->len - off) == 0)
			return;
	}
	flowaddr_free(fa);
	if (sn->ss.ss_family == AF_UNIX) {
		fa->ip.family = AF_UNIX;
		fa->len = sn->len;
		if (sn->len > off && sn->ss.un.sun_path[0])
			fa->path = strndup(sn->ss.un.sun_path, sn->len - off);
		if (fa->path == NULL)
			fa->len = (socklen_t)off;
		return;
	}
	if (sn->len > sizeof(fa->ip)) {		/* never for IP */
		fa->len = 0;
		return;
	}
	memcpy(&fa->ip, &sn->ss, sn->len);
	fa->len = sn->len;
}

/* Returns sn, filled from fa. */
const struct sockname *
flowaddr_get(const struct flowaddr *fa, struct sockname *sn)
{
	const size_t off = offsetof(struct sockaddr_un, sun_path);
	size_t n;

	memset(sn, 0, sizeof(*sn));
	if (fa->len == 0)
		return sn;
	if (fa->ip.family != AF_UNIX) {
		memcpy(&sn->ss, &fa->ip, fa->len);
		sn->len = fa->len;
		return sn;
	}
	sn->ss.un.sun_family = AF_UNIX;
	sn->len = (socklen_t)off;
	if (fa->path != NULL) {
		n = strlen(fa->path);
		if (n > sizeof(sn->ss.un.sun_path))
			n = sizeof(sn->ss.un.sun_path);
		memcpy(sn->ss.un.sun_path, fa->path, n);
		sn->len = (socklen_t)(off + n);
	}
	return sn;
}

/* As sockname_str(), straight from fa: log lines call it for every chunk. */
void
flowaddr_str(const struct flowaddr *fa, char *buf, size_t len)
{
	if (fa->len == 0)
		snprintf(buf, len, "-");
	else if (fa->ip.family != AF_UNIX)
		ip_str((const struct sockaddr *)&fa->ip, buf, len);
	else
		snprintf(buf, len, "%s", fa->path != NULL ? fa->path : "unix");
}

void
flowaddr_free(struct flowaddr *fa)
{
	free(fa->path);
	fa->path = NULL;
	fa->len = 0;
}
