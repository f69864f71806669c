/*
 * ctlrun.c - what the control socket's commands do, and their replies:
 * JSON objects one per line, then an empty line (haproxy's stats socket
 * convention).  A reply is built whole in the client's buffer; a failed
 * allocation loses bytes of it, never the process.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "ctlrun.h"
#include "held.h"
#include "loop.h"
#include "out.h"
#include "route.h"
#include "tapset.h"

static const char *const help_lines[][2] = {
	{ "help", "these lines" },
	{ "show stats", "per route: accepted, active, bytes, errors; "
	    "then the total" },
	{ "show conns", "the open connections" },
	{ "show filters", "every route's filters, numbered from 1" },
	{ "show held", "the chunks inspect holds" },
	{ "kill conn ID", "reset one connection" },
	{ "kill all", "reset every connection" },
	{ "add filter ROUTE SPEC", "append a filter, for connections "
	    "accepted afterwards" },
	{ "del filter ROUTE INDEX", "remove a filter, for connections "
	    "accepted afterwards" },
	{ "enable filter ROUTE INDEX", "switch a filter on, at once" },
	{ "disable filter ROUTE INDEX", "switch a filter off, at once (what "
	    "it holds goes on first)" },
	{ "forward ID", "let a held chunk go on" },
	{ "drop ID", "discard a held chunk" },
	{ "replace ID HEX", "send these bytes instead of a held chunk" },
	{ "answer ID HEX", "send these bytes back to the chunk's sender" },
};

static void
add(void *arg, const void *p, size_t n)
{
	if (buf_append(arg, p, n) == -1)
		return;		/* a reply cut short, not a crash */
}

static void
rprintf(struct buf *r, const char *fmt, ...) PRINTF(2, 3);

static void
rprintf(struct buf *r, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		add(r, line, (size_t)n < sizeof(line) ? (size_t)n :
		    sizeof(line) - 1);
}

/* ,"key":"s" */
static void
rstr(struct buf *r, const char *key, const char *s)
{
	rprintf(r, ",\"%s\":", key);
	if (s == NULL)
		add(r, "null", 4);
	else
		json_str_to(add, r, s, strlen(s));
}

static void
ok(struct buf *r)
{
	add(r, "{\"ok\":true}\n\n", 13);
}

void
ctl_error(struct buf *r, const char *msg)
{
	add(r, "{\"error\":", 9);
	json_str_to(add, r, msg, strlen(msg));
	add(r, "}\n\n", 3);
}

static void
counters(struct buf *r, const struct route_stats *s)
{
	rprintf(r, ",\"accepted\":%llu,\"active\":%llu,\"bytes_c2s\":%llu,"
	    "\"bytes_s2c\":%llu,\"errors\":%llu}\n",
	    (unsigned long long)s->accepted, (unsigned long long)s->active,
	    (unsigned long long)s->bytes[0], (unsigned long long)s->bytes[1],
	    (unsigned long long)s->errors);
}

void
ctl_stats(struct buf *r)
{
	struct route_stats tot;
	char l[ADDRSTR + 16], a[ADDRSTR], t[ADDRSTR];
	size_t i;

	memset(&tot, 0, sizeof(tot));
	for (i = 0; i < nroutes; i++) {
		const struct route *rt = &routes[i];

		sockname_str(&rt->lname, a, sizeof(a));
		snprintf(l, sizeof(l), "%s %s", addr_type_name(rt->listen.type),
		    a);
		addr_target_str(&rt->target, t, sizeof(t));
		rprintf(r, "{\"route\":%d", rt->id);
		rstr(r, "listen", l);
		rstr(r, "target", t);
		counters(r, &rt->stats);
		tot.accepted += rt->stats.accepted;
		tot.active += rt->stats.active;
		tot.bytes[0] += rt->stats.bytes[0];
		tot.bytes[1] += rt->stats.bytes[1];
		tot.errors += rt->stats.errors;
	}
	rprintf(r, "{\"route\":\"total\"");
	counters(r, &tot);
}

static void
conn_line(struct conn *c, void *arg)
{
	const struct flow *f = conn_flow(c);
	struct buf *r = arg;
	uint64_t now = now_ms();
	char a[ADDRSTR];

	rprintf(r, "{\"conn\":%llu,\"route\":%d", (unsigned long long)f->id,
	    f->route);
	flowaddr_str(&f->client, a, sizeof(a));
	rstr(r, "src", a);
	flowaddr_str(f->server.len > 0 ? &f->server : &f->dst, a, sizeof(a));
	rstr(r, "dst", a);
	rstr(r, "sni", f->sni);
	rstr(r, "state", conn_state(c));
	rprintf(r, ",\"bytes_c2s\":%llu,\"bytes_s2c\":%llu,\"age_ms\":%llu,"
	    "\"idle_ms\":%llu}\n", (unsigned long long)f->bytes[0],
	    (unsigned long long)f->bytes[1],
	    (unsigned long long)(now - f->start_ms),
	    (unsigned long long)(now - conn_last_ms(c)));
}

