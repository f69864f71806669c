/*
 * re.c - compile, search and free the regexes of filters and addresses.
 * One match-data block serves every search: the process is single-threaded.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>

#include "re.h"

static pcre2_match_data *md;

void *
re_compile(const char *pat, int caseless, char *err, size_t errlen)
{
	pcre2_code *re;
	int ec;
	PCRE2_SIZE eo;
	PCRE2_UCHAR msg[160];

	re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
	    caseless ? PCRE2_CASELESS : 0, &ec, &eo, NULL);
	if (re == NULL) {
		pcre2_get_error_message(ec, msg, sizeof(msg));
		snprintf(err, errlen, "bad regex '%s' at offset %zu: %s", pat,
		    (size_t)eo, (char *)msg);
		return NULL;
	}
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE |
	    PCRE2_JIT_PARTIAL_HARD);
	return re;
}

int
re_search(void *re, const uint8_t *p, size_t n)
{
	if (md == NULL && (md = pcre2_match_data_create(32, NULL)) == NULL)
		return 0;
	return pcre2_match(re, p ? p : (const uint8_t *)"", n, 0, 0, md,
	    NULL) >= 0;
}

void
re_free(void *re)
{
	pcre2_code_free(re);
}
