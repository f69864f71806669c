/*
 * upsess.h - the TLS sessions that upstreams gave tproxy, kept so that the
 * next connection to the same upstream resumes instead of a full handshake.
 */
#ifndef UPSESS_H
#define UPSESS_H

#include "sockname.h"

struct ssl_ctx_st;
struct ssl_st;

/* Keeps the sessions of the TLS client context ctx: 0, or -1 (memory). */
int	 upsess_init(struct ssl_ctx_st *ctx) __attribute__((nonnull));
/*
 * Names ssl's upstream (route, the name sent and checked, the address):
 * its session is kept under that key, and a session kept under it is
 * offered for resumption.
 */
void	 upsess_attach(struct ssl_st *ssl, int route, const char *name,
	    const struct sockname *peer) __attribute__((nonnull));
void	 upsess_cleanup(void);

#endif /* UPSESS_H */
