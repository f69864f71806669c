/*
 * re.h - the regex helpers filters and addresses share: PCRE2, binary-safe,
 * no UTF, JIT-compiled when the library can.
 */
#ifndef RE_H
#define RE_H

#include <stddef.h>
#include <stdint.h>

/* Compiles pat; returns the code (a pcre2_code *), or NULL + err. */
void	*re_compile(const char *pat, int caseless, char *err, size_t errlen);
/* Returns 1 if the regex matches somewhere in p[0..n). */
int	 re_search(void *re, const uint8_t *p, size_t n)
	    __attribute__((nonnull(1)));
void	 re_free(void *re);

#endif /* RE_H */
