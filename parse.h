/*
 * parse.h - small parsers for command-line values: bounded numbers, sizes,
 * CIDR blocks, C escapes, hex digits, IP literals.
 */
#ifndef PARSE_H
#define PARSE_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include "sockname.h"

/* A CIDR block for the src= and dst= filter keys. */
struct cidr {
	int		 family;	/* 0 = not set */
	uint8_t		 addr[16];
	int		 bits;
};

/* Parse a decimal integer within [lo, hi]; 0 on success, -1 if malformed. */
int	 num_parse(const char *s, long long lo, long long hi, long long *out)
	    __attribute__((nonnull, warn_unused_result));
/* The same with the k (KiB) and m (MiB) suffixes, 1..hi. */
int	 size_parse(const char *s, long long hi, long long *out)
	    __attribute__((nonnull, warn_unused_result));
int	 cidr_parse(const char *s, struct cidr *c)
	    __attribute__((nonnull, warn_unused_result));
int	 cidr_match(const struct cidr *c, const struct sockname *sn)
	    __attribute__((nonnull));
/* C escapes (\r \n \t \\ \xHH) in TEXT; returns the length or -1. */
ssize_t	 esc_decode(const char *in, char *out, size_t outlen, char *err,
	    size_t errlen) __attribute__((nonnull));
/* The value of a hex digit, or -1. */
int	 hexval(int ch);
/* Returns 1 if h is an IPv4 or IPv6 literal (no brackets). */
int	 host_is_literal(const char *h) __attribute__((nonnull));

/* Milliseconds 0..max for a filter's argument or key; 0 or -1 + err. */
int	 ms_parse(const char *name, const char *what, const char *v,
	    long long max, uint64_t *out, char *err, size_t len)
	    __attribute__((warn_unused_result));
/* A sed s-expression's parts; returns its length, or 0 if unterminated. */
size_t	 sexpr_scan(const char *s, size_t *re_end, size_t *rp_end)
	    __attribute__((nonnull));

#endif /* PARSE_H */
