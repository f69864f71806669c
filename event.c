/*
 * event.c - the life of routes and connections as the user sees it: JSON
 * events on standard output with --json, and lines on standard error
 * (start-up lines and errors always unless -q; accept/connect/close with -v).
 */
#include <stdio.h>
#include <string.h>

#include "event.h"
#include "loop.h"
#include "opts.h"
#include "out.h"

static void
json_head(const char *event, const struct flow *f, int route)
{
	char ts[40];

	out_time(ts, sizeof(ts), 0);
	out_printf("{\"event\":\"%s\",\"time\":\"%s\"", event, ts);
	if (f != NULL)
		out_printf(",\"conn\":%llu", (unsigned long long)f->id);
	out_printf(",\"route\":%d", route);
}

static void
json_addr(const char *key, const struct flowaddr *fa)
{
	char a[ADDRSTR];

	flowaddr_str(fa, a, sizeof(a));
	out_printf(",\"%s\":", key);
	out_json_str(a, strlen(a));
}

void
ev_listen(const struct route *r)
{
	char l[ADDRSTR], t[ADDRSTR];

	sockname_str(&r->lname, l, sizeof(l));
	addr_target_str(&r->target, t, sizeof(t));
	if (r->listen.type == A_STDIO)
		diag("tproxy: relaying stdio -> %s", t);
	else
		diag("tproxy: listening on %s %s -> %s",
		    addr_type_name(r->listen.type), l, t);
	if (!opt.json)
		return;
	json_head("listen", NULL, r->id);
	out_printf(",\"proto\":\"%s\"", addr_type_name(r->listen.type));
	if (r->listen.type == A_UNIX_LISTEN || r->listen.type == A_STDIO) {
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
ev_accept(const struct flow *f)
{
	char a[ADDRSTR], b[ADDRSTR];

	if (opt.verbose > 0) {
		flowaddr_str(&f->client, a, sizeof(a));
		flowaddr_str(&f->dst, b, sizeof(b));
		if (f->peer.len > 0) {
			char p[ADDRSTR];

			flowaddr_str(&f->peer, p, sizeof(p));
			diag("tproxy: #%llu accept %s -> %s (PROXY header "
			    "from %s)", (unsigned long long)f->id, a, b, p);
		} else
			diag("tproxy: #%llu accept %s -> %s",
			    (unsigned long long)f->id, a, b);
	}
	if (!opt.json)
		return;
	json_head("accept", f, f->route);
	json_addr("src", &f->client);
	json_addr("dst", &f->dst);
	if (f->host != NULL) {
		out_printf(",\"host\":");
		out_json_str(f->host, strlen(f->host));
	}
	if (f->peer.len > 0)
		json_addr("peer", &f->peer);
	out_printf("}\n");
}

/* The connect event of an exec: target names its command. */
static void
ev_connect_exec(const struct flow *f)
{
	if (opt.verbose > 0)
		diag("tproxy: #%llu connect exec:%s",
		    (unsigned long long)f->id, f->exec);
	if (!opt.json)
		return;
	json_head("connect", f, f->route);
	out_printf(",\"dst\":\"exec\",\"command\":");
	out_json_str(f->exec, strlen(f->exec));
	out_printf("}\n");
}

void
ev_connect(const struct flow *f)
{
	char a[ADDRSTR], b[ADDRSTR];

	if (f->exec != NULL) {		/* a command, not an address */
		ev_connect_exec(f);
		return;
	}
	if (opt.verbose > 0) {
		flowaddr_str(&f->server_local, a, sizeof(a));
		flowaddr_str(&f->server, b, sizeof(b));
		diag("tproxy: #%llu connect %s -> %s",
		    (unsigned long long)f->id, a, b);
	}
	if (!opt.json)
		return;
	json_head("connect", f, f->route);
	json_addr("src", &f->server_local);
	json_addr("dst", &f->server);
	out_printf("}\n");
}

void
ev_error(const struct flow *f, const char *reason)
{
	diag_limited("tproxy: #%llu %s", (unsigned long long)f->id, reason);
	if (!opt.json)
		return;
	json_head("error", f, f->route);
	out_printf(",\"reason\":");
	out_json_str(reason, strlen(reason));
	out_printf("}\n");
}

void
ev_close(const struct flow *f, const char *reason)
{
	unsigned long long ms = now_ms() - f->start_ms;

	if (opt.verbose > 0)
		diag("tproxy: #%llu close (%s): c2s %llu bytes in %llu "
		    "chunks, s2c %llu bytes in %llu chunks, %llu ms",
		    (unsigned long long)f->id, reason,
		    (unsigned long long)f->bytes[C2S],
		    (unsigned long long)f->chunks[C2S],
		    (unsigned long long)f->bytes[S2C],
		    (unsigned long long)f->chunks[S2C], ms);
	if (!opt.json)
		return;
	json_head("close", f, f->route);
	json_addr("src", &f->client);
	json_addr("dst", &f->dst);
	out_printf(",\"bytes_c2s\":%llu,\"bytes_s2c\":%llu,\"chunks_c2s\":%llu,"
	    "\"chunks_s2c\":%llu,\"duration_ms\":%llu,\"reason\":",
	    (unsigned long long)f->bytes[C2S],
	    (unsigned long long)f->bytes[S2C],
	    (unsigned long long)f->chunks[C2S],
	    (unsigned long long)f->chunks[S2C], ms);
	out_json_str(reason, strlen(reason));
	out_printf("}\n");
}

/* A data event (the log filter's JSON form); hex may be NULL. */
void
ev_data(const struct flow *f, enum dir d, size_t n, uint64_t off,
    const uint8_t *hex)
{
	char from[ADDRSTR], to[ADDRSTR];
	size_t i;

	flow_endpoints(f, d, from, to, sizeof(from));
	json_head("data", f, f->route);
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

/* The two ends of direction d: the upstream is its address once connected. */
void
flow_endpoints(const struct flow *f, enum dir d, char *from, char *to,
    size_t len)
{
	const struct flowaddr *cl = &f->client;
	const struct flowaddr *sv = f->echo || f->server.len == 0 ?
	    &f->dst : &f->server;

	flowaddr_str(d == C2S ? cl : sv, from, len);
	flowaddr_str(d == C2S ? sv : cl, to, len);
}
