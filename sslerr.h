/*
 * sslerr.h - OpenSSL's last error as text, for messages (tls.c and ca.c).
 */
#ifndef SSLERR_H
#define SSLERR_H

/* The last OpenSSL error as text; clears OpenSSL's error queue. */
const char	*ssl_error(void);

#endif /* SSLERR_H */
