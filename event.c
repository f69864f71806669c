/*
 * event.c - the life of routes and connections as the user sees it: JSON
 * events on standard output with --json, and lines on standard error
 * (start-up lines and errors always unless -q; accept/connect/close with -v).
 */
#include <stdio.h>
#include <string.h>

#include "tproxy.h"

static void
json_head(const char *event, const struct conn *c, int route)
{
	char ts[40];

	out_time(ts, sizeof(ts), 0);
	out_printf("{\"event\":\"%s\",\"time\":\"%s\"", event, ts);
	if (c != NULL)
		out_printf(",\"conn\":%llu", (unsigned long long)c->id);
	out_printf(",\"route\":%d", route);
}

static void
json_addr(const char *key, const struct sockname *sn)
{
	char a[ADDRSTR];

	sockname_str(sn, a, sizeof(a));
	out_printf(",\"%s\":", key);
	out_json_str(a, strlen(a));
}

void
ev_listen(const struct route *r)
{
	char l[ADDRSTR], t[ADDRSTR];

	sockname_str(&r->lname, l, sizeof(l));
	addr_target_str(&r->target, t, sizeof(t));
	diag("tproxy: listening on %s %s -> %s",
	    addr_type_name(r->listen.type), l, t);
	if (!opt_json)
		return;
	json_head("listen", NULL, r->id);
	out_printf(",\"proto\":\"%s\"", addr_type_name(r->listen.type));
	if (r->listen.type == A_UNIX_LISTEN) {
		out_printf(",\"path\":");
		out_json_str(r->listen.path, strlen(r->listen.path));
	} else {
		sockname_host(&r->lname, l, sizeof(l));	/* as bound */
		out_printf(",\"addr\":");
		out_json_str(l, strlen(l));
		out_printf(",\"port\":%u", sockname_port(&r->lname));
	}
	out_printf(",\"target\":");
	out_json_str(t, strlen(t));
	out_printf("}\n");
}

void
ev_accept(const struct conn *c)
{
	char a[ADDRSTR], b[ADDRSTR];

	if (opt_verbose > 0) {
		sockname_str(&CLIENT(c)->peer, a, sizeof(a));
		sockname_str(&c->dst, b, sizeof(b));
		diag("tproxy: #%llu accept %s -> %s",
		    (unsigned long long)c->id, a, b);
	}
	if (!opt_json)
		return;
	json_head("accept", c, c->route->id);
	json_addr("src", &CLIENT(c)->peer);
	json_addr("dst", &c->dst);
	out_printf("}\n");
}

void
ev_connect(const struct conn *c)
{
	char a[ADDRSTR], b[ADDRSTR];

	if (opt_verbose > 0) {
		sockname_str(&SERVER(c)->local, a, sizeof(a));
		sockname_str(&SERVER(c)->peer, b, sizeof(b));
		diag("tproxy: #%llu connect %s -> %s",
		    (unsigned long long)c->id, a, b);
	}
	if (!opt_json)
		return;
	json_head("connect", c, c->route->id);
	json_addr("src", &SERVER(c)->local);
	json_addr("dst", &SERVER(c)->peer);
	out_printf("}\n");
}

void
ev_error(const struct conn *c, const char *reason)
{
	diag_err("tproxy: #%llu %s", (unsigned long long)c->id, reason);
	if (!opt_json)
		return;
	json_head("error", c, c->route->id);
	out_printf(",\"reason\":");
	out_json_str(reason, strlen(reason));
	out_printf("}\n");
}

void
ev_close(const struct conn *c, const char *reason)
{
	unsigned long long ms = now_ms() - c->start_ms;

	if (opt_verbose > 0)
		diag("tproxy: #%llu close (%s): c2s %llu bytes in %llu "
		    "chunks, s2c %llu bytes in %llu chunks, %llu ms",
		    (unsigned long long)c->id, reason,
		    (unsigned long long)c->bytes[C2S],
		    (unsigned long long)c->chunks[C2S],
		    (unsigned long long)c->bytes[S2C],
		    (unsigned long long)c->chunks[S2C], ms);
	if (!opt_json)
		return;
	json_head("close", c, c->route->id);
	json_addr("src", &CLIENT(c)->peer);
	json_addr("dst", &c->dst);
	out_printf(",\"bytes_c2s\":%llu,\"bytes_s2c\":%llu,\"chunks_c2s\":%llu,"
	    "\"chunks_s2c\":%llu,\"duration_ms\":%llu,\"reason\":",
	    (unsigned long long)c->bytes[C2S],
	    (unsigned long long)c->bytes[S2C],
	    (unsigned long long)c->chunks[C2S],
	    (unsigned long long)c->chunks[S2C], ms);
	out_json_str(reason, strlen(reason));
	out_printf("}\n");
}

/* A data event (the log filter's JSON form); hex may be NULL. */
void
ev_data(const struct conn *c, enum dir d, size_t n, uint64_t off,
    const uint8_t *hex)
{
	char from[ADDRSTR], to[ADDRSTR];
	size_t i;

	conn_endpoints(c, d, from, to, sizeof(from));
	json_head("data", c, c->route->id);
	out_printf(",\"dir\":\"%s\",\"src\":", d == C2S ? "c2s" : "s2c");
	out_json_str(from, strlen(from));
	out_printf(",\"dst\":");
	out_json_str(to, strlen(to));
	out_printf(",\"bytes\":%zu,\"offset\":%llu", n,
	    (unsigned long long)off);
	if (hex != NULL) {
		out_printf(",\"hex\":\"");
		for (i = 0; i < n; i++)
			out_printf("%02x", hex[i]);
		out_printf("\"");
	}
	out_printf("}\n");
}
