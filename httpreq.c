/*
 * httpreq.c - the head of an HTTP/1.x request sent to a proxy.  The bytes
 * are the client's: nothing is read past n, a head is at most
 * HTTP_HEAD_MAX bytes, and tests/fuzz/fuzz_http.c runs this under
 * libFuzzer.
 *
 *   head         = request-line *field-line EOL
 *   request-line = method SP target SP version EOL
 *   EOL          = [CR] LF
 *   method       = 1*tchar
 *   target       = host ":" port                      (CONNECT)
 *                | "http://" host [":" port] [path]    (any other method;
 *                                                       the scheme in any case)
 *   host         = 1*( ALPHA / DIGIT / "." / "-" / "_" ) | "[" IPv6 "]"
 *   port         = 1*5DIGIT, 1..65535 (default 80)
 *   path         = ( "/" / "?" ) *VCHAR
 *   version      = "HTTP/1." DIGIT
 *   field-line   = field-name ":" *( VCHAR / SP / HTAB / obs-text ) EOL
 *   field-name   = 1*tchar
 *
 * Framing (RFC 9112, 6): Transfer-Encoding: chunked, or one
 * Content-Length; both at once, another transfer coding, two different
 * lengths or a folded line are refused (400): a proxy that guesses at
 * framing lets one request hide inside another.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "httpreq.h"

#define CLEN_MAX	(1ULL << 62)

static int
tchar(int ch)
{
	return isalnum(ch) || (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch));
}

static int
malformed(struct httpreq *r, const char *why, const char **bad)
{
	r->status = 400;
	*bad = why;
	return -1;
}

/* The end of the line starting at off (after its LF), or 0 if not in p. */
static size_t
line_end(const uint8_t *p, size_t n, size_t off)
{
	const uint8_t *lf = memchr(p + off, '\n', n - off);

	return lf == NULL ? 0 : (size_t)(lf - p) + 1;
}

/* The length of [off, end) without its EOL. */
static size_t
line_len(const uint8_t *p, size_t off, size_t end)
{
	size_t l = end - off - 1;

	if (l > 0 && p[off + l - 1] == '\r')
		l--;
	return l;
}

/* Parses host[:port] at s (l bytes); returns 0 or -1. */
static int
authority(const uint8_t *s, size_t l, int need_port, struct httpreq *r)
{
	const uint8_t *colon = NULL;
	size_t hl, i;
	unsigned long port = 0;
	unsigned char a6[16];

	if (l > 0 && s[0] == '[') {
		const uint8_t *close = memchr(s, ']', l);

		if (close == NULL || (hl = (size_t)(close - s) - 1) == 0 ||
		    hl >= sizeof(r->host))
			return -1;
		memcpy(r->host, s + 1, hl);
		r->host[hl] = '\0';
		if (inet_pton(AF_INET6, r->host, a6) != 1)
			return -1;
		if (close + 1 < s + l && close[1] != ':')
			return -1;
		colon = close + 1 < s + l ? close + 1 : NULL;
	} else {
		colon = memchr(s, ':', l);
		hl = colon ? (size_t)(colon - s) : l;
		if (hl == 0 || hl >= sizeof(r->host))
			return -1;
		for (i = 0; i < hl; i++)
			if (!isalnum(s[i]) && s[i] != '.' && s[i] != '-' &&
			    s[i] != '_')
				return -1;
		memcpy(r->host, s, hl);
		r->host[hl] = '\0';
	}
	if (colon == NULL) {
		r->port = 80;
		return need_port ? -1 : 0;
	}
	for (i = (size_t)(colon - s) + 1; i < l; i++) {
		if (!isdigit(s[i]) || (port = port * 10 + (s[i] - '0')) >
		    65535)
			return -1;
	}
	if (port == 0)
		return -1;
	r->port = (uint16_t)port;
	return 0;
}

/* Parses the request line (l bytes at p, no EOL); returns 0 or -1. */
static int
request_line(const uint8_t *p, size_t l, struct httpreq *r, const char **bad)
{
	const uint8_t *sp1, *sp2, *t, *auth_end;
	size_t tl, i;

	sp1 = memchr(p, ' ', l);
	if (sp1 == NULL || sp1 == p)
		return malformed(r, "bad HTTP request line", bad);
	for (i = 0; p + i < sp1; i++)
		if (!tchar(p[i]))
			return malformed(r, "bad HTTP method", bad);
	r->method_len = (size_t)(sp1 - p);
	t = sp1 + 1;
	sp2 = memchr(t, ' ', l - (size_t)(t - p));
	if (sp2 == NULL || sp2 == t)
		return malformed(r, "bad HTTP request line", bad);
	tl = (size_t)(sp2 - t);
	r->version_off = (size_t)(sp2 - p) + 1;
	if (l - r->version_off != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
	    !isdigit(sp2[8]))
		return malformed(r, "bad HTTP version", bad);
	for (i = 0; i < tl; i++)
		if (t[i] <= ' ' || t[i] >= 0x7f)
			return malformed(r, "bad HTTP request target", bad);
	r->connect = r->method_len == 7 && memcmp(p, "CONNECT", 7) == 0;
	if (r->connect) {
		if (authority(t, tl, 1, r) == -1)
			return malformed(r, "bad CONNECT host:port", bad);
		return 0;
	}
	if (tl < 7 || strncasecmp((const char *)t, "http://", 7) != 0)
		return malformed(r, "not an absolute http:// URI (a proxy "
		    "request needs one)", bad);
	auth_end = t + 7;
	while (auth_end < sp2 && *auth_end != '/' && *auth_end != '?')
		auth_end++;
	if (authority(t + 7, (size_t)(auth_end - t) - 7, 0, r) == -1)
		return malformed(r, "bad host in the URI", bad);
	r->path_off = (size_t)(auth_end - p);
	r->path_len = (size_t)(sp2 - auth_end);
	return 0;
}