static void
show_filters(struct buf *r)
{
	size_t i, j;

	for (i = 0; i < nroutes; i++)
		for (j = 0; j < routes[i].ntaps; j++) {
			rprintf(r, "{\"route\":%d,\"index\":%zu", routes[i].id,
			    j + 1);
			rstr(r, "spec", routes[i].taps[j].spec);
			rprintf(r, ",\"enabled\":%s}\n",
			    tapset_on(&routes[i], j + 1) ? "true" : "false");
		}
}

static void
show_held(struct buf *r)
{
	static const char hx[] = "0123456789abcdef";
	const struct held_chunk *h;
	char pair[2];
	size_t i;

	for (h = held_list(); h; h = h->next) {
		rprintf(r, "{\"id\":%llu,\"conn\":%llu,\"dir\":\"%s\","
		    "\"len\":%zu,\"hex\":\"", (unsigned long long)h->id,
		    (unsigned long long)h->conn, h->dir == C2S ? "c2s" : "s2c",
		    h->n);
		for (i = 0; i < h->n; i++) {
			pair[0] = hx[h->p[i] >> 4];
			pair[1] = hx[h->p[i] & 15];
			add(r, pair, 2);
		}
		add(r, "\"}\n", 3);
	}
}

static void
help(struct buf *r)
{
	size_t i;

	for (i = 0; i < sizeof(help_lines) / sizeof(help_lines[0]); i++) {
		add(r, "{\"command\":", 11);
		json_str_to(add, r, help_lines[i][0],
		    strlen(help_lines[i][0]));
		rstr(r, "does", help_lines[i][1]);
		add(r, "}\n", 2);
	}
}

static void
kill_one(struct conn *c, void *arg)
{
	(void)arg;
	conn_close(c, "killed over the control socket", 1);
}

static void
kick(struct conn *c, void *arg)
{
	if (conn_route(c) == arg)
		conn_kick(c);
}

/* The route a command names, or NULL with an error reply. */
static struct route *
route_of(const struct ctlcmd *cmd, struct buf *r)
{
	char err[80];

	if (cmd->route >= 1 && (size_t)cmd->route <= nroutes)
		return &routes[cmd->route - 1];
	snprintf(err, sizeof(err), "no route %ld (there are %zu)", cmd->route,
	    nroutes);
	ctl_error(r, err);
	return NULL;
}

static void
filters(const struct ctlcmd *cmd, struct buf *r)
{
	struct route *rt;
	char err[ERRLEN], *spec;
	int rc;

	if ((rt = route_of(cmd, r)) == NULL)
		return;
	switch (cmd->op) {
	case CTL_ADD_FILTER:
		if ((spec = strndup(cmd->spec, cmd->speclen)) == NULL) {
			ctl_error(r, "out of memory");
			return;
		}
		rc = tapset_add(rt, spec, err, sizeof(err));
		free(spec);
		break;
	case CTL_DEL_FILTER:
		rc = tapset_del(rt, (size_t)cmd->index, err, sizeof(err));
		break;
	default:
		rc = tapset_switch(rt, (size_t)cmd->index,
		    cmd->op == CTL_ENABLE_FILTER, err, sizeof(err));
		if (rc == 0)		/* held bytes go on now */
			conn_walk(kick, rt);
		break;
	}
	if (rc == -1)
		ctl_error(r, err);
	else
		ok(r);
}

static void
decide(const struct ctlcmd *cmd, const uint8_t *hex, struct buf *r)
{
	static const enum held_how how[] = {
		[CTL_FORWARD] = H_FORWARD, [CTL_DROP] = H_DROP,
		[CTL_REPLACE] = H_FORWARD, [CTL_ANSWER] = H_ANSWER,
	};
	int bytes = cmd->op == CTL_REPLACE || cmd->op == CTL_ANSWER;
	char err[80];

	if (held_decide(cmd->id, how[cmd->op], bytes ? hex : NULL,
	    cmd->hexlen, err, sizeof(err)) == -1)
		ctl_error(r, err);
	else
		ok(r);
}

void
ctl_run(const struct ctlcmd *cmd, const uint8_t *hex, struct buf *r)
{
	struct conn *c;
	char err[80];

	switch (cmd->op) {
	case CTL_NONE:
		return;
	case CTL_HELP:
		help(r);
		break;
	case CTL_SHOW_STATS:
		ctl_stats(r);
		break;
	case CTL_SHOW_CONNS:
		conn_walk(conn_line, r);
		break;
	case CTL_SHOW_FILTERS:
		show_filters(r);
		break;
	case CTL_SHOW_HELD:
		show_held(r);
		break;
	case CTL_KILL_CONN:
		if ((c = conn_find(cmd->id)) == NULL) {
			snprintf(err, sizeof(err), "no connection %llu",
			    (unsigned long long)cmd->id);
			ctl_error(r, err);
			return;
		}
		kill_one(c, NULL);
		ok(r);
		return;
	case CTL_KILL_ALL:
		conn_walk(kill_one, NULL);
		ok(r);
		return;
	case CTL_ADD_FILTER:
	case CTL_DEL_FILTER:
	case CTL_ENABLE_FILTER:
	case CTL_DISABLE_FILTER:
		filters(cmd, r);
		return;
	default:
		decide(cmd, hex, r);
		return;
	}
	add(r, "\n", 1);
}
