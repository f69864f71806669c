/*
 * parse.c - small parsers for command-line values: bounded numbers, sizes,
 * CIDR blocks, C escapes.  Each one rejects what it does not fully understand.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

int
num_parse(const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	long long v;

	if (*s == '\0' || *s == ' ' || *s == '+' || *s == '\t')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* A size in bytes with an optional k (KiB) or m (MiB) suffix, 1..hi. */
int
size_parse(const char *s, long long hi, long long *out)
{
	char num[32];
	size_t n = strlen(s);
	long long mul = 1, v;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n + 1);
	if (num[n - 1] == 'k' || num[n - 1] == 'K')
		mul = 1024;
	else if (num[n - 1] == 'm' || num[n - 1] == 'M')
		mul = 1024 * 1024;
	if (mul != 1)
		num[n - 1] = '\0';
	if (num_parse(num, 1, hi / mul, &v) == -1)
		return -1;
	*out = v * mul;
	return 0;
}

/* ADDR[/BITS], IPv4 or IPv6 (brackets allowed).  Returns 0 or -1. */
int
cidr_parse(const char *s, struct cidr *c)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	long long bits;

	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, host, c->addr) == 1)
		c->family = AF_INET;
	else if (inet_pton(AF_INET6, host, c->addr) == 1)
		c->family = AF_INET6;
	else
		return -1;
	c->bits = c->family == AF_INET ? 32 : 128;
	if (slash) {
		if (num_parse(slash + 1, 0, c->bits, &bits) == -1)
			return -1;
		c->bits = (int)bits;
	}
	return 0;
}

static int
prefix_eq(const uint8_t *a, const uint8_t *b, int bits)
{
	int full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ b[full]) & (0xff << (8 - rest))) == 0;
}

/* Returns 1 if the address is in the block (v4-mapped v6 counts as v4). */
int
cidr_match(const struct cidr *c, const struct sockname *sn)
{
	const struct sockaddr_in *s4 = (const void *)&sn->ss;
	const struct sockaddr_in6 *s6 = (const void *)&sn->ss;
	const uint8_t *a;

	if (c->family == 0)
		return 1;
	if (sn->ss.ss_family == AF_INET)
		a = (const uint8_t *)&s4->sin_addr;
	else if (sn->ss.ss_family == AF_INET6) {
		a = s6->sin6_addr.s6_addr;
		if (c->family == AF_INET &&
		    IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			return prefix_eq(a + 12, c->addr, c->bits);
		if (c->family != AF_INET6)
			return 0;
		return prefix_eq(a, c->addr, c->bits);
	} else
		return 0;
	if (c->family != AF_INET)
		return 0;
	return prefix_eq(a, c->addr, c->bits);
}

/* The value of a hex digit, or -1. */
int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Decodes \r \n \t \\ \xHH (also \0 for NUL, \e for ESC) from in into out.
 * Returns the decoded length, or -1 with a message in err.
 */
ssize_t
esc_decode(const char *in, char *out, size_t outlen, char *err, size_t errlen)
{
	size_t o = 0;
	int hi, lo;

	for (; *in; in++) {
		char ch = *in;

		if (ch == '\\') {
			in++;
			switch (*in) {
			case 'r': ch = '\r'; break;
			case 'n': ch = '\n'; break;
			case 't': ch = '\t'; break;
			case 'e': ch = 0x1b; break;
			case '0': ch = '\0'; break;
			case '\\': ch = '\\'; break;
			case 'x':
				if ((hi = hexval(in[1])) < 0 ||
				    (lo = hexval(in[2])) < 0) {
					snprintf(err, errlen,
					    "\\x needs two hex digits");
					return -1;
				}
				ch = (char)(hi << 4 | lo);
				in += 2;
				break;
			case '\0':
				snprintf(err, errlen, "trailing backslash");
				return -1;
			default:
				snprintf(err, errlen, "unknown escape \\%c "
				    "(expected \\r \\n \\t \\\\ \\xHH)", *in);
				return -1;
			}
		}
		if (o >= outlen) {
			snprintf(err, errlen, "text too long");
			return -1;
		}
		out[o++] = ch;
	}
	return (ssize_t)o;
}

int
host_is_literal(const char *h)
{
	unsigned char a[16];

	return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

/*
 * Scans a sed-style s-expression "sDREGEXDREPLACEMENTD[FLAGS]" (D any
 * punctuation; "\D" and other backslash pairs do not end a part).  Stores
 * where REGEX and REPLACEMENT end (at their closing D) and returns the
 * length up to the flags' end (a comma or the end of s), or 0 when a part
 * is unterminated.
 */
size_t
sexpr_scan(const char *s, size_t *re_end, size_t *rp_end)
{
	char d = s[1];
	size_t i = 2, *ends[2] = { re_end, rp_end };
	int part;

	if (d == '\0')
		return 0;
	for (part = 0; part < 2; part++) {
		for (; s[i] && s[i] != d; i++)
			if (s[i] == '\\' && s[i + 1])
				i++;
		if (s[i] != d)
			return 0;
		*ends[part] = i;
		i++;
	}
	while (s[i] && s[i] != ',')
		i++;
	return i;
}

/*
 * Milliseconds 0..max for the filter name's argument or key what; 0, or -1
 * with "NAME: bad WHAT 'V' (expected milliseconds, 0..MAX)" in err.
 */
int
ms_parse(const char *name, const char *what, const char *v, long long max,
    uint64_t *out, char *err, size_t len)
{
	long long n;

	if (num_parse(v, 0, max, &n) == -1) {
		snprintf(err, len, "%s: bad %s '%s' (expected milliseconds, "
		    "0..%lld)", name, what, v, max);
		return -1;
	}
	*out = (uint64_t)n;
	return 0;
}
