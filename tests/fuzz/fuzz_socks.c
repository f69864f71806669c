/*
 * fuzz_socks.c - libFuzzer harness for the SOCKS5 parsers (socks5.c) and
 * the handshake that drives them (explicit.c): the first bytes a client
 * sends to a socks5-listen listener.  The first byte picks a listener with
 * or without auth=; the rest is fed in pieces as a socket would give it.
 * Besides not crashing, it checks what the reader relies on: a parsed
 * message lies within the bytes given, and every shorter prefix of it is
 * "need more", never "malformed".
 */
#include <stdlib.h>
#include <string.h>

#include "../../explicit.h"
#include "../../socks5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
prefixes(const uint8_t *data, size_t size)
{
	struct s5_req r;
	char user[256], pass[256];
	const char *bad = NULL;
	unsigned methods;
	size_t len = 0, k;

	if (s5_greeting(data, size, &len, &methods, &bad) == 1) {
		if (len > size)
			abort();
		for (k = 0; k < len; k++)
			if (s5_greeting(data, k, &len, &methods, &bad) != 0)
				abort();
	}
	if (s5_auth(data, size, &len, user, pass, &bad) == 1 && len > size)
		abort();
	if (s5_request(data, size, &r, &bad) == 1) {
		if (r.len > size || r.len > S5_REQUEST_MAX)
			abort();
		len = r.len;
		for (k = 0; k < len; k++)
			if (s5_request(data, k, &r, &bad) != 0)
				abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct addr l;
	struct xp *x;
	struct xp_out o;
	uint8_t *room;
	size_t cap, n, take, step;
	enum xp_rc rc = XP_MORE;

	prefixes(data, size);
	if (size < 1)
		return 0;
	memset(&l, 0, sizeof(l));
	l.type = A_SOCKS5_LISTEN;
	if (data[0] & 1)
		strcpy(l.auth, "user:pass");
	step = 1 + (data[0] >> 1);
	data++;
	size--;
	if ((x = xp_new(&l)) == NULL)
		return 0;
	while (size > 0 && (rc == XP_MORE || rc == XP_NEXT)) {
		room = xp_room(x, &cap);
		n = size < step ? size : step;
		if (n > cap)
			n = cap;
		memcpy(room, data, n);
		rc = xp_feed(x, n, &take, &o);
		if (take > n || o.rlen > sizeof(o.reply) ||
		    (rc == XP_FAIL && o.why == NULL))
			abort();
		data += take;
		size -= take;
	}
	if (rc == XP_DEST && (xp_port(x) == 0 || xp_host(x)[0] == '\0'))
		abort();
	xp_free(x);
	return 0;
}
