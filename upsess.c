/*
 * upsess.c - resuming TLS sessions with upstreams.  A full handshake costs
 * the upstream a signature and tproxy the parsing and checking of its
 * certificate chain; a resumed one (a TLS 1.3 ticket, with a fresh ECDHE
 * exchange all the same, or a TLS 1.2 session) costs neither.  Every
 * connection to an upstream offers the last session that upstream gave for
 * the same route, name and address, as browsers do.
 *
 * A session is kept only from a handshake that succeeded, so it carries a
 * certificate that was verified (verify=1) for the very name it is looked
 * up by, and its peer certificate is what the forged one is made from.
 * The table is small and bounded: the oldest entry goes first.
 */
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "out.h"
#include "upsess.h"

#define UPSESS_MAX	64
#define UPSESS_KEY	(16 + 256 + ADDRSTR)

struct upsess {
	char		 key[UPSESS_KEY];
	SSL_SESSION	*sess;
};

static struct upsess	 table[UPSESS_MAX];
static size_t		 nused, oldest;
static int		 key_idx = -1;	/* SSL ex_data: the key (malloc) */

static void
key_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
}

static struct upsess *
find(const char *key)
{
	size_t i;

	for (i = 0; i < nused; i++)
		if (strcmp(table[i].key, key) == 0)
			return &table[i];
	return NULL;
}

/* OpenSSL has a new session for ssl (after the handshake, or a ticket). */
static int
new_session(SSL *ssl, SSL_SESSION *sess)
{
	const char *key = SSL_get_ex_data(ssl, key_idx);
	struct upsess *u;

	if (key == NULL || !SSL_SESSION_is_resumable(sess))
		return 0;
	if ((u = find(key)) == NULL) {
		if (nused < UPSESS_MAX)
			u = &table[nused++];
		else {
			u = &table[oldest];
			oldest = (oldest + 1) % UPSESS_MAX;
		}
		snprintf(u->key, sizeof(u->key), "%s", key);
	}
	SSL_SESSION_free(u->sess);
	u->sess = sess;			/* the reference OpenSSL gave us */
	return 1;
}

int
upsess_init(SSL_CTX *ctx)
{
	if (key_idx == -1 && (key_idx = SSL_get_ex_new_index(0, NULL, NULL,
	    NULL, key_free)) == -1)
		return -1;
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, new_session);
	return 0;
}

void
upsess_attach(SSL *ssl, int route, const char *name,
    const struct sockname *peer)
{
	char a[ADDRSTR], key[UPSESS_KEY], *k;
	struct upsess *u;

	if (key_idx == -1)
		return;
	sockname_str(peer, a, sizeof(a));
	snprintf(key, sizeof(key), "%d %s %s", route, name, a);
	if ((u = find(key)) != NULL)
		(void)SSL_set_session(ssl, u->sess);
	if ((k = strdup(key)) != NULL && SSL_set_ex_data(ssl, key_idx, k) != 1)
		free(k);
}

void
upsess_cleanup(void)
{
	size_t i;

	for (i = 0; i < nused; i++) {
		SSL_SESSION_free(table[i].sess);
		table[i].sess = NULL;
	}
	nused = oldest = 0;
}
