/*
 * tapset.h - a route's chain of filters as connections share it.  The
 * control socket adds, deletes and switches filters at run time; a
 * connection keeps the set it was built with, so a set, and each filter in
 * it, lives as long as a connection or the route uses it.
 */
#ifndef TAPSET_H
#define TAPSET_H

#include <stddef.h>

#include "route.h"
#include "tap.h"

struct tapset;

/* Wraps every route's parsed filters into its first set. */
void	 tapsets_init(void);
/* The route's current set, held once more; its filters in *taps, *n. */
struct tapset *tapset_hold(struct route *r, const struct tap **taps,
	    size_t *n) __attribute__((nonnull));
/* Lets go of a set (NULL is fine). */
void	 tapset_put(struct tapset *s);
/* Appends a filter parsed from spec: 0, or -1 with a message in err. */
int	 tapset_add(struct route *r, const char *spec, char *err, size_t len)
	    __attribute__((nonnull));
/* Removes filter idx (from 1): 0, or -1 with a message in err. */
int	 tapset_del(struct route *r, size_t idx, char *err, size_t len)
	    __attribute__((nonnull));
/* Switches filter idx (from 1) on or off: 0, or -1 with a message. */
int	 tapset_switch(struct route *r, size_t idx, int on, char *err,
	    size_t len) __attribute__((nonnull));
/* Returns 1 if filter idx (from 1) of r is on. */
int	 tapset_on(const struct route *r, size_t idx) __attribute__((nonnull));
/* Lets go of every route's set (at exit). */
void	 tapsets_free(void);

#endif /* TAPSET_H */
