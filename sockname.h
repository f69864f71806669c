/*
 * sockname.h - a socket address with its length, for any family tproxy
 * speaks, and its text forms.
 */
#ifndef SOCKNAME_H
#define SOCKNAME_H

#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define ADDRSTR		160		/* an address as text */

/*
 * Any address tproxy speaks, in 112 bytes rather than sockaddr_storage's
 * 128: a connection keeps six of them.
 */
union sockaddr_any {
	sa_family_t		 ss_family;
	struct sockaddr		 sa;
	struct sockaddr_in	 in4;
	struct sockaddr_in6	 in6;
	struct sockaddr_un	 un;
};

struct sockname {
	union sockaddr_any	 ss;
	socklen_t		 len;
};

void	 sockname_str(const struct sockname *sn, char *buf, size_t len)
	    __attribute__((nonnull));
void	 sockname_host(const struct sockname *sn, char *buf, size_t len)
	    __attribute__((nonnull));
uint16_t sockname_port(const struct sockname *sn) __attribute__((nonnull));
/* 1 for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104; else 0. */
int	 sockname_is_loopback(const struct sockname *sn)
	    __attribute__((nonnull));

#endif /* SOCKNAME_H */
