/*
 * hello.c - read the server name (SNI) and the ALPN protocols from a TLS
 * ClientHello, read from the client before any TLS library sees it.
 *
 * The bytes are the client's: every length is checked against what is left
 * before it is used, and tests/fuzz/fuzz_hello.c runs this under libFuzzer.
 *
 *   record     = type(1)=22 version(2) length(2) fragment
 *   fragments of the leading records, joined:
 *                msg_type(1)=1 length(3) body
 *   body       = version(2) random(32) session_id<0..32> cipher_suites<2..>
 *                compression_methods<1..> [extensions<0..>]
 *   extension  = type(2) data<0..2^16-1>
 *   server_name (0)  = list<2> { name_type(1)=0 host_name<1..2^16-1> }
 *   alpn (16)        = list<2> { protocol<1..255> }
 */
#include <string.h>

#include "hello.h"

struct rd {
	const uint8_t	*p;
	size_t		 n;
};

static int
rd_take(struct rd *r, size_t n, struct rd *out)
{
	if (r->n < n)
		return -1;
	if (out != NULL) {
		out->p = r->p;
		out->n = n;
	}
	r->p += n;
	r->n -= n;
	return 0;
}

static int
rd_u8(struct rd *r, size_t *v)
{
	if (r->n < 1)
		return -1;
	*v = r->p[0];
	return rd_take(r, 1, NULL);
}

static int
rd_u16(struct rd *r, size_t *v)
{
	if (r->n < 2)
		return -1;
	*v = (size_t)r->p[0] << 8 | r->p[1];
	return rd_take(r, 2, NULL);
}

/* A vector with a 1- or 2-byte length prefix. */
static int
rd_vec(struct rd *r, int lenbytes, struct rd *out)
{
	size_t n;

	if ((lenbytes == 1 ? rd_u8(r, &n) : rd_u16(r, &n)) == -1)
		return -1;
	return rd_take(r, n, out);
}

/* A DNS name as SNI allows: letters, digits, '-', '_', '.', 1..253 bytes. */
static int
sni_ok(const uint8_t *p, size_t n)
{
	size_t i;

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return 0;
	}
	return 1;
}

static int
ext_sni(struct rd d, struct hello *h)
{
	struct rd list, name;
	size_t type;

	if (rd_vec(&d, 2, &list) == -1)
		return -1;
	while (list.n > 0) {
		if (rd_u8(&list, &type) == -1 || rd_vec(&list, 2, &name) == -1)
			return -1;
		if (type != 0 || h->sni[0] != '\0' || h->sni_bad)
			continue;
		if (!sni_ok(name.p, name.n)) {
			h->sni_bad = 1;		/* logged; never used */
			continue;
		}
		memcpy(h->sni, name.p, name.n);
		h->sni[name.n] = '\0';
	}
	return 0;
}

static int
ext_alpn(struct rd d, struct hello *h)
{
	struct rd list, proto;

	if (rd_vec(&d, 2, &list) == -1)
		return -1;
	if (list.n > sizeof(h->alpn))
		return 0;		/* too many to offer on: ignore */
	memcpy(h->alpn, list.p, list.n);
	h->alpn_len = list.n;
	while (list.n > 0)		/* check the protocol list is sound */
		if (rd_vec(&list, 1, &proto) == -1 || proto.n == 0) {
			h->alpn_len = 0;
			return -1;
		}
	return 0;
}

#define HELLO_MAX	(64 * 1024)	/* a ClientHello bigger than this: no */

/*
 * Joins the handshake fragments of the leading records into msg, until it
 * holds the whole first handshake message.  Returns its length (header
 * included), 0 when more bytes are needed, -1 when malformed.
 */
static ssize_t
hello_join(const uint8_t *p, size_t n, uint8_t *msg, size_t cap)
{
	size_t have = 0, need = 0, len;

	for (;;) {
		if (n < 5)
			return n > 0 && p[0] != 22 ? -1 : 0;
		if (p[0] != 22 || p[1] != 3)
			return -1;
		len = (size_t)p[3] << 8 | p[4];
		if (len == 0 || len > 16384 + 2048)
			return -1;
		if (n < 5 + len)
			return 0;
		if (have + len > cap)
			return -1;
		memcpy(msg + have, p + 5, len);
		have += len;
		p += 5 + len;
		n -= 5 + len;
		if (need == 0 && have >= 4) {
			if (msg[0] != 1)
				return -1;	/* not a ClientHello */
			need = 4 + ((size_t)msg[1] << 16 | (size_t)msg[2] << 8 |
			    msg[3]);
			if (need > cap)
				return -1;
		}
		if (need != 0 && have >= need)
			return (ssize_t)need;
	}
}

/*
 * How many bytes from p on the records begun in p[0..n) take: the end of the
 * record that is incomplete, or of the next record's header when all are
 * whole.  A reader that stops there leaves what follows the ClientHello in
 * the socket.  Returns a count above n; the records are not checked (that
 * is hello_parse()'s job).
 */
size_t
hello_need(const uint8_t *p, size_t n)
{
	size_t off = 0, len;

	for (;;) {
		if (n - off < 5)
			return off + 5;
		len = (size_t)p[off + 3] << 8 | p[off + 4];
		if (n - off < 5 + len)
			return off + 5 + len;
		off += 5 + len;
	}
}

/*
 * Parses a ClientHello at the start of p[0..n), which may come in several
 * records.  Returns 1 when parsed (h filled), 0 when more bytes are needed,
 * -1 when it is not a ClientHello.
 */
int
hello_parse(const uint8_t *p, size_t n, struct hello *h)
{
	static uint8_t msg[HELLO_MAX];
	struct rd body, exts, ext;
	ssize_t len;
	size_t v;

	memset(h, 0, sizeof(*h));
	if ((len = hello_join(p, n, msg, sizeof(msg))) <= 0)
		return (int)len;
	body.p = msg + 4;
	body.n = (size_t)len - 4;
	if (rd_take(&body, 2 + 32, NULL) == -1 ||
	    rd_vec(&body, 1, NULL) == -1 ||	/* session id */
	    rd_vec(&body, 2, NULL) == -1 ||	/* cipher suites */
	    rd_vec(&body, 1, NULL) == -1)	/* compression */
		return -1;
	if (body.n == 0)
		return 1;			/* no extensions */
	if (rd_vec(&body, 2, &exts) == -1)
		return -1;
	while (exts.n > 0) {
		if (rd_u16(&exts, &v) == -1 || rd_vec(&exts, 2, &ext) == -1)
			return -1;
		if (v == 0 && ext_sni(ext, h) == -1)
			return -1;
		if (v == 16 && ext_alpn(ext, h) == -1)
			return -1;
	}
	return 1;
}
