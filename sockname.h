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
/* 1 for the wildcard addresses 0.0.0.0 and ::; else 0. */
int	 sockname_is_any(const struct sockname *sn) __attribute__((nonnull));

/*
 * An address a connection keeps for its whole life, in 40 bytes rather than
 * a sockname's 116: an IP address inline, a Unix path (rare, and up to 108
 * bytes) out of line.  len 0: none.  flowaddr_get() gives it back as a
 * sockname for the functions above.
 */
struct flowaddr {
	union {
		sa_family_t		 family;
		struct sockaddr_in	 in4;
		struct sockaddr_in6	 in6;
	}			 ip;
	socklen_t		 len;
	char			*path;		/* AF_UNIX, NUL-terminated */
};

void	 flowaddr_set(struct flowaddr *fa, const struct sockname *sn)
	    __attribute__((nonnull));
const struct sockname *flowaddr_get(const struct flowaddr *fa,
	    struct sockname *sn) __attribute__((nonnull));
void	 flowaddr_str(const struct flowaddr *fa, char *buf, size_t len)
	    __attribute__((nonnull));
void	 flowaddr_free(struct flowaddr *fa) __attribute__((nonnull));

#endif /* SOCKNAME_H */
