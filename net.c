/*
 * net.c - sockets: resolving, listening, non-blocking connects.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net.h"

/*
 * Resolves host (a literal or a name) and port into out.  passive asks for a
 * listen address.  Returns 0, or -1 with a message in err.
 */
int
net_resolve(const char *host, uint16_t port, int passive,
    struct sockname *out, char *err, size_t errlen)
{
	struct addrinfo hints, *res;
	char ps[8];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	snprintf(ps, sizeof(ps), "%u", port);
	rc = getaddrinfo(host, ps, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host,
		    gai_strerror(rc));
		return -1;
	}
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int
unix_name(const char *path, struct sockname *sn)
{
	struct sockaddr_un *su = (void *)&sn->ss;

	memset(sn, 0, sizeof(*sn));
	su->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(su->sun_path))
		return -1;
	strcpy(su->sun_path, path);
	sn->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(path) + 1);
	return 0;
}

/* Returns 1 if nothing listens on the Unix socket (a stale file). */
static int
unix_stale(const struct sockname *sn)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), stale;

	if (fd == -1)
		return 0;
	stale = connect(fd, (const struct sockaddr *)&sn->ss, sn->len) == -1 &&
	    errno == ECONNREFUSED;
	close(fd);
	return stale;
}

/*
 * Sets IP_TRANSPARENT (IPV6_TRANSPARENT) on fd, so it may accept traffic for
 * and send from addresses that are not this host's.  Returns 0, or -1 with
 * a message that names the missing capability.
 */
int
net_transparent(int fd, int family, char *err, size_t errlen)
{
	int one = 1;

	if (setsockopt(fd, family == AF_INET6 ? SOL_IPV6 : SOL_IP,
	    family == AF_INET6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &one,
	    sizeof(one)) == 0) {
		/* dual-stack: IPv4 traffic on an IPv6 socket needs both */
		if (family == AF_INET6)
			(void)setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one,
			    sizeof(one));
		return 0;
	}
	if (errno == EPERM)
		snprintf(err, errlen, "IP_TRANSPARENT: %s: needs CAP_NET_ADMIN "
		    "(run as root, or: setcap cap_net_admin+ep tproxy; add "
		    "cap_net_bind_service for udp-tproxy to ports below 1024)",
		    strerror(errno));
	else
		snprintf(err, errlen, "IP_TRANSPARENT: %s", strerror(errno));
	return -1;
}

/*
 * The original destination of a connection redirected by NAT (nft
 * redirect/dnat): SO_ORIGINAL_DST, IP6T_SO_ORIGINAL_DST for IPv6.
 * Returns 0, or -1 with errno set (ENOENT: no NAT entry).
 */
int
net_original_dst(int fd, int family, struct sockname *out)
{
	memset(out, 0, sizeof(*out));
	out->len = family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	if (getsockopt(fd, family == AF_INET6 ? SOL_IPV6 : SOL_IP,
	    family == AF_INET6 ? IP6T_SO_ORIGINAL_DST : SO_ORIGINAL_DST,
	    &out->ss, &out->len) == -1)
		return -1;
	return 0;
}

