/*
 * fuzz_http.c - libFuzzer harness for the HTTP proxy request parser
 * (httpreq.c) and the forwarder of absolute-URI requests (httpproxy.c):
 * what a client sends to an http-listen listener.  Besides not crashing,
 * it checks that a parsed head lies within the bytes given, that every
 * shorter prefix of it is "need more", and that its origin form is no
 * longer than it; then the rest of the input goes through the forwarder
 * in pieces, which must emit no more than it was given plus the '/' each
 * rewritten head may gain.
 */
#include <stdlib.h>
#include <string.h>

#include "../../httpproxy.h"
#include "../../httpreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t emitted;

static void
count(void *arg, const uint8_t *p, size_t n)
{
	(void)arg;
	(void)p;
	emitted += n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct httpreq r, r2;
	const char *bad = NULL;
	uint8_t *out;
	struct hp *h;
	size_t k, n, off, step;
	int rc, status;

	if (size < 1)
		return 0;
	step = 1 + data[0];
	data++;
	size--;
	rc = httpreq_parse(data, size, &r, &bad);
	if (rc == -1 && (bad == NULL || (r.status != 400 && r.status != 431)))
		abort();
	if (rc != 1)
		return 0;
	if (r.len > size || r.len > HTTP_HEAD_MAX || r.port == 0)
		abort();
	for (k = 0; k < r.len; k += 1 + k / 8)
		if (httpreq_parse(data, k, &r2, &bad) == 1)
			abort();
	if (r.connect)
		return 0;
	if ((out = malloc(r.len + 1)) == NULL)
		return 0;
	if (httpreq_origin(data, &r, out) > r.len)
		abort();
	free(out);
	if ((h = hp_new(&r)) == NULL)
		return 0;
	emitted = 0;
	for (off = r.len; off < size; off += n) {
		n = size - off < step ? size - off : step;
		if (hp_feed(h, data + off, n, count, NULL, &status, &bad) == -1)
			break;
	}
	if (emitted > 2 * (size - r.len) + 1)
		abort();
	hp_free(h);
	return 0;
}
