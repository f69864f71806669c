/*
 * ca.c - the interception CA (given, or generated once and kept in a state
 * directory), one leaf key per process, and certificates forged from the
 * upstream's and cached.  No crypto or ASN.1 is written here by hand.
 *
 * A forged certificate copies the upstream certificate's subject, the DNS
 * and IP names of its subjectAltName (no other kind) and its validity, gets
 * a fresh random serial and the leaf key, and is signed by the CA.  The
 * client's SNI is never added to it: the forgery is exactly as valid for
 * the client as the real one.
 *
 * Any upstream may send a certificate, and forging from one costs memory
 * in proportion to its names (a few hundred bytes each once decoded), so
 * certificates over UP_DER_MAX bytes or UP_NAMES_MAX names are refused, and
 * the cache is bounded in bytes as well as in entries.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca.h"
#include "sslerr.h"
#include "opts.h"
#include "out.h"
#include "parse.h"

#define CACHE_MAX	1024		/* forged certificates kept */
#define CACHE_BYTES	(16 * 1024 * 1024) /* their estimated memory */
#define UP_DER_MAX	(64 * 1024)	/* upstream certificates forged from */
#define UP_NAMES_MAX	1000		/* their subjectAltName entries */

static X509	*ca_cert;
static EVP_PKEY	*ca_key;
static EVP_PKEY	*leaf_key;

struct forged {
	unsigned char	 md[32];	/* SHA-256 of the upstream certificate */
	X509		*cert;
	size_t		 cost;		/* its estimated memory */
};
/* oldest first: cache[(cache_head + i) % CACHE_MAX], i < ncache */
static struct forged	 cache[CACHE_MAX];
static size_t		 ncache, cache_head, cache_bytes;

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

/*
 * $XDG_STATE_HOME/tproxy or $HOME/.local/state/tproxy.  A relative path
 * would put the CA key wherever tproxy happens to be started, so it is
 * refused.  Returns 0, or -1 with a message in err.
 */
static int
state_dir(char *buf, size_t len, char *err, size_t errlen)
{
	const char *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
	const char *var = "XDG_STATE_HOME", *base = x, *sub = "/tproxy";

	if (x == NULL || *x == '\0') {
		var = "HOME";
		base = h;
		sub = "/.local/state/tproxy";
	}
	if (base == NULL || *base == '\0') {
		snprintf(err, errlen, "no --ca-cert, and neither "
		    "XDG_STATE_HOME nor HOME is set to keep a CA in");
		return -1;
	}
	if (*base != '/') {
		snprintf(err, errlen, "%s=%s is not an absolute path: refusing "
		    "to keep a CA there (set it to one, or give --ca-cert and "
		    "--ca-key)", var, base);
		return -1;
	}
	if ((size_t)snprintf(buf, len, "%s%s", base, sub) >= len) {
		snprintf(err, errlen, "%s is too long to keep a CA in", var);
		return -1;
	}
	return 0;
}

/*
 * Opens the state directory dir, made 0700 when missing.  One that another
 * user owns, or that group or others may write to, is refused: whoever can
 * plant a file or a symbolic link there chooses where the CA key goes and
 * which CA is trusted.  Returns the directory's descriptor, or -1 with a
 * message in err.
 */