/* Returns 1 if addr (port ignored) is one of this host's addresses. */
int
net_is_local(const struct sockname *sn)
{
	struct sockname b = *sn;
	struct sockaddr_in *s4 = (void *)&b.ss;
	struct sockaddr_in6 *s6 = (void *)&b.ss;
	int fd, local;

	if (sn->ss.ss_family == AF_INET)
		s4->sin_port = 0;
	else if (sn->ss.ss_family == AF_INET6)
		s6->sin6_port = 0;
	else
		return 0;
	/* without IP_TRANSPARENT only a local address can be bound */
	if ((fd = socket(sn->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	local = bind(fd, (struct sockaddr *)&b.ss, b.len) == 0;
	close(fd);
	return local;
}

/*
 * Creates, binds and listens a socket for a; fills *bound.  Returns the
 * socket, or -1 with a message in err.  A stale Unix socket file is
 * removed first, as nothing can be listening on it if bind would fail.
 */
int
net_listen(const struct addr *a, struct sockname *bound, char *err,
    size_t errlen)
{
	struct sockname sn;
	char hs[ADDRSTR];
	int fd = -1, one = 1;

	if (a->type == A_UNIX_LISTEN) {
		struct stat st;

		if (unix_name(a->path, &sn) == -1) {
			snprintf(err, errlen, "socket path too long");
			return -1;
		}
		if (lstat(a->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    unix_stale(&sn))
			unlink(a->path);
		snprintf(hs, sizeof(hs), "%s", a->path);
	} else {
		if (net_resolve(a->host, a->port, 1, &sn, err, errlen) == -1)
			return -1;
		sockname_str(&sn, hs, sizeof(hs));
	}
	fd = socket(sn.ss.ss_family, (addr_is_udp(a->type) ? SOCK_DGRAM :
	    SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	if (a->type != A_UNIX_LISTEN) {
		if (a->reuseaddr != 0 && setsockopt(fd, SOL_SOCKET,
		    SO_REUSEADDR, &one, sizeof(one)) == -1)
			goto fail;
		/* several processes on one port, the kernel spreading
		   clients among them */
		if (a->reuseport == 1 && setsockopt(fd, SOL_SOCKET,
		    SO_REUSEPORT, &one, sizeof(one)) == -1)
			goto fail;
		if (addr_is_tproxy(a->type) && net_transparent(fd,
		    sn.ss.ss_family, err, errlen) == -1) {
			close(fd);
			return -1;
		}
		/* a dual-stack socket gets IPv4 datagrams too: ask for both */
		if (a->type == A_UDP_TPROXY && (setsockopt(fd, SOL_IP,
		    IP_RECVORIGDSTADDR, &one, sizeof(one)) == -1 ||
		    (sn.ss.ss_family == AF_INET6 && setsockopt(fd, SOL_IPV6,
		    IPV6_RECVORIGDSTADDR, &one, sizeof(one)) == -1)))
			goto fail;
		if (sn.ss.ss_family == AF_INET6 && a->ipv6only >= 0 &&
		    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &a->ipv6only,
		    sizeof(a->ipv6only)) == -1)
			goto fail;
	}
	if (bind(fd, (struct sockaddr *)&sn.ss, sn.len) == -1)
		goto fail;
	if (addr_is_udp(a->type))
		net_udp_buffers(fd);
	else if (listen(fd, a->backlog ? a->backlog : 1024) == -1)
		goto fail;
	/* accepted sockets inherit it: no setsockopt() per client */
	if (!addr_is_udp(a->type) && a->type != A_UNIX_LISTEN)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	bound->len = sizeof(bound->ss);
	if (getsockname(fd, (struct sockaddr *)&bound->ss, &bound->len) == -1)
		goto fail;
	if (a->type == A_UNIX_LISTEN)
		*bound = sn;
	return fd;
fail:
	snprintf(err, errlen, "bind %s: %s", hs, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

/*
 * Starts a non-blocking connect of a socket of type (SOCK_STREAM or
 * SOCK_DGRAM) to a, or to *pre when the destination is already known (a
 * literal resolved at start-up, or an original destination); fills *to with
 * the address tried.  With spoof, the socket is bound to that address first
 * (IP_TRANSPARENT), else to a's bind= if any.  Returns the socket, or -1
 * with a message in err.
 */
int
net_connect(const struct addr *a, int type, const struct sockname *pre,
    const struct sockname *spoof, struct sockname *to, char *err,
    size_t errlen)
{
	char hs[ADDRSTR];
	int fd, one = 1;

	if (a->type == A_UNIX) {
		if (unix_name(a->path, to) == -1) {
			snprintf(err, errlen, "socket path too long");
			return -1;
		}
	} else if (pre != NULL) {
		*to = *pre;
	} else if (net_resolve(a->host, a->port, 0, to, err, errlen) == -1)
		return -1;
	fd = socket(to->ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	if (type == SOCK_DGRAM)
		net_udp_buffers(fd);
	else if (to->ss.ss_family != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	if (spoof != NULL) {
		/* the upstream sees the client's own address and port */
		if (spoof->ss.ss_family != to->ss.ss_family) {
			snprintf(err, errlen, "spoof: client and upstream are "
			    "of different address families");
			close(fd);
			return -1;
		}
		if (net_transparent(fd, to->ss.ss_family, err, errlen) == -1) {
			close(fd);
			return -1;
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one));
		if (bind(fd, (const struct sockaddr *)&spoof->ss,
		    spoof->len) == -1)
			goto fail;
	} else if (a->has_bind) {
		struct sockname bn;

		if (net_resolve(a->bind_host, a->bind_port, 1, &bn, err,
		    errlen) == -1) {
			close(fd);
			return -1;
		}
		if (a->bind_port)
			(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
			    sizeof(one));
		if (bind(fd, (struct sockaddr *)&bn.ss, bn.len) == -1)
			goto fail;
	}
	if (connect(fd, (struct sockaddr *)&to->ss, to->len) == -1 &&
	    errno != EINPROGRESS)
		goto fail;
	return fd;
fail:
	sockname_str(to, hs, sizeof(hs));
	snprintf(err, errlen, "connect %s: %s", hs, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

#define UDP_BUFSZ	(4 * 1024 * 1024)

void
net_udp_buffers(int fd)
{
	int sz = UDP_BUFSZ;

	/* FORCE passes net.core.rmem_max when we may; else the capped size */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) == -1)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) == -1)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
}
