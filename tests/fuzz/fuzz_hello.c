/*
 * fuzz_hello.c - libFuzzer harness for the ClientHello parser (hello.c):
 * the bytes a TLS client sends first, before any TLS library sees them.
 * Whatever it returns, a parsed SNI must be a valid host name; and where
 * it needs more bytes, hello_need() must ask for more than it has.
 */
#include <stdlib.h>
#include <string.h>

#include "../../tproxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hello h;
	size_t i, n;

	switch (hello_parse(data, size, &h)) {
	case 0:
		if (hello_need(data, size) <= size)
			abort();
		return 0;
	case -1:
		return 0;
	}
	n = strlen(h.sni);
	if (n > 253 || h.alpn_len > sizeof(h.alpn))
		abort();
	for (i = 0; i < n; i++)
		if (strchr(",/ \\", h.sni[i]) != NULL)
			abort();
	return 0;
}
