/*
 * route.c - routes as the command line gives them: LISTEN TARGET
 * [FILTER]..., several joined by a lone '+'.  Everything is parsed (and a
 * literal target resolved) before anything binds; a bad argument anywhere
 * is a usage error, exit status 2.
 */
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "net.h"
#include "opts.h"
#include "out.h"
#include "route.h"
#include "stdpipe.h"

struct route	*routes;
size_t		 nroutes;

/* Parses one route from argv[0..n); exits 2 on any error. */
static void
route_parse(struct route *r, int id, char **argv, int n)
{
	char err[ERRLEN];
	int i;

	r->id = id;
	r->lfd = -1;
	r->lslot = -1;
	if (n < 1)
		usage_error("route %d: missing LISTEN and TARGET addresses", id);
	if (addr_parse(argv[0], 1, &r->listen, err, sizeof(err)) == -1)
		usage_error("%s: %s", argv[0], err);
	r->lspec = argv[0];
	if (n < 2)
		usage_error("route %d: missing TARGET address after '%s'", id,
		    argv[0]);
	if (addr_parse(argv[1], 0, &r->target, err, sizeof(err)) == -1)
		usage_error("%s: %s", argv[1], err);
	if (r->target.type == A_ORIG && r->listen.type != A_TCP_TPROXY &&
	    r->listen.type != A_UDP_TPROXY && r->listen.type != A_TCP_LISTEN &&
	    !addr_is_explicit(r->listen.type) && !r->listen.proxy_protocol)
		usage_error("%s: orig needs a tcp-tproxy, udp-tproxy, "
		    "socks5-listen, http-listen or tcp-listen (behind an nft "
		    "redirect) listener, or a proxy-protocol one", argv[1]);
	/* the client asked for that destination itself, loopback or not */
	if (r->target.type == A_ORIG && addr_is_explicit(r->listen.type))
		r->target.allow_loopback = 1;
	/*
	 * An explicit proxy that intercepts TLS forges from the upstream's
	 * certificate: it speaks TLS upstream, whatever the destination.
	 */
	if (addr_is_explicit(r->listen.type) && r->listen.tls &&
	    r->listen.cert[0] == '\0' && (r->target.type == A_ORIG ||
	    r->target.type == A_TCP))
		r->target.tls = 1;
	if (r->target.type == A_ORIG && r->target.spoof &&
	    r->listen.type == A_TCP_LISTEN && !r->listen.proxy_protocol)
		usage_error("%s: spoof behind a redirect would reuse the "
		    "connection's own addresses: use a tcp-tproxy listener",
		    argv[1]);
	/* with tls=auto or starttls the upstream's TLS follows the client's */
	if (!r->target.tls && !r->listen.tls_detect && (!r->target.verify ||
	    r->target.cert[0]))
		usage_error("%s: verify=, cert= and key= need the tls option "
		    "(or a tls=auto or starttls listener)", argv[1]);
	if (r->listen.tls_detect && r->target.type != A_TCP &&
	    r->target.type != A_ORIG)
		usage_error("%s: tls=auto and starttls need a tcp or orig "
		    "target", argv[1]);
	if (r->target.tls && addr_is_udp(r->listen.type))
		usage_error("%s: tls needs a stream listener", argv[1]);
	if (r->target.type != A_ECHO && r->target.type != A_ORIG &&
	    addr_is_udp(r->listen.type) != addr_is_udp(r->target.type))
		usage_error("%s: a %s listener needs a %s target (or echo)",
		    argv[1], addr_is_udp(r->listen.type) ? "UDP" : "stream",
		    addr_is_udp(r->listen.type) ? "udp:HOST:PORT" :
		    "tcp:HOST:PORT or unix:PATH");
	if (n - 2 > MAX_TAPS)
		usage_error("route %d: more than %d filters", id, MAX_TAPS);
	r->ntaps = (size_t)(n - 2);
	if (r->ntaps > 0 &&
	    (r->taps = calloc(r->ntaps, sizeof(*r->taps))) == NULL)
		usage_error("out of memory");
	for (i = 2; i < n; i++) {
		struct tap *t = &r->taps[i - 2];

		if (tap_parse(argv[i], addr_is_udp(r->listen.type), t, err,
		    sizeof(err)) == -1)
			usage_error("%s: %s", argv[i], err);
		if (t->first_bytes)
			r->first_bytes = 1;
	}
	/* a literal target is resolved once; names at each connect */
	if ((r->target.type == A_TCP || r->target.type == A_UDP) &&
	    host_is_literal(r->target.host)) {
		if (net_resolve(r->target.host, r->target.port, 0, &r->tname,
		    err, sizeof(err)) == -1)
			usage_error("%s: %s", argv[1], err);
		r->tresolved = 1;
	}
}

/*
 * A filter that takes standard output for itself (pcap:-) leaves it to no
 * other writer; two filters of one route never write the same file.
 */
static void
routes_outputs(void)
{
	const struct tap *own = NULL, *other = NULL;
	size_t i, j, k;

	for (i = 0; i < nroutes; i++)
		for (j = 0; j < routes[i].ntaps; j++) {
			const struct tap *t = &routes[i].taps[j];

			if (tap_writes_stdout(t) && own == NULL)
				own = t;
			if (t->ops->observes && other == NULL)
				other = t;
			for (k = 0; k < j && t->writes; k++)
				if (routes[i].taps[k].writes && strcmp(t->writes,
				    routes[i].taps[k].writes) == 0)
					usage_error("%s: '%s' writes there "
					    "already, in the same route",
					    t->spec, routes[i].taps[k].spec);
		}
	if (own != NULL && opt.json)
		usage_error("%s: standard output carries the capture; --json "
		    "cannot write there too", own->spec);
	if (own != NULL && other != NULL)
		usage_error("%s: standard output carries the capture; '%s' "
		    "cannot write there too", own->spec, other->spec);
}

void
routes_parse(int argc, char **argv)
{
	int i, start = 0;

	if (argc == 0)
		usage_error("missing LISTEN and TARGET addresses");
	for (i = 0; i <= argc; i++) {
		if (i < argc && strcmp(argv[i], "+") != 0)
			continue;
		routes = realloc(routes, (nroutes + 1) * sizeof(*routes));
		if (routes == NULL)
			usage_error("out of memory");
		memset(&routes[nroutes], 0, sizeof(*routes));
		route_parse(&routes[nroutes], (int)nroutes + 1, argv + start,
		    i - start);
		nroutes++;
		start = i + 1;
	}
	routes_outputs();
	stdio_routes_check();
}