static int
state_open(const char *dir, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	if (mkdirs(dir) == -1 || (fd = open(dir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "cannot make a CA in %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s is owned by uid %u, not by this user "
		    "(uid %u): refusing to keep a CA there", dir,
		    (unsigned)st.st_uid, (unsigned)geteuid());
		goto fail;
	}
	if (st.st_mode & 022) {
		snprintf(err, errlen, "%s is writable by group or others: "
		    "refusing to keep a CA there (chmod 700 %s)", dir, dir);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/*
 * Opens name (in the directory dfd, or a path when dfd is AT_FDCWD) for
 * reading.  In the state directory a symbolic link is never followed, and
 * only a regular file is taken.  A
 * private key (key set) that group or others may read or write is refused,
 * as ssh and sslsplit refuse one.  Returns the stream, or NULL with a message in
 * err (errno ENOENT when the file is missing).
 */
static FILE *
pem_open(int dfd, const char *name, const char *what, int key, char *err,
    size_t errlen)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | (dfd == AT_FDCWD ?
	    0 : O_NOFOLLOW | O_NONBLOCK));
	struct stat st;
	FILE *f;

	if (fd == -1) {
		int e = errno;

		if (e == ELOOP)
			snprintf(err, errlen, "%s is a symbolic link: refusing "
			    "to follow it (remove it)", what);
		else
			snprintf(err, errlen, "%s: %s", what, strerror(e));
		errno = e;
		return NULL;
	}
	/* a given file may be a pipe: --ca-key=<(...) */
	if (fstat(fd, &st) == -1 || (dfd != AT_FDCWD && !S_ISREG(st.st_mode))) {
		snprintf(err, errlen, "%s: not a regular file", what);
		goto fail;
	}
	if (key && (st.st_mode & 077)) {
		snprintf(err, errlen, "%s is open to group or others (mode "
		    "%03o): refusing a private key anyone else may have read "
		    "(chmod 600 %s)", what, (unsigned)(st.st_mode & 0777),
		    dfd == AT_FDCWD ? name : what);
		goto fail;
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", what, strerror(errno));
		goto fail;
	}
	return f;
fail:
	close(fd);
	errno = EINVAL;
	return NULL;
}

/*
 * Writes a new file name in the directory dfd: created there, never over
 * an existing file and never through a symbolic link (O_EXCL, O_NOFOLLOW).
 * Returns 0, or -1 with errno.
 */
static int
pem_save(int dfd, const char *name, X509 *x, EVP_PKEY *k)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, k ? 0600 : 0644);
	FILE *f;
	int ok;

	if (fd == -1 || (f = fdopen(fd, "w")) == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	ok = k ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) :
	    PEM_write_X509(f, x);
	if (fclose(f) != 0 || !ok) {
		if (errno == 0)
			errno = EIO;
		return -1;
	}
	return 0;
}

/*
 * Reads a certificate (key 0) or a private key (key 1) from name; see
 * pem_open() for dfd.  Returns it, or NULL with a message in err and
 * errno (ENOENT when the file is missing).
 */
static void *
pem_load(int dfd, const char *name, const char *what, int key, char *err,
    size_t errlen)
{
	FILE *f = pem_open(dfd, name, what, key, err, errlen);
	void *p;

	if (f == NULL)
		return NULL;
	p = key ? (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL) :
	    (void *)PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (p == NULL) {
		snprintf(err, errlen, "%s: cannot load a %s: %s", what, key ?
		    "private key" : "certificate", ssl_error());
		errno = EINVAL;
	}
	return p;
}

/*
 * Loads the CA from --ca-cert/--ca-key, or from the state directory, or
 * makes one there.  Returns 0, or -1 with a message in err.
 */
