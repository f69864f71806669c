/*
 * fuzz_tlsdetect.c - libFuzzer harness for what tls=auto and starttls do
 * with a client's first bytes (tlsdetect.c, then hello.c): the verdict on
 * the first byte, and the ClientHello reader that a TLS verdict starts,
 * fed the bytes as stream.c feeds them (each read up to what hello_need()
 * asks for, cut where the input says).  Besides not crashing: the verdict
 * is TLS exactly when the first byte is 22; the reader always asks for
 * more than it has, so it never spins; and it ends (parsed, malformed, or
 * over 64 KiB) or waits for bytes that never come, within the input.
 */
#include <stdlib.h>
#include <string.h>

#include "../../hello.h"
#include "../../tlsdetect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HELLO_READ_MAX	(64 * 1024)	/* stream.c's scratch buffer */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hello h;
	size_t have = 0, want, step;
	enum sniff v;
	int rc = 0;

	if (size < 1)
		return 0;
	/* the first byte says how the reads are cut: 1 to 256 bytes */
	step = (size_t)data[0] + 1;
	data++;
	size--;
	v = tls_sniff(data, size);
	if (size == 0 ? v != SNIFF_WAIT : (v == SNIFF_TLS) != (data[0] == 22))
		abort();
	if (v != SNIFF_TLS)
		return 0;
	while (have < size) {
		want = have == 0 ? 5 : hello_need(data, have);
		if (want <= have)
			abort();	/* the reader would spin */
		if (want > HELLO_READ_MAX)
			return 0;	/* refused as too big */
		if (want - have > step)
			want = have + step;
		if (want > size)
			want = size;
		have = want;
		rc = hello_parse(data, have, &h);
		if (rc != 0)
			break;
	}
	if (rc == 1 && h.sni[0] != '\0' && strlen(h.sni) > 253)
		abort();
	return 0;
}
