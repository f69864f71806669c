/*
 * accept.h - new clients on stream listeners.
 */
#ifndef ACCEPT_H
#define ACCEPT_H

#include "route.h"

/* Accepts what waits on a route's listener. */
void	 accept_ready(struct route *r) __attribute__((nonnull));

#endif /* ACCEPT_H */
