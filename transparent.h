/*
 * transparent.h - TPROXY mode: original destinations, the self-connect
 * guard, privileges, --print-rules.
 */
#ifndef TRANSPARENT_H
#define TRANSPARENT_H

#include <stddef.h>

#include "addr.h"
#include "sockname.h"

struct passwd;

/* dst from SO_ORIGINAL_DST of fd (local: its local address); 0 or -1. */
int	 orig_lookup(int fd, const struct sockname *local,
	    struct sockname *dst, char *err, size_t errlen)
	    __attribute__((nonnull));
/* The upstream for an orig target: dst after port-map=; 0 or -1 (a loop). */
int	 orig_target(const struct sockname *dst, int udp, const struct addr *t,
	    struct sockname *to, char *err, size_t errlen)
	    __attribute__((nonnull));
/* After binding: to --user's user, or (without it) limit what we keep. */
void	 priv_drop(const struct passwd *pw) __attribute__((nonnull));
void	 priv_limit(void);
void	 print_rules(void);

#endif /* TRANSPARENT_H */
