/*
 * event.h - the life of routes and connections as the user sees it.
 */
#ifndef EVENT_H
#define EVENT_H

#include "route.h"
#include "tap.h"

void	 ev_listen(const struct route *r) __attribute__((nonnull));
void	 ev_accept(const struct flow *f) __attribute__((nonnull));
void	 ev_connect(const struct flow *f) __attribute__((nonnull));
void	 ev_error(const struct flow *f, const char *reason)
	    __attribute__((nonnull));
void	 ev_close(const struct flow *f, const char *reason)
	    __attribute__((nonnull));
void	 ev_data(const struct flow *f, enum dir d, size_t n, uint64_t off,
	    const uint8_t *hex) __attribute__((nonnull(1)));
/* The two ends of direction d as text. */
void	 flow_endpoints(const struct flow *f, enum dir d, char *from,
	    char *to, size_t len) __attribute__((nonnull));

#endif /* EVENT_H */
