/*
 * tls.c - TLS interception with OpenSSL: the per-route SSL_CTXs, the key
 * log, and the TLS of each side of a connection (handshakes, reads,
 * writes, shutdown).  The CA and the forged certificates are in ca.c.
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca.h"
#include "opts.h"
#include "out.h"
#include "parse.h"
#include "sslerr.h"
#include "tls.h"
#include "upsess.h"

static BIO_METHOD	*prefix_method;	/* the ClientHello read before TLS */

/* ------------------------------------------------------------ contexts */

/*
 * Notes the alerts the peer sends (arg is the side's struct tls): a
 * close_notify tells a clean end of its stream from a cut TCP connection,
 * and another alert names why the connection failed.
 */
static void
msg_cb(int write_p, int version, int content_type, const void *buf,
    size_t len, SSL *ssl, void *arg)
{
	const unsigned char *p = buf;
	struct tls *s = arg;

	(void)version;
	(void)ssl;
	if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
	    s != NULL && p[0] == SSL3_MT_CERTIFICATE_REQUEST)
		s->certreq = 1;
	if (write_p || content_type != SSL3_RT_ALERT || len != 2 || s == NULL)
		return;
	if (p[1] == SSL_AD_CLOSE_NOTIFY)
		s->notified = 1;
	else {
		s->alerted = 1;
		s->alert = p[1];
	}
}

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
 * The client certificate (target cert=, key=; the key defaults to the
 * certificate's file) that the upstream gets when it asks for one.
 * Returns 0, or -1 with a message.
 */
static int
ctx_client_cert(struct route *r, char *err, size_t errlen)
{
	const char *key = r->target.key[0] ? r->target.key : r->target.cert;

	if (SSL_CTX_use_certificate_chain_file(r->cctx, r->target.cert) != 1) {
		snprintf(err, errlen, "cert=%s: cannot load the client "
		    "certificate: %s", r->target.cert, ssl_error());
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(r->cctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(r->cctx) != 1) {
		snprintf(err, errlen, "key=%s: cannot load the client "
		    "certificate's key: %s", key, ssl_error());
		return -1;
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
	FILE *keylog = NULL;

	int lis = r->listen.tls || r->listen.tls_detect;
	int tgt = r->target.tls || r->listen.tls_detect;

	if (!lis && !tgt)
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
	if (lis) {
		r->sctx = SSL_CTX_new(TLS_server_method());
		if (r->sctx == NULL)
			goto ssl_fail;
		SSL_CTX_set_min_proto_version(r->sctx, TLS1_2_VERSION);
		/* a peer that closes without close_notify just ends its stream */
		SSL_CTX_set_options(r->sctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
		/* one TLS 1.3 ticket: a client resumes one connection with it */
		SSL_CTX_set_num_tickets(r->sctx, 1);
		/* one read() per flight, not two per record (tls_pending()) */
		SSL_CTX_set_read_ahead(r->sctx, 1);
		SSL_CTX_set_mode(r->sctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		SSL_CTX_set_alpn_select_cb(r->sctx, alpn_cb, NULL);
		ctx_keylog(r->sctx, keylog);
		if (r->listen.cert[0] != '\0') {
			if (SSL_CTX_use_certificate_chain_file(r->sctx,
			    r->listen.cert) != 1) {
				snprintf(err, errlen, "cert=%s: %s",
				    r->listen.cert, ssl_error());
				return -1;
			}
			if (SSL_CTX_use_PrivateKey_file(r->sctx, r->listen.key[0] ?
			    r->listen.key : r->listen.cert, SSL_FILETYPE_PEM) != 1 ||
			    SSL_CTX_check_private_key(r->sctx) != 1) {
				snprintf(err, errlen, "key=%s: %s",
				    r->listen.key, ssl_error());
				return -1;
			}
		}
	}
	/* a CA to forge with, and to trust; made only when forging */
	if ((lis && r->listen.cert[0] == '\0') ||
	    (tgt && opt.ca_cert != NULL)) {
		if (ca_init(err, errlen) == -1)
			return -1;
	}
	if (tgt) {
		r->cctx = SSL_CTX_new(TLS_client_method());
		if (r->cctx == NULL)
			goto ssl_fail;
		SSL_CTX_set_min_proto_version(r->cctx, TLS1_2_VERSION);
		SSL_CTX_set_options(r->cctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
		SSL_CTX_set_read_ahead(r->cctx, 1);
		SSL_CTX_set_mode(r->cctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		ctx_keylog(r->cctx, keylog);
		if (upsess_init(r->cctx) == -1)
			goto ssl_fail;
		if (r->target.verify) {
			/* the system store, and our own CA */
			SSL_CTX_set_default_verify_paths(r->cctx);
			if (ca_cert_get() != NULL)
				X509_STORE_add_cert(SSL_CTX_get_cert_store(
				    r->cctx), ca_cert_get());
			SSL_CTX_set_verify(r->cctx, SSL_VERIFY_PEER, NULL);
		}
		if (r->target.cert[0] != '\0' && ctx_client_cert(r, err,
		    errlen) == -1)
			return -1;
	}
	return 0;
ssl_fail:
	snprintf(err, errlen, "TLS: %s", ssl_error());
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
	ca_cleanup();
	upsess_cleanup();
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
    const char *sni, const char *host, const struct flowaddr *peer,
    int verify, struct tlsinfo *ti, char *err, size_t errlen)
{
	const char *name = sni ? sni : host ? host : "";
	SSL *ssl = SSL_new(r->cctx);
	char ip[ADDRSTR];
	struct sockname sn;

	flowaddr_get(peer, &sn);
	if (name[0] == '\0') {		/* orig: the original destination */
		sockname_host(&sn, ip, sizeof(ip));
		name = ip;
	}

	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
		goto fail;
	SSL_set_app_data(ssl, ti);
	SSL_set_msg_callback(ssl, msg_cb);
	SSL_set_msg_callback_arg(ssl, s);
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
	upsess_attach(ssl, r->id, name, &sn);
	s->ssl = ssl;
	s->hs = 1;
	s->upstream = 1;
	return 0;
fail:
	snprintf(err, errlen, "TLS to upstream: %s", ssl_error());
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
	SSL_set_msg_callback(ssl, msg_cb);
	SSL_set_msg_callback_arg(ssl, s);
	if (r->listen.cert[0] == '\0') {
		const char *name = sni ? sni : r->target.host[0] ?
		    r->target.host : "localhost";

		if ((x = ca_forge(up, name, err, errlen)) == NULL) {
			SSL_free(ssl);
			return -1;
		}
		if (SSL_use_certificate(ssl, x) != 1 ||
		    SSL_use_PrivateKey(ssl, ca_leaf_key()) != 1)
			goto fail;
		X509_free(x);
	}
	SSL_set_accept_state(ssl);
	s->ssl = ssl;
	s->hs = 1;
	s->upstream = 0;
	return 0;
fail:
	snprintf(err, errlen, "TLS to client: %s", ssl_error());
	X509_free(x);
	SSL_free(ssl);
	return -1;
}

/*
 * Why an SSL call on s failed, in words, into err: the alert the peer
 * sent, else the system's error (err_no: errno right after the call), else
 * OpenSSL's reason, else what the end of the connection looked like.
 * e is SSL_get_error()'s verdict.  Clears OpenSSL's error queue.
 */
static void
tls_reason(const struct tls *s, int e, int err_no, char *err, size_t errlen)
{
	const char *who = s->upstream ? "upstream" : "client", *r;
	unsigned long q = ERR_peek_error();

	if (s->alerted)
		snprintf(err, errlen, "TLS alert from the %s: %s", who,
		    s->alert == TLS13_AD_CERTIFICATE_REQUIRED ? "certificate "
		    "required" : SSL_alert_desc_string_long(s->alert));
	else if (q != 0 && ERR_GET_LIB(q) == ERR_LIB_SYS)
		snprintf(err, errlen, "%s", strerror(ERR_GET_REASON(q)));
	else if (err_no != 0 && (q == 0 || e == SSL_ERROR_SYSCALL))
		snprintf(err, errlen, "%s", strerror(err_no));
	else if (q != 0 && (r = ERR_reason_error_string(q)) != NULL)
		snprintf(err, errlen, "TLS: %s", r);
	else if (q != 0)
		snprintf(err, errlen, "TLS: %s", ssl_error());
	else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
		snprintf(err, errlen, "%s closed the connection%s", who,
		    s->notified ? "" : " without close_notify");
	else
		snprintf(err, errlen, "TLS failed (SSL_get_error %d, no "
		    "detail from OpenSSL)", e);
	ERR_clear_error();
	if (s->upstream && s->certreq && SSL_get_certificate(s->ssl) == NULL) {
		size_t k = strlen(err);

		snprintf(err + k, errlen - k, " (the upstream asked for a "
		    "client certificate and got none: give one with cert= and "
		    "key= on the target)");
	}
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
	snprintf(err, errlen, "TLS to client: %s", ssl_error());
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
	int rc, e, err_no;
	long vr;
	char why[ERRLEN / 2];

	errno = 0;
	rc = SSL_do_handshake(s->ssl);
	err_no = errno;
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
	if (s->upstream && vr != X509_V_OK) {
		snprintf(err, errlen, "TLS handshake with upstream: certificate "
		    "verify failed: %s (verify=0 accepts it)",
		    X509_verify_cert_error_string(vr));
		ERR_clear_error();
		return -1;
	}
	tls_reason(s, e, err_no, why, sizeof(why));
	snprintf(err, errlen, "TLS handshake with %s: %s",
	    s->upstream ? "upstream" : "client", why);
	return -1;
}

/* The upstream's certificate (a reference for the caller), or NULL. */
X509 *
tls_peer_cert(struct tls *s)
{
	return SSL_get1_peer_certificate(s->ssl);
}

/*
 * What an SSL_read()/SSL_write() result rc means (err_no: errno right
 * after the call): the count (rc > 0), 0 at the end of the stream (reads;
 * tls_eof_clean() tells how it ended), -1 when it must wait (s->want says
 * for what), -2 on an error (the reason in err).
 */
static ssize_t
tls_result(struct tls *s, int rc, int reading, int err_no, char *err,
    size_t errlen)
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
	/*
	 * SSL_OP_IGNORE_UNEXPECTED_EOF makes a bare TCP end a ZERO_RETURN
	 * too, so that writing on stays possible; the message callback saw
	 * whether a close_notify came.
	 */
	if (reading && (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL &&
	    ERR_peek_error() == 0 && err_no == 0)))
		return 0;
	tls_reason(s, e, err_no, err, errlen);
	return -2;
}

/* Reads up to n bytes of plaintext; see tls_result() for what it returns. */
ssize_t
tls_read(struct tls *s, void *buf, size_t n, char *err, size_t errlen)
{
	int rc;

	ssize_t got;

	errno = 0;
	rc = SSL_read(s->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
	got = tls_result(s, rc, 1, errno, err, errlen);
	s->starved = got == -1 && s->want == POLLIN;
	return got;
}

/* Writes plaintext; returns the count, -1 to wait, -2 on error (err). */
ssize_t
tls_write(struct tls *s, const void *buf, size_t n, char *err,
    size_t errlen)
{
	int rc;

	errno = 0;
	rc = SSL_write(s->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
	return tls_result(s, rc, 0, errno, err, errlen);
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

/*
 * Bytes OpenSSL holds that no poll() will announce: read ahead, it takes
 * what the socket has, so several records may wait in its buffer.  After
 * a read that wanted more, what it holds is part of a record: the socket
 * says when the rest comes.
 */
int
tls_pending(const struct tls *s)
{
	return s->ssl != NULL && !s->starved && SSL_has_pending(s->ssl);
}

int
tls_eof_clean(const struct tls *s)
{
	return s->notified;
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
