/*
 * sslerr.c - OpenSSL's last error as text, one place for tls.c and ca.c.
 */
#include <openssl/err.h>

#include "sslerr.h"

const char *
ssl_error(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "no detail from OpenSSL";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}