static int
ca_load(char *err, size_t errlen)
{
	char dir[400], cp[512], kp[512], e1[ERRLEN], e2[ERRLEN];
	int dfd, e1no, e2no;

	if (opt.ca_cert != NULL) {
		snprintf(cp, sizeof(cp), "--ca-cert=%s", opt.ca_cert);
		snprintf(kp, sizeof(kp), "--ca-key=%s", opt.ca_key);
		if ((ca_cert = pem_load(AT_FDCWD, opt.ca_cert, cp, 0, err,
		    errlen)) == NULL ||
		    (ca_key = pem_load(AT_FDCWD, opt.ca_key, kp, 1, err,
		    errlen)) == NULL)
			return -1;
		if (X509_check_private_key(ca_cert, ca_key) != 1) {
			snprintf(err, errlen, "--ca-key=%s does not match "
			    "--ca-cert=%s", opt.ca_key, opt.ca_cert);
			return -1;
		}
		return 0;
	}
	if (state_dir(dir, sizeof(dir), err, errlen) == -1 ||
	    (dfd = state_open(dir, err, errlen)) == -1)
		return -1;
	snprintf(cp, sizeof(cp), "%s/ca.pem", dir);
	snprintf(kp, sizeof(kp), "%s/ca.key", dir);
	ca_cert = pem_load(dfd, "ca.pem", cp, 0, e1, sizeof(e1));
	e1no = errno;
	ca_key = pem_load(dfd, "ca.key", kp, 1, e2, sizeof(e2));
	e2no = errno;
	if (ca_cert != NULL && ca_key != NULL &&
	    X509_check_private_key(ca_cert, ca_key) == 1)
		goto done;
	if (ca_cert == NULL && e1no != ENOENT)
		snprintf(err, errlen, "%s", e1);
	else if (ca_key == NULL && e2no != ENOENT)
		snprintf(err, errlen, "%s", e2);
	else if (ca_cert != NULL || ca_key != NULL)
		/* never overwrite a CA a user may already trust */
		snprintf(err, errlen, "%s and %s do not load as a CA and its "
		    "key: fix or remove them", cp, kp);
	if (ca_cert != NULL || ca_key != NULL || e1no != ENOENT ||
	    e2no != ENOENT)
		goto fail;
	ERR_clear_error();
	errno = 0;
	if (ca_generate(&ca_cert, &ca_key) == -1 ||
	    pem_save(dfd, "ca.key", NULL, ca_key) == -1 ||
	    pem_save(dfd, "ca.pem", ca_cert, NULL) == -1) {
		snprintf(err, errlen, "cannot make a CA in %s: %s", dir,
		    errno == EEXIST ? "ca.key or ca.pem appeared meanwhile" :
		    errno ? strerror(errno) : ssl_error());
		goto fail;
	}
	diag_err("tproxy: generated a CA for TLS interception: %s (trust it "
	    "in the clients; its key is %s)", cp, kp);
done:
	close(dfd);
	return 0;
fail:
	close(dfd);
	return -1;
}

/* ------------------------------------------------------------ forging */

/*
 * Copies the DNS and IP entries of from's subjectAltName (with its
 * criticality) to to; other kinds (email, URI, otherName...) are left out.
 * Returns the number of entries from had, or -1 with a message in err.
 */
