/*
 * tls.c - TLS interception with OpenSSL: the CA (given, or generated once
 * and kept in a state directory), one leaf key per process, certificates
 * forged from the upstream's and cached, the per-route SSL_CTXs, and the
 * key log.  No crypto or ASN.1 is written here by hand.
 *
 * A forged certificate copies the upstream certificate's subject, its
 * subjectAltName and its validity, gets a fresh random serial and the leaf
 * key, and is signed by the CA.  The client's SNI is never added to it: the
 * forgery is exactly as valid for the client as the real one.
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "opts.h"
#include "out.h"
#include "parse.h"
#include "tls.h"

#define CACHE_MAX	1024		/* forged certificates kept */

static X509	*ca_cert;
static EVP_PKEY	*ca_key;
static EVP_PKEY	*leaf_key;

struct forged {
	unsigned char	 md[32];	/* SHA-256 of the upstream certificate */
	X509		*cert;
};
static struct forged	 cache[CACHE_MAX];
static size_t		 ncache, cache_next;
static BIO_METHOD	*prefix_method;	/* the ClientHello read before TLS */

/* The last OpenSSL error as text (for messages). */
const char *
tls_error(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "unknown error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

static EVP_PKEY *
key_new(void)
{
	return EVP_EC_gen("P-256");
}

/* ------------------------------------------------------------ the CA */

static int
ca_generate(X509 **certp, EVP_PKEY **keyp)
{
	X509 *x = X509_new();
	EVP_PKEY *k = key_new();
	X509_NAME *n;
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	char host[64] = "localhost", cn[128];
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	static const char *const exts[][2] = {
		{ "basicConstraints", "critical,CA:TRUE,pathlen:0" },
		{ "keyUsage", "critical,keyCertSign,cRLSign" },
		{ "subjectKeyIdentifier", "hash" },
	};
	size_t i;

	if (x == NULL || k == NULL)
		goto fail;
	gethostname(host, sizeof(host) - 1);
	snprintf(cn, sizeof(cn), "tproxy interception CA (%s)", host);
	X509_set_version(x, 2);
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f;		/* a random positive serial */
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		goto fail;
	BN_free(bn);
	bn = NULL;
	X509_gmtime_adj(X509_getm_notBefore(x), -86400);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 86400);
	X509_set_pubkey(x, k);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
	    (const unsigned char *)"tproxy", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		ext = X509V3_EXT_conf(NULL, &v3, exts[i][0], exts[i][1]);
		if (ext == NULL || !X509_add_ext(x, ext, -1)) {
			X509_EXTENSION_free(ext);
			goto fail;
		}
		X509_EXTENSION_free(ext);
	}
	if (!X509_sign(x, k, EVP_sha256()))
		goto fail;
	*certp = x;
	*keyp = k;
	return 0;
fail:
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(k);
	return -1;
}

static int
mkdirs(const char *path)
{
	char p[512], *s;

	snprintf(p, sizeof(p), "%s", path);
	for (s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			if (mkdir(p, 0700) == -1 && errno != EEXIST)
				return -1;
			*s = '/';
		}
	return mkdir(p, 0700) == -1 && errno != EEXIST ? -1 : 0;
}

/* $XDG_STATE_HOME/tproxy or ~/.local/state/tproxy. */
static int
state_dir(char *buf, size_t len)
{
	const char *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");

	if (x != NULL && *x == '/')
		snprintf(buf, len, "%s/tproxy", x);
	else if (h != NULL && *h != '\0')
		snprintf(buf, len, "%s/.local/state/tproxy", h);
	else
		return -1;
	return 0;
}

static int
pem_save(const char *path, X509 *x, EVP_PKEY *k)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    k ? 0600 : 0644);
	FILE *f;
	int ok;

	if (fd == -1 || (f = fdopen(fd, "w")) == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	ok = k ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) :
	    PEM_write_X509(f, x);
	return fclose(f) == 0 && ok ? 0 : -1;
}

