/*
 * tls.h - TLS interception: the CA, forged certificates, the per-route
 * contexts, the key log, and the TLS state of one side of a connection.
 */
#ifndef TLS_H
#define TLS_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include "hello.h"
#include "route.h"
#include "sockname.h"

/* What a TLS listener's connection learnt from both handshakes. */
struct tlsinfo {
	struct hello	 hello;		/* the client's SNI and ALPN offer */
	uint8_t		 alpn[256];	/* what the upstream chose */
	size_t		 alpn_len;
};

/* The TLS state of one side of a connection. */
struct tls {
	struct ssl_st	*ssl;
	short		 want;		/* POLLIN/POLLOUT that TLS waits for */
	unsigned	 hs:1;		/* handshake under way */
	unsigned	 upstream:1;	/* we are the client of this side */
	unsigned	 notified:1;	/* the peer sent close_notify */
	unsigned	 certreq:1;	/* the peer asked for our certificate */
	unsigned	 alerted:1;	/* the peer sent another alert: */
	unsigned	 starved:1;	/* the last read wants more bytes */
	unsigned char	 alert;		/* its description */
};

struct x509_st;

int	 tls_route_init(struct route *r, char *err, size_t errlen)
	    __attribute__((nonnull));
void	 tls_route_free(struct route *r) __attribute__((nonnull));
void	 tls_cleanup(void);
/*
 * TLS toward the upstream on fd: SNI and the name checked are sni, else
 * host, else the peer's address; the ALPN offer is the client's (ti).
 */
int	 tls_upstream_start(struct tls *s, const struct route *r, int fd,
	    const char *sni, const char *host, const struct flowaddr *peer,
	    int verify, struct tlsinfo *ti, char *err, size_t errlen)
	    __attribute__((nonnull(1, 2, 6, 9)));
/* TLS toward the client on fd, with the route's or a forged certificate. */
int	 tls_client_start(struct tls *s, const struct route *r, int fd,
	    struct x509_st *up, const char *sni, struct tlsinfo *ti,
	    char *err, size_t errlen) __attribute__((nonnull(1, 2, 7)));
/* p[0..n), already read from the client, is what OpenSSL reads first. */
int	 tls_client_prefix(struct tls *s, int fd, const uint8_t *p, size_t n,
	    char *err, size_t errlen) __attribute__((nonnull(1, 5)));
int	 tls_handshake(struct tls *s, struct tlsinfo *ti, char *err,
	    size_t errlen) __attribute__((nonnull(1, 3)));
struct x509_st *tls_peer_cert(struct tls *s) __attribute__((nonnull));
ssize_t	 tls_read(struct tls *s, void *buf, size_t n, char *err,
	    size_t errlen) __attribute__((nonnull));
ssize_t	 tls_write(struct tls *s, const void *buf, size_t n, char *err,
	    size_t errlen) __attribute__((nonnull));
int	 tls_pending(const struct tls *s) __attribute__((nonnull));
/*
 * Returns 1 if the peer ended its stream with close_notify, 0 if the TCP
 * connection just ended (the stream may have been cut short).
 */
int	 tls_eof_clean(const struct tls *s) __attribute__((nonnull));
int	 tls_ready(const struct tls *s) __attribute__((nonnull));
void	 X509_free_ref(struct x509_st *x);
void	 tls_shutdown(struct tls *s) __attribute__((nonnull));
void	 tls_free(struct tls *s) __attribute__((nonnull));

#endif /* TLS_H */
