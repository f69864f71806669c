/*
 * ca.c - the interception CA (given, or generated once and kept in a state
 * directory), one leaf key per process, and certificates forged from the
 * upstream's and cached.  No crypto or ASN.1 is written here by hand.
 *
 * A forged certificate copies the upstream certificate's subject, its
 * subjectAltName and its validity, gets a fresh random serial and the leaf
 * key, and is signed by the CA.  The client's SNI is never added to it: the
 * forgery is exactly as valid for the client as the real one.
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
#include "opts.h"
#include "out.h"
#include "parse.h"

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

/* The last OpenSSL error as text (for messages). */
static const char *
ssl_error(void)
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
			    strerror(errno) : ssl_error());
			return -1;
		}
		if ((ca_key = pem_key(opt.ca_key)) == NULL) {
			snprintf(err, errlen, "--ca-key=%s: cannot load a "
			    "private key: %s", opt.ca_key, errno ?
			    strerror(errno) : ssl_error());
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
		    errno ? strerror(errno) : ssl_error());
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

/* ------------------------------------------------------------ interface */

int
ca_init(char *err, size_t errlen)
{
	static int ca_ready;

	if (!ca_ready && (ca_load(err, errlen) == -1 ||
	    (leaf_key = key_new()) == NULL)) {
		if (leaf_key == NULL && ca_cert != NULL)
			snprintf(err, errlen, "leaf key: %s",
			    ssl_error());
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
ca_forge(X509 *up, const char *name)
{
	return forge_cached(up, name);
}

void
ca_cleanup(void)
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
}