static X509 *
pem_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (f == NULL)
		return NULL;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

static EVP_PKEY *
pem_key(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (f == NULL)
		return NULL;
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

/*
 * Loads the CA from --ca-cert/--ca-key, or from the state directory, or
 * makes one there.  Returns 0, or -1 with a message in err.
 */
static int
ca_load(char *err, size_t errlen)
{
	char dir[400], cp[512], kp[512];

	if (opt.ca_cert != NULL) {
		if ((ca_cert = pem_cert(opt.ca_cert)) == NULL) {
			snprintf(err, errlen, "--ca-cert=%s: cannot load a "
			    "certificate: %s", opt.ca_cert, errno ?
			    strerror(errno) : tls_error());
			return -1;
		}
		if ((ca_key = pem_key(opt.ca_key)) == NULL) {
			snprintf(err, errlen, "--ca-key=%s: cannot load a "
			    "private key: %s", opt.ca_key, errno ?
			    strerror(errno) : tls_error());
			return -1;
		}
		if (X509_check_private_key(ca_cert, ca_key) != 1) {
			snprintf(err, errlen, "--ca-key=%s does not match "
			    "--ca-cert=%s", opt.ca_key, opt.ca_cert);
			return -1;
		}
		return 0;
	}
	if (state_dir(dir, sizeof(dir)) == -1) {
		snprintf(err, errlen, "no --ca-cert, and neither "
		    "XDG_STATE_HOME nor HOME is set to keep a CA in");
		return -1;
	}
	snprintf(cp, sizeof(cp), "%s/ca.pem", dir);
	snprintf(kp, sizeof(kp), "%s/ca.key", dir);
	errno = 0;
	ca_cert = pem_cert(cp);
	ca_key = pem_key(kp);
	if (ca_cert != NULL && ca_key != NULL &&
	    X509_check_private_key(ca_cert, ca_key) == 1)
		return 0;
	if (access(cp, F_OK) == 0 || access(kp, F_OK) == 0) {
		/* never overwrite a CA a user may already trust */
		snprintf(err, errlen, "%s and %s do not load as a CA and its "
		    "key: fix or remove them", cp, kp);
		return -1;
	}
	X509_free(ca_cert);
	EVP_PKEY_free(ca_key);
	ERR_clear_error();
	if (mkdirs(dir) == -1 || ca_generate(&ca_cert, &ca_key) == -1 ||
	    pem_save(kp, NULL, ca_key) == -1 || pem_save(cp, ca_cert,
	    NULL) == -1) {
		snprintf(err, errlen, "cannot make a CA in %s: %s", dir,
		    errno ? strerror(errno) : tls_error());
		return -1;
	}
	diag_err("tproxy: generated a CA for TLS interception: %s (trust it "
	    "in the clients; its key is %s)", cp, kp);
	return 0;
}

/* ------------------------------------------------------------ forging */

static int
copy_ext(X509 *to, X509 *from, int nid)
{
	int i = X509_get_ext_by_NID(from, nid, -1);

	if (i < 0)
		return 0;
	return X509_add_ext(to, X509_get_ext(from, i), -1) ? 0 : -1;
}

static int
add_ext(X509 *x, X509V3_CTX *v3, const char *name, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf(NULL, v3, name, value);
	int ok;

	if (e == NULL)
		return -1;
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

/*
 * A certificate like up (subject, subjectAltName, validity) for the leaf
 * key, signed by the CA.  With up NULL (no upstream TLS), one for name.
 * Returns it (the caller owns a reference), or NULL.
 */
static X509 *
forge(X509 *up, const char *name)
{
	X509 *x = X509_new();
	X509V3_CTX v3;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	char san[300];

	if (x == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f;		/* positive */
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		goto fail;
	X509_set_version(x, 2);
	X509_set_issuer_name(x, X509_get_subject_name(ca_cert));
	X509_set_pubkey(x, leaf_key);
	X509V3_set_ctx(&v3, ca_cert, x, NULL, NULL, 0);
	if (up != NULL) {
		X509_set_subject_name(x, X509_get_subject_name(up));
		X509_set1_notBefore(x, X509_get0_notBefore(up));
		X509_set1_notAfter(x, X509_get0_notAfter(up));
		/* never valid after the CA is not */
		if (ASN1_TIME_compare(X509_get0_notAfter(x),
		    X509_get0_notAfter(ca_cert)) > 0)
			X509_set1_notAfter(x, X509_get0_notAfter(ca_cert));
		if (copy_ext(x, up, NID_subject_alt_name) == -1)
			goto fail;
	} else {
		X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
		    MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
		X509_gmtime_adj(X509_getm_notBefore(x), -86400);
		X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400);
		snprintf(san, sizeof(san), "%s:%s", host_is_literal(name) ? "IP" :
		    "DNS", name);
		if (add_ext(x, &v3, "subjectAltName", san) == -1)
			goto fail;
	}
	if (add_ext(x, &v3, "basicConstraints", "CA:FALSE") == -1 ||
	    /* an EC key signs; it enciphers no keys */
	    add_ext(x, &v3, "keyUsage", "critical,digitalSignature") == -1 ||
	    add_ext(x, &v3, "extendedKeyUsage", "serverAuth") == -1 ||
	    add_ext(x, &v3, "authorityKeyIdentifier", "keyid") == -1)
		ERR_clear_error();	/* optional extensions */
	if (!X509_sign(x, ca_key, EVP_sha256()))
		goto fail;
	BN_free(bn);
	return x;
fail:
	BN_free(bn);
	X509_free(x);
	return NULL;
}

/* The forged twin of up from the cache, or made now.  NULL on error. */
static X509 *
forge_cached(X509 *up, const char *name)
{
	unsigned char md[32];
	unsigned int mdlen = sizeof(md);
	size_t i;
	X509 *x;

	if (up == NULL)
		return forge(NULL, name);
	if (!X509_digest(up, EVP_sha256(), md, &mdlen))
		return NULL;
	for (i = 0; i < ncache; i++)
		if (memcmp(cache[i].md, md, sizeof(md)) == 0) {
			X509_up_ref(cache[i].cert);
			return cache[i].cert;
		}
	if ((x = forge(up, NULL)) == NULL)
		return NULL;
	/* bounded: when full, the oldest entry makes room */
	i = ncache < CACHE_MAX ? ncache++ : cache_next++ % CACHE_MAX;
	X509_free(cache[i].cert);
	memcpy(cache[i].md, md, sizeof(md));
	cache[i].cert = x;
	X509_up_ref(x);
	return x;
}

/* ------------------------------------------------------------ contexts */

static void
keylog_cb(const SSL *ssl, const char *line)
{
	FILE *f = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

	if (f != NULL) {
		fprintf(f, "%s\n", line);
		fflush(f);
	}
}

/* The client chose among its ALPN offers what the upstream chose. */
static int
alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	struct tlsinfo *ti = SSL_get_app_data(ssl);
	unsigned int i;

	(void)arg;
	if (ti == NULL || ti->alpn_len == 0)
		return SSL_TLSEXT_ERR_NOACK;
	for (i = 0; i < inlen; i += 1u + in[i])
		if (in[i] == ti->alpn_len && i + 1u + in[i] <= inlen &&
		    memcmp(in + i + 1, ti->alpn, ti->alpn_len) == 0) {
			*out = in + i + 1;
			*outlen = in[i];
			return SSL_TLSEXT_ERR_OK;
		}
	return SSL_TLSEXT_ERR_NOACK;
}

static int
ctx_keylog(SSL_CTX *ctx, FILE *keylog)
{
	if (keylog != NULL) {
		SSL_CTX_set_app_data(ctx, keylog);
		SSL_CTX_set_keylog_callback(ctx, keylog_cb);
	}
	return 0;
}

/*
 * Sets up the TLS parts of a route: its contexts, its key log, and the CA
 * and leaf key when it forges.  Returns 0, or -1 with a message.
 */
int
tls_route_init(struct route *r, char *err, size_t errlen)
{
	static int ca_ready;
	FILE *keylog = NULL;

	if (!r->listen.tls && !r->target.tls)
		return 0;
	if (r->listen.keylog[0] != '\0') {
		/*
		 * TLS secrets: readable by the owner only, never through a
		 * symbolic link (one planted where we write would send the
		 * secrets elsewhere), and an existing file is made 0600.
		 */
		int fd = open(r->listen.keylog, O_WRONLY | O_APPEND | O_CREAT |
		    O_CLOEXEC | O_NOFOLLOW, 0600);
		struct stat st;

		if (fd == -1 && errno == ELOOP) {
			snprintf(err, errlen, "keylog=%s: a symbolic link (name "
			    "the file itself)", r->listen.keylog);
			return -1;
		}
		if (fd != -1 && (fstat(fd, &st) == -1 || (S_ISREG(st.st_mode) &&
		    (st.st_mode & 077) && fchmod(fd, 0600) == -1))) {
			close(fd);
			fd = -1;
		}
		if (fd == -1 || (keylog = fdopen(fd, "a")) == NULL) {
			snprintf(err, errlen, "keylog=%s: %s", r->listen.keylog,
			    strerror(errno));
			if (fd != -1)
				close(fd);
			return -1;
		}
	}
	r->keylog = keylog;
	if (r->listen.tls) {
		r->sctx = SSL_CTX_new(TLS_server_method());
		if (r->sctx == NULL)
			goto ssl_fail;
		SSL_CTX_set_min_proto_version(r->sctx, TLS1_2_VERSION);
		/* a peer that closes without close_notify just ends its stream */
		SSL_CTX_set_options(r->sctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
		SSL_CTX_set_mode(r->sctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		SSL_CTX_set_alpn_select_cb(r->sctx, alpn_cb, NULL);
		ctx_keylog(r->sctx, keylog);
		if (r->listen.cert[0] != '\0') {
			if (SSL_CTX_use_certificate_chain_file(r->sctx,
			    r->listen.cert) != 1) {
				snprintf(err, errlen, "cert=%s: %s",
				    r->listen.cert, tls_error());
				return -1;
			}
			if (SSL_CTX_use_PrivateKey_file(r->sctx, r->listen.key[0] ?
			    r->listen.key : r->listen.cert, SSL_FILETYPE_PEM) != 1 ||
			    SSL_CTX_check_private_key(r->sctx) != 1) {
				snprintf(err, errlen, "key=%s: %s",
				    r->listen.key, tls_error());
				return -1;
			}
		}
	}
	/* a CA to forge with, and to trust; made only when forging */
	if ((r->listen.tls && r->listen.cert[0] == '\0') ||
	    (r->target.tls && opt.ca_cert != NULL)) {
		if (!ca_ready && (ca_load(err, errlen) == -1 ||
		    (leaf_key = key_new()) == NULL)) {
			if (leaf_key == NULL && ca_cert != NULL)
				snprintf(err, errlen, "leaf key: %s",
				    tls_error());
			return -1;
		}
		ca_ready = 1;
	}
	if (r->target.tls) {
		r->cctx = SSL_CTX_new(TLS_client_method());
		if (r->cctx == NULL)
			goto ssl_fail;
		SSL_CTX_set_min_proto_version(r->cctx, TLS1_2_VERSION);
		SSL_CTX_set_options(r->cctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
		SSL_CTX_set_mode(r->cctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		ctx_keylog(r->cctx, keylog);
		if (r->target.verify) {
			/* the system store, and our own CA */
			SSL_CTX_set_default_verify_paths(r->cctx);
			if (ca_cert != NULL)
				X509_STORE_add_cert(SSL_CTX_get_cert_store(
				    r->cctx), ca_cert);
			SSL_CTX_set_verify(r->cctx, SSL_VERIFY_PEER, NULL);
		}
	}
	return 0;
ssl_fail:
	snprintf(err, errlen, "TLS: %s", tls_error());
	return -1;
}

void
tls_route_free(struct route *r)
{
	SSL_CTX_free(r->sctx);
	SSL_CTX_free(r->cctx);
	if (r->keylog)
		fclose(r->keylog);
	r->sctx = r->cctx = NULL;
	r->keylog = NULL;
}

void
tls_cleanup(void)
{
	size_t i;

	for (i = 0; i < ncache; i++)
		X509_free(cache[i].cert);
	ncache = 0;
	X509_free(ca_cert);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(leaf_key);
	ca_cert = NULL;
	ca_key = leaf_key = NULL;
	BIO_meth_free(prefix_method);
	prefix_method = NULL;
}

/* ------------------------------------------------------------ sides */

/*
 * Starts TLS toward the upstream on fd: SNI and the name checked are the
 * client's SNI, else the target host, else the upstream's address; the
 * ALPN offer is the client's.  Returns 0, or -1 with a message.
 */
int
tls_upstream_start(struct tls *s, const struct route *r, int fd,
    const char *sni, const char *host, const struct sockname *peer,
    int verify, struct tlsinfo *ti, char *err, size_t errlen)
{
	const char *name = sni ? sni : host ? host : "";
	SSL *ssl = SSL_new(r->cctx);
	char ip[ADDRSTR];

	if (name[0] == '\0') {		/* orig: the original destination */
		sockname_host(peer, ip, sizeof(ip));
		name = ip;
	}

	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
		goto fail;
	SSL_set_app_data(ssl, ti);
	SSL_set_connect_state(ssl);
	if (name[0] != '\0' && !host_is_literal(name))
		SSL_set_tlsext_host_name(ssl, name);
	if (ti != NULL && ti->hello.alpn_len > 0)
		SSL_set_alpn_protos(ssl, ti->hello.alpn, ti->hello.alpn_len);
	if (verify) {
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (host_is_literal(name) ? X509_VERIFY_PARAM_set1_ip_asc(
		    SSL_get0_param(ssl), name) != 1 : SSL_set1_host(ssl,
		    name) != 1)
			goto fail;
	}
	s->ssl = ssl;
	s->hs = 1;
	s->upstream = 1;
	return 0;
fail:
	snprintf(err, errlen, "TLS to upstream: %s", tls_error());
	SSL_free(ssl);
	return -1;
}

/*
 * Starts TLS toward the client on fd, with the route's fixed certificate,
 * or one forged from the upstream's (up may be NULL: forged for the SNI or
 * the target host).  Returns 0, or -1 with a message.
 */
int
tls_client_start(struct tls *s, const struct route *r, int fd, X509 *up,
    const char *sni, struct tlsinfo *ti, char *err, size_t errlen)
{
	SSL *ssl = SSL_new(r->sctx);
	X509 *x = NULL;

	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
		goto fail;
	SSL_set_app_data(ssl, ti);
	if (r->listen.cert[0] == '\0') {
		const char *name = sni ? sni : r->target.host[0] ?
		    r->target.host : "localhost";

		if ((x = forge_cached(up, name)) == NULL)
			goto fail;
		if (SSL_use_certificate(ssl, x) != 1 ||
		    SSL_use_PrivateKey(ssl, leaf_key) != 1)
			goto fail;
		X509_free(x);
	}
	SSL_set_accept_state(ssl);
	s->ssl = ssl;
	s->hs = 1;
	s->upstream = 0;
	return 0;
fail:
	snprintf(err, errlen, "TLS to client: %s", tls_error());
	X509_free(x);
	SSL_free(ssl);
	return -1;
}

/*
 * The client's ClientHello, read by stream.c before any TLS existed, goes
 * to OpenSSL through a filter BIO in front of the socket: it gives back
 * those bytes first, then reads the socket itself.  stream.c reads whole
 * records and no further, so OpenSSL consumes all of them in its first
 * step and no byte waits here unseen by poll().
 */
struct prefix {
	uint8_t		*p;
	size_t		 n, off;
};

static int
prefix_read(BIO *b, char *out, int len)
{
	struct prefix *px = BIO_get_data(b);
	size_t k;
	int rc;

	BIO_clear_retry_flags(b);
	if (px != NULL && px->off < px->n && len > 0) {
		k = px->n - px->off;
		if (k > (size_t)len)
			k = (size_t)len;
		memcpy(out, px->p + px->off, k);
		px->off += k;
		if (px->off == px->n) {		/* all given: free it now */
			free(px->p);
			px->p = NULL;
			px->n = px->off = 0;
		}
		return (int)k;
	}
	if (BIO_next(b) == NULL)
		return 0;
	rc = BIO_read(BIO_next(b), out, len);
	BIO_copy_next_retry(b);
	return rc;
}

static int
prefix_write(BIO *b, const char *in, int len)
{
	int rc;

	BIO_clear_retry_flags(b);
	if (BIO_next(b) == NULL)
		return 0;
	rc = BIO_write(BIO_next(b), in, len);
	BIO_copy_next_retry(b);
	return rc;
}

static long
prefix_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct prefix *px = BIO_get_data(b);
	long rc = BIO_next(b) ? BIO_ctrl(BIO_next(b), cmd, num, ptr) : 0;

	if (cmd == BIO_CTRL_PENDING && px != NULL)
		rc += (long)(px->n - px->off);
	return rc;
}

static int
prefix_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int
prefix_destroy(BIO *b)
{
	struct prefix *px = BIO_get_data(b);

	if (px != NULL) {
		free(px->p);
		free(px);
	}
	BIO_set_data(b, NULL);
	return 1;
}

/*
 * Makes p[0..n), bytes already read from the client on fd, the first that
 * OpenSSL reads on s (started by tls_client_start()).  Returns 0, or -1
 * with a message.
 */
int
tls_client_prefix(struct tls *s, int fd, const uint8_t *p, size_t n,
    char *err, size_t errlen)
{
	struct prefix *px = NULL;
	BIO *f = NULL, *sock = NULL;

	if (prefix_method == NULL) {
		prefix_method = BIO_meth_new(BIO_get_new_index() |
		    BIO_TYPE_FILTER, "tproxy ClientHello");
		if (prefix_method == NULL ||
		    BIO_meth_set_read(prefix_method, prefix_read) != 1 ||
		    BIO_meth_set_write(prefix_method, prefix_write) != 1 ||
		    BIO_meth_set_ctrl(prefix_method, prefix_ctrl) != 1 ||
		    BIO_meth_set_create(prefix_method, prefix_create) != 1 ||
		    BIO_meth_set_destroy(prefix_method, prefix_destroy) != 1)
			goto fail;
	}
	if ((px = calloc(1, sizeof(*px))) == NULL ||
	    (n > 0 && (px->p = malloc(n)) == NULL))
		goto fail;
	if (n > 0)
		memcpy(px->p, p, n);
	px->n = n;
	if ((f = BIO_new(prefix_method)) == NULL ||
	    (sock = BIO_new_socket(fd, BIO_NOCLOSE)) == NULL)
		goto fail;
	BIO_set_data(f, px);
	BIO_push(f, sock);
	SSL_set0_rbio(s->ssl, f);	/* the socket BIO still writes */
	return 0;
fail:
	snprintf(err, errlen, "TLS to client: %s", tls_error());
	if (px != NULL)
		free(px->p);
	free(px);
	BIO_free(f);
	BIO_free(sock);
	return -1;
}

/*
 * Drives a handshake.  Returns 1 when done, 0 when it waits (s->want says
 * for what), -1 on failure with a reason in err.
 */
int
tls_handshake(struct tls *s, struct tlsinfo *ti, char *err, size_t errlen)
{
	int rc = SSL_do_handshake(s->ssl), e;
	long vr;

	s->want = 0;
	if (rc == 1) {
		s->hs = 0;
		if (s->upstream) {
			const unsigned char *p;
			unsigned int n;

			SSL_get0_alpn_selected(s->ssl, &p, &n);
			if (ti != NULL && n > 0 && n <= sizeof(ti->alpn)) {
				memcpy(ti->alpn, p, n);
				ti->alpn_len = n;
			}
		}
		return 1;
	}
	e = SSL_get_error(s->ssl, rc);
	if (e == SSL_ERROR_WANT_READ) {
		s->want = POLLIN;
		return 0;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		s->want = POLLOUT;
		return 0;
	}
	vr = SSL_get_verify_result(s->ssl);
	if (s->upstream && vr != X509_V_OK)
		snprintf(err, errlen, "TLS handshake with upstream: certificate "
		    "verify failed: %s (verify=0 accepts it)",
		    X509_verify_cert_error_string(vr));
	else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		snprintf(err, errlen, "TLS handshake with %s: %s",
		    s->upstream ? "upstream" : "client", errno ?
		    strerror(errno) : "connection closed");
	else
		snprintf(err, errlen, "TLS handshake with %s: %s",
		    s->upstream ? "upstream" : "client", tls_error());
	ERR_clear_error();
	return -1;
}

/* The upstream's certificate (a reference for the caller), or NULL. */
X509 *
tls_peer_cert(struct tls *s)
{
	return SSL_get1_peer_certificate(s->ssl);
}

/*
 * What an SSL_read()/SSL_write() result rc means: the count (rc > 0), 0 at
 * the end of the stream (reads), -1 when it must wait (s->want says for
 * what), -2 on an error (the reason in err).
 */
static ssize_t
tls_result(struct tls *s, int rc, int reading, char *err, size_t errlen)
{
	int e;

	s->want = 0;
	if (rc > 0)
		return rc;
	e = SSL_get_error(s->ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		s->want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		return -1;
	}
	if (reading && (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL &&
	    ERR_peek_error() == 0 && errno == 0)))
		return 0;
	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		snprintf(err, errlen, "%s", strerror(errno));
	else
		snprintf(err, errlen, "TLS: %s", tls_error());
	ERR_clear_error();
	return -2;
}

/* Reads up to n bytes of plaintext; see tls_result() for what it returns. */
ssize_t
tls_read(struct tls *s, void *buf, size_t n, char *err, size_t errlen)
{
	errno = 0;
	return tls_result(s, SSL_read(s->ssl, buf, n > INT32_MAX ? INT32_MAX :
	    (int)n), 1, err, errlen);
}

/* Writes plaintext; returns the count, -1 to wait, -2 on error (err). */
ssize_t
tls_write(struct tls *s, const void *buf, size_t n, char *err,
    size_t errlen)
{
	errno = 0;
	return tls_result(s, SSL_write(s->ssl, buf, n > INT32_MAX ? INT32_MAX :
	    (int)n), 0, err, errlen);
}

/* Returns 1 once the handshake on s is complete. */
int
tls_ready(const struct tls *s)
{
	return s->ssl != NULL && SSL_is_init_finished(s->ssl);
}

void
X509_free_ref(struct x509_st *x)
{
	X509_free(x);
}

/* Plaintext already decrypted and waiting in OpenSSL's buffer. */
int
tls_pending(const struct tls *s)
{
	return s->ssl != NULL && SSL_has_pending(s->ssl);
}

void
tls_shutdown(struct tls *s)
{
	if (s->ssl != NULL && !s->hs)
		(void)SSL_shutdown(s->ssl);	/* close_notify, once */
	ERR_clear_error();
}

void
tls_free(struct tls *s)
{
	SSL_free(s->ssl);
	s->ssl = NULL;
}