static int
copy_names(X509 *to, X509 *from, char *err, size_t errlen)
{
	int crit = -1, i, n;
	GENERAL_NAMES *all = X509_get_ext_d2i(from, NID_subject_alt_name,
	    &crit, NULL), *keep = NULL;
	GENERAL_NAME *g;

	if (all == NULL) {
		if (crit == -1)
			return 0;		/* no subjectAltName */
		snprintf(err, errlen, "the upstream's certificate has a "
		    "malformed or repeated subjectAltName: refused");
		return -1;
	}
	n = sk_GENERAL_NAME_num(all);
	if (n > UP_NAMES_MAX) {
		snprintf(err, errlen, "the upstream's certificate has %d "
		    "subject alternative names, over the %d tproxy forges "
		    "from: refused", n, UP_NAMES_MAX);
		goto fail;
	}
	if ((keep = sk_GENERAL_NAME_new_null()) == NULL)
		goto oom;
	for (i = 0; i < n; i++) {
		g = sk_GENERAL_NAME_value(all, i);
		if (g->type != GEN_DNS && g->type != GEN_IPADD)
			continue;
		if ((g = GENERAL_NAME_dup(g)) == NULL)
			goto oom;
		if (!sk_GENERAL_NAME_push(keep, g)) {
			GENERAL_NAME_free(g);
			goto oom;
		}
	}
	if (sk_GENERAL_NAME_num(keep) > 0 && X509_add1_ext_i2d(to,
	    NID_subject_alt_name, keep, crit, X509V3_ADD_DEFAULT) != 1)
		goto oom;
	GENERAL_NAMES_free(keep);
	GENERAL_NAMES_free(all);
	return n;
oom:
	snprintf(err, errlen, "cannot forge a certificate: %s", ssl_error());
fail:
	GENERAL_NAMES_free(keep);
	GENERAL_NAMES_free(all);
	return -1;
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
 * A certificate like up (subject, DNS and IP names, validity) for the leaf
 * key, signed by the CA.  With up NULL (no upstream TLS), one for name.
 * Returns it (the caller owns a reference) and sets *names to the number
 * of names up had, or returns NULL with a message in err.
 */
static X509 *
forge(X509 *up, const char *name, int *names, char *err, size_t errlen)
{
	X509 *x = X509_new();
	X509V3_CTX v3;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	char san[300];
	int der;

	*names = 0;
	if (up != NULL && (der = i2d_X509(up, NULL)) > UP_DER_MAX) {
		snprintf(err, errlen, "the upstream's certificate is %d bytes, "
		    "over the %d tproxy forges from: refused", der, UP_DER_MAX);
		X509_free(x);
		return NULL;
	}
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
		if ((*names = copy_names(x, up, err, errlen)) == -1) {
			BN_free(bn);
			X509_free(x);
			return NULL;
		}
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
	snprintf(err, errlen, "cannot forge a certificate: %s", ssl_error());
	BN_free(bn);
	X509_free(x);
	return NULL;
}

/* Drops the oldest cache entry. */
static void
cache_drop(void)
{
	struct forged *f = &cache[cache_head];

	X509_free(f->cert);
	cache_bytes -= f->cost;
	memset(f, 0, sizeof(*f));
	cache_head = (cache_head + 1) % CACHE_MAX;
	ncache--;
}

/*
 * The forged twin of up from the cache, or made now and cached.  The cache
 * keeps at most CACHE_MAX certificates and CACHE_BYTES of their estimated
 * memory (twice the DER encoding, which OpenSSL keeps beside the decoded
 * certificate, plus 128 bytes for each decoded name); the oldest make
 * room.  Returns a reference for the caller, or NULL with a message in err.
 */
static X509 *
forge_cached(X509 *up, const char *name, char *err, size_t errlen)
{
	unsigned char md[32];
	unsigned int mdlen = sizeof(md);
	size_t i, cost;
	int names;
	X509 *x;

	if (up == NULL)
		return forge(NULL, name, &names, err, errlen);
	if (!X509_digest(up, EVP_sha256(), md, &mdlen)) {
		snprintf(err, errlen, "cannot forge a certificate: %s",
		    ssl_error());
		return NULL;
	}
	for (i = 0; i < ncache; i++) {
		struct forged *f = &cache[(cache_head + i) % CACHE_MAX];

		if (memcmp(f->md, md, sizeof(md)) == 0) {
			X509_up_ref(f->cert);
			return f->cert;
		}
	}
	if ((x = forge(up, NULL, &names, err, errlen)) == NULL)
		return NULL;
	cost = 2 * (size_t)i2d_X509(x, NULL) + 128 * (size_t)names;
	if (cost > CACHE_BYTES)
		return x;		/* too big to keep: used once */
	while (ncache > 0 && (ncache == CACHE_MAX ||
	    cache_bytes + cost > CACHE_BYTES))
		cache_drop();
	i = (cache_head + ncache++) % CACHE_MAX;
	memcpy(cache[i].md, md, sizeof(md));
	cache[i].cert = x;
	cache[i].cost = cost;
	cache_bytes += cost;
	X509_up_ref(x);
	return x;
}

/* ------------------------------------------------------------ interface */

int
ca_init(char *err, size_t errlen)
{
	static int ca_ready;

	if (ca_ready)
		return 0;
	if (ca_load(err, errlen) == -1)
		return -1;
	if ((leaf_key = key_new()) == NULL) {
		snprintf(err, errlen, "leaf key: %s", ssl_error());
		return -1;
	}
	ca_ready = 1;
	return 0;
}

X509 *
ca_cert_get(void)
{
	return ca_cert;
}

EVP_PKEY *
ca_leaf_key(void)
{
	return leaf_key;
}

X509 *
ca_forge(X509 *up, const char *name, char *err, size_t errlen)
{
	return forge_cached(up, name, err, errlen);
}

void
ca_cleanup(void)
{
	while (ncache > 0)
		cache_drop();
	X509_free(ca_cert);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(leaf_key);
	ca_cert = NULL;
	ca_key = leaf_key = NULL;
}