/* Returns 1 if the field line (l bytes at p) is named name. */
static int
named(const uint8_t *p, size_t l, const char *name)
{
	size_t nl = strlen(name);

	return l > nl && p[nl] == ':' && strncasecmp((const char *)p, name,
	    nl) == 0;
}

/* The value of a field line, without surrounding blanks. */
static void
value(const uint8_t *p, size_t l, const uint8_t **v, size_t *vl)
{
	const uint8_t *s = memchr(p, ':', l) + 1, *e = p + l;

	while (s < e && (*s == ' ' || *s == '\t'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*v = s;
	*vl = (size_t)(e - s);
}

/* One field line (l bytes at p, no EOL); returns 0 or -1. */
static int
field_line(const uint8_t *p, size_t l, struct httpreq *r, int *has_clen,
    const char **bad)
{
	const uint8_t *v;
	size_t i, vl;
	uint64_t cl = 0;

	if (p[0] == ' ' || p[0] == '\t')
		return malformed(r, "folded header line", bad);
	for (i = 0; i < l && p[i] != ':'; i++)
		if (!tchar(p[i]))
			return malformed(r, "bad header name", bad);
	if (i == 0 || i == l)
		return malformed(r, "bad header line", bad);
	for (; i < l; i++)
		if ((p[i] < ' ' && p[i] != '\t') || p[i] == 0x7f)
			return malformed(r, "control byte in a header", bad);
	if (named(p, l, "Transfer-Encoding")) {
		value(p, l, &v, &vl);
		if (vl != 7 || strncasecmp((const char *)v, "chunked", 7) != 0 ||
		    r->chunked)
			return malformed(r, "unsupported Transfer-Encoding",
			    bad);
		r->chunked = 1;
	} else if (named(p, l, "Content-Length")) {
		value(p, l, &v, &vl);
		if (vl == 0)
			return malformed(r, "bad Content-Length", bad);
		for (i = 0; i < vl; i++) {
			if (!isdigit(v[i]) || (cl = cl * 10 + (uint64_t)(v[i] -
			    '0')) > CLEN_MAX)
				return malformed(r, "bad Content-Length", bad);
		}
		if (*has_clen && cl != r->clen)
			return malformed(r, "two different Content-Lengths",
			    bad);
		*has_clen = 1;
		r->clen = cl;
	}
	return 0;
}

/* Need more bytes: or, past the limit, too long (431). */
static int
more(size_t n, struct httpreq *r, const char **bad)
{
	if (n < HTTP_HEAD_MAX)
		return 0;
	r->status = 431;
	*bad = "request head over 64 KiB";
	return -1;
}

int
httpreq_parse(const uint8_t *p, size_t n, struct httpreq *r,
    const char **bad)
{
	size_t off, end;
	int has_clen = 0;

	memset(r, 0, sizeof(*r));
	if ((end = line_end(p, n, 0)) == 0 || end > HTTP_HEAD_MAX)
		return more(end ? HTTP_HEAD_MAX : n, r, bad);
	if (request_line(p, line_len(p, 0, end), r, bad) == -1)
		return -1;
	for (off = end;; off = end) {
		if ((end = line_end(p, n, off)) == 0 || end > HTTP_HEAD_MAX)
			return more(end ? HTTP_HEAD_MAX : n, r, bad);
		if (line_len(p, off, end) == 0)
			break;
		if (field_line(p + off, line_len(p, off, end), r, &has_clen,
		    bad) == -1)
			return -1;
	}
	if (r->chunked && has_clen)
		return malformed(r, "both Transfer-Encoding and "
		    "Content-Length", bad);
	if (r->connect && (r->chunked || r->clen > 0))
		return malformed(r, "CONNECT with a body", bad);
	r->len = end;
	return 1;
}

size_t
httpreq_origin(const uint8_t *p, const struct httpreq *r, uint8_t *out)
{
	size_t o = 0, rest = r->version_off;

	memcpy(out, p, r->method_len + 1);
	o = r->method_len + 1;
	if (r->path_len == 0 || p[r->path_off] == '?')
		out[o++] = '/';
	memcpy(out + o, p + r->path_off, r->path_len);
	o += r->path_len;
	out[o++] = ' ';
	memcpy(out + o, p + rest, r->len - rest);
	return o + r->len - rest;
}
