/*
 * fuzz_addr.c - libFuzzer harness for the address spec parser (addr.c) and
 * the small value parsers behind it (parse.c).  The input is one address
 * spec; it is parsed as a listen and as a target address, and as a CIDR.
 */
#include <stdlib.h>
#include <string.h>

#include "../../tproxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), err[ERRLEN], out[ERRLEN], buf[64];
	struct addr a;
	struct cidr c;
	long long n;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (addr_parse(s, 1, &a, err, sizeof(err)) == 0)
		addr_target_str(&a, out, sizeof(out));
	addr_free(&a);
	if (addr_parse(s, 0, &a, err, sizeof(err)) == 0)
		addr_target_str(&a, out, sizeof(out));
	addr_free(&a);
	(void)!cidr_parse(s, &c);
	(void)!num_parse(s, 0, 65535, &n);
	(void)!size_parse(s, 1LL << 40, &n);
	(void)esc_decode(s, buf, sizeof(buf), err, sizeof(err));
	free(s);
	return 0;
}
