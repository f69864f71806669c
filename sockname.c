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

#include "sockname.h"

/* "127.0.0.1:8080", "[::1]:80" or a unix path; "-" when unknown. */
void
sockname_str(const struct sockname *sn, char *buf, size_t len)
{
	char h[INET6_ADDRSTRLEN];
	const struct sockaddr_in *s4 = (const void *)&sn->ss;
	const struct sockaddr_in6 *s6 = (const void *)&sn->ss;
	const struct sockaddr_un *su = (const void *)&sn->ss;

	switch (sn->ss.ss_family) {
	case AF_INET:
		inet_ntop(AF_INET, &s4->sin_addr, h, sizeof(h));
		snprintf(buf, len, "%s:%u", h, ntohs(s4->sin_port));
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &s6->sin6_addr, h, sizeof(h));
		snprintf(buf, len, "[%s]:%u", h, ntohs(s6->sin6_port));
		break;
	case AF_UNIX:
		if (sn->len > offsetof(struct sockaddr_un, sun_path) &&
		    su->sun_path[0])
			snprintf(buf, len, "%.*s", (int)(sn->len -
			    offsetof(struct sockaddr_un, sun_path)),
			    su->sun_path);
		else
			snprintf(buf, len, "unix");
		break;
	default:
		snprintf(buf, len, "-");
	}
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
