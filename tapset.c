/*
 * tapset.c - the filters of a route as connections share them.
 *
 * Every filter ever configured is one struct filt: its parsed tap, its
 * on/off switch (which every copy of the tap points at, so switching it
 * reaches open connections at their next chunk) and a count of the sets
 * that hold it.  A set is the array of taps a chain runs over, with a count
 * of the connections (and the route) that hold it.  Adding or deleting a
 * filter makes a new set for connections accepted afterwards; the old one
 * goes when its last connection does, and a filter's configuration when
 * its last set does.
 */
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "out.h"
#include "tapset.h"

struct filt {
	unsigned	 refs;		/* sets holding it */
	unsigned	 off;		/* switched off */
	char		*spec;		/* owned when added at run time */
	struct tap	 t;
};

struct tapset {
	unsigned	 refs;		/* connections, and the route's own */
	size_t		 n;
	struct filt	*f[MAX_TAPS];
	struct tap	 taps[MAX_TAPS];
};

static void
filt_put(struct filt *f)
{
	if (--f->refs > 0)
		return;
	tap_free(&f->t);
	free(f->spec);
	free(f);
}

/* A set of f[0..n), held once; NULL when out of memory. */
static struct tapset *
set_new(struct filt *const *f, size_t n)
{
	struct tapset *s = calloc(1, sizeof(*s));
	size_t i;

	if (s == NULL)
		return NULL;
	s->refs = 1;
	s->n = n;
	for (i = 0; i < n; i++) {
		s->f[i] = f[i];
		s->taps[i] = f[i]->t;
		f[i]->refs++;
	}
	return s;
}

void
tapset_put(struct tapset *s)
{
	size_t i;

	if (s == NULL || --s->refs > 0)
		return;
	for (i = 0; i < s->n; i++)
		filt_put(s->f[i]);
	free(s);
}

/* The route's filters and first_bytes are those of set s (held). */
static void
route_use(struct route *r, struct tapset *s)
{
	size_t i;

	tapset_put(r->set);
	r->set = s;
	r->taps = s->n ? s->taps : NULL;
	r->ntaps = s->n;
	r->first_bytes = 0;
	for (i = 0; i < s->n; i++)
		if (s->taps[i].first_bytes)
			r->first_bytes = 1;
}

void
tapsets_init(void)
{
	struct filt *f[MAX_TAPS];
	struct tapset *s;
	size_t i, j;

	for (i = 0; i < nroutes; i++) {
		struct route *r = &routes[i];

		for (j = 0; j < r->ntaps; j++) {
			if ((f[j] = calloc(1, sizeof(*f[j]))) == NULL)
				usage_error("out of memory");
			f[j]->t = r->taps[j];
			f[j]->t.off = &f[j]->off;
		}
		if ((s = set_new(f, r->ntaps)) == NULL)
			usage_error("out of memory");
		free(r->taps);
		route_use(r, s);
	}
}

struct tapset *
tapset_hold(struct route *r, const struct tap **taps, size_t *n)
{
	struct tapset *s = r->set;

	s->refs++;
	*taps = s->taps;
	*n = s->n;
	return s;
}

int
tapset_add(struct route *r, const char *spec, char *err, size_t len)
{
	struct filt *f[MAX_TAPS], *nf;
	struct tapset *s;
	size_t i;

	if (r->set->n >= MAX_TAPS) {
		snprintf(err, len, "route %d has %d filters already", r->id,
		    MAX_TAPS);
		return -1;
	}
	if ((nf = calloc(1, sizeof(*nf))) == NULL ||
	    (nf->spec = strdup(spec)) == NULL) {
		free(nf);
		snprintf(err, len, "out of memory");
		return -1;
	}
	if (tap_parse(nf->spec, addr_is_udp(r->listen.type), &nf->t, err,
	    len) == -1 || tap_writes_stdout(&nf->t)) {
		if (tap_writes_stdout(&nf->t))
			snprintf(err, len, "%s: standard output cannot be "
			    "taken at run time", spec);
		nf->refs = 1;
		filt_put(nf);
		return -1;
	}
	nf->t.off = &nf->off;
	for (i = 0; i < r->set->n; i++)
		f[i] = r->set->f[i];
	f[i] = nf;
	if ((s = set_new(f, i + 1)) == NULL) {
		nf->refs = 1;
		filt_put(nf);
		snprintf(err, len, "out of memory");
		return -1;
	}
	route_use(r, s);
	return 0;
}

/* Returns 0 if idx (from 1) names a filter of r, else -1 with a message. */
static int
idx_check(const struct route *r, size_t idx, char *err, size_t len)
{
	if (idx >= 1 && idx <= r->set->n)
		return 0;
	snprintf(err, len, "route %d has no filter %zu (it has %zu)", r->id,
	    idx, r->set->n);
	return -1;
}

int
tapset_del(struct route *r, size_t idx, char *err, size_t len)
{
	struct filt *f[MAX_TAPS];
	struct tapset *s;
	size_t i, n = 0;

	if (idx_check(r, idx, err, len) == -1)
		return -1;
	for (i = 0; i < r->set->n; i++)
		if (i != idx - 1)
			f[n++] = r->set->f[i];
	if ((s = set_new(f, n)) == NULL) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	route_use(r, s);
	return 0;
}

int
tapset_switch(struct route *r, size_t idx, int on, char *err, size_t len)
{
	if (idx_check(r, idx, err, len) == -1)
		return -1;
	r->set->f[idx - 1]->off = !on;
	return 0;
}

int
tapset_on(const struct route *r, size_t idx)
{
	return idx >= 1 && idx <= r->set->n && !r->set->f[idx - 1]->off;
}

void
tapsets_free(void)
{
	size_t i;

	for (i = 0; i < nroutes; i++) {
		tapset_put(routes[i].set);
		routes[i].set = NULL;
		routes[i].taps = NULL;
		routes[i].ntaps = 0;
	}
}
