/*
 * fuzz_proxy.c - libFuzzer harness for the PROXY protocol header parser
 * (proxy.c): the first bytes a client sends to a proxy-protocol listener.
 * Besides not crashing, it checks what the reader relies on: a parsed
 * header lies within the bytes given; every shorter prefix of it is "need
 * more", never "malformed"; and what pp_build() writes for the same
 * addresses parses back to them.
 */
#include <stdlib.h>
#include <string.h>

#include "../../tproxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
same(const struct sockname *a, const struct sockname *b)
{
	if (sockname_port(a) != sockname_port(b))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pp_hdr h, h2;
	uint8_t out[PP_OUT_MAX];
	const char *why = NULL;
	size_t k, n;
	int rc = pp_parse(data, size, &h, &why);

	if (rc == -1 && why == NULL)
		abort();
	if (rc != 1)
		return 0;
	if (h.len == 0 || h.len > size || h.len > PP_MAX ||
	    (h.version == 1 && h.len > PP_V1_MAX))
		abort();
	for (k = 0; k < h.len; k += 1 + k / 4)
		if (pp_parse(data, k, &h2, &why) != 0)
			abort();
	if (h.local)
		return 0;
	n = pp_build(h.version, &h.src, &h.dst, out);
	if (n == 0 || n > sizeof(out) || pp_parse(out, n, &h2, &why) != 1 ||
	    h2.len != n || h2.local)
		abort();
	same(&h.src, &h2.src);
	same(&h.dst, &h2.dst);
	return 0;
}
