/*
 * ca.h - the interception CA (given, or generated once and kept in a state
 * directory), the one leaf key per process, and certificates forged from
 * the upstream's, cached.
 */
#ifndef CA_H
#define CA_H

#include <stddef.h>

struct x509_st;
struct evp_pkey_st;

/*
 * Loads the CA (--ca-cert/--ca-key, else the state directory, where one is
 * made when missing) and makes the leaf key, once.  Returns 0, or -1 with
 * a message in err.
 */
int	 ca_init(char *err, size_t errlen) __attribute__((nonnull));
/* The CA's certificate, or NULL before ca_init(). */
struct x509_st *ca_cert_get(void);
/* The leaf key every forged certificate carries, or NULL. */
struct evp_pkey_st *ca_leaf_key(void);
/*
 * The forged twin of up from the cache, or made now (up NULL: one for
 * name).  An upstream certificate too big to forge from is refused.
 * Returns a reference for the caller, or NULL with a message in err.
 */
struct x509_st *ca_forge(struct x509_st *up, const char *name, char *err,
	    size_t errlen) __attribute__((nonnull(2, 3)));
void	 ca_cleanup(void);

#endif /* CA_H */
