/*
 * addr.h - socat-style address specs, parsed: what the user wrote, split
 * into its parts.
 */
#ifndef ADDR_H
#define ADDR_H

#include <stddef.h>
#include <stdint.h>

enum addr_type {
	A_NONE = 0,
	A_TCP_LISTEN,
	A_UDP_LISTEN,
	A_UNIX_LISTEN,
	A_TCP,
	A_UDP,
	A_UNIX,
	A_ECHO,
	A_TCP_TPROXY,			/* listen: IP_TRANSPARENT */
	A_UDP_TPROXY,
	A_ORIG,				/* target: the original destination */
	A_SOCKS5_LISTEN,		/* listen: an explicit SOCKS5 proxy */
	A_HTTP_LISTEN,			/* listen: an explicit HTTP proxy */
	A_STDIO,			/* listen: standard input and output */
	A_EXEC,				/* target: a command per connection */
};

#define MAX_PORTMAP	16
#define TLS_AUTO	1		/* tls=auto: a ClientHello first, or plain */
#define TLS_STARTTLS	2		/* plain, until a ClientHello comes */
#define DETECT_MS	300		/* tls=auto's default detect= */
#define MAX_PROXY_FROM	16

#include "parse.h"

struct addr {
	enum addr_type	 type;
	char		 host[256];	/* name or literal, no brackets */
	char		 path[108];	/* unix sockets */
	uint16_t	 port;
	int		 reuseaddr;	/* -1 unset, 0, 1 */
	int		 reuseport;	/* SO_REUSEPORT: share the port */
	int		 backlog;	/* 0 unset */
	int		 ipv6only;	/* -1 unset */
	int		 has_bind;
	int		 spoof;		/* connect from the client's address */
	int		 allow_loopback; /* orig: to a loopback destination too */
	int		 tls;		/* TLS on this side */
	int		 tls_detect;	/* listen: TLS_AUTO or TLS_STARTTLS */
	int		 detect_ms;	/* tls=auto: wait for first bytes */
	int		 verify;	/* target: check the upstream (default 1) */
	char		 cert[256], key[256], keylog[256];
	void		*passthrough;	/* pcre2_code *: SNIs not intercepted */
	uint16_t	 portmap[MAX_PORTMAP][2];
	int		 nportmap;
	char		 bind_host[256];
	uint16_t	 bind_port;
	int		 proxy_protocol; /* listen: 1 expects a header; target:
					   the version written (1 or 2) */
	struct cidr	 proxy_from[MAX_PROXY_FROM]; /* none: loopback only */
	int		 nproxy_from;
	char		 auth[512];	/* socks5-listen: USER:PASS */
	char		*cmd;		/* exec: the command (allocated) */
};

int	 addr_parse(const char *spec, int listen_side, struct addr *a,
	    char *err, size_t errlen)
	    __attribute__((nonnull, warn_unused_result));
void	 addr_free(struct addr *a) __attribute__((nonnull));
int	 addr_is_listen(enum addr_type t);
int	 addr_is_udp(enum addr_type t);
int	 addr_is_tproxy(enum addr_type t);
/* socks5-listen and http-listen: the client names its destination. */
int	 addr_is_explicit(enum addr_type t);
const char *addr_type_name(enum addr_type t);
void	 addr_target_str(const struct addr *a, char *buf, size_t len)
	    __attribute__((nonnull));

#endif /* ADDR_H */
