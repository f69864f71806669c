/*
 * route.h - a route: a listen address, a target and a chain of filters,
 * parsed once at start-up.
 */
#ifndef ROUTE_H
#define ROUTE_H

#include <stdint.h>
#include <stdio.h>

#include "addr.h"
#include "sockname.h"
#include "tap.h"

struct route {
	int		 id;
	const char	*lspec;		/* the listen address as written */
	struct addr	 listen;
	struct addr	 target;
	struct tap	*taps;		/* the chain, in order */
	size_t		 ntaps;
	int		 first_bytes;	/* a tap needs client bytes first */
	int		 lfd;
	int		 lslot;
	struct sockname	 lname;		/* bound address */
	struct sockname	 tname;		/* target, when numeric */
	int		 tresolved;
	struct ssl_ctx_st *sctx;	/* TLS toward clients */
	struct ssl_ctx_st *cctx;	/* TLS toward the upstream */
	FILE		*keylog;
	struct tapset	*set;		/* the chain for new connections */
	struct route_stats {
		uint64_t accepted, active, bytes[2], errors;
	}		 stats;
};

extern struct route	*routes;
extern size_t		 nroutes;

/* Parses the routes in argv (split at lone '+'); exits 2 on any error. */
void	 routes_parse(int argc, char **argv);

#endif /* ROUTE_H */
