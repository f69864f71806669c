/*
 * addr.c - socat-style address specs:  TYPE[:PARAMS][,OPTION[=VALUE]]...
 *
 * Grammar (TYPE is case-insensitive):
 *   tcp-listen:[HOST:]PORT | tcp-l:[HOST:]PORT | udp-listen:[HOST:]PORT |
 *   udp-l:[HOST:]PORT | unix-listen:PATH | unix-l:PATH |
 *   tcp-tproxy:[HOST:]PORT | udp-tproxy:[HOST:]PORT |
 *   socks5-listen:[HOST:]PORT | http-listen:[HOST:]PORT  (listen side)
 *   stdio | -                                           (listen side)
 *   tcp:HOST:PORT | udp:HOST:PORT | unix:PATH | echo | orig[:HOST] |
 *   exec:COMMAND                                          (target side)
 *   stdio takes no options; everything after "exec:" is the command, so
 *   it may hold commas and colons.
 *   HOST  = name | IPv4 literal | "[" IPv6 literal "]"
 *   OPTION = reuseaddr[=0|1] | reuseport[=0|1] | backlog=N | ipv6only=0|1 |
 *            bind=HOST[:PORT] | spoof | port-map=FROM:TO[;FROM:TO]... |
 *            allow-loopback[=0|1] | proxy-protocol (listen) |
 *            proxy-from=CIDR[;CIDR]... | proxy-protocol=v1|v2 (target) |
 *            auth=USER:PASS (socks5-listen) |
 *            tls[=auto] | starttls | detect=MS and the TLS options
 * This is untrusted input (it may come from scripts); every field is bounded
 * before it is copied, and tests/fuzz/fuzz_addr.c runs it under libFuzzer.
 */
#include <sys/un.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "out.h"
#include "parse.h"
#include "re.h"

#define LISTEN_HELP	"tcp-listen:[HOST:]PORT, udp-listen:[HOST:]PORT, " \
			"tcp-tproxy:[HOST:]PORT, udp-tproxy:[HOST:]PORT, " \
			"socks5-listen:[HOST:]PORT, http-listen:[HOST:]PORT, " \
			"unix-listen:PATH or stdio"
#define TARGET_HELP	"tcp:HOST:PORT, udp:HOST:PORT, unix:PATH, orig[:HOST], " \
			"exec:COMMAND or echo"

struct type_name {
	const char	*name;
	enum addr_type	 type;
};

static const struct type_name types[] = {
	{ "tcp-listen", A_TCP_LISTEN },
	{ "tcp-l", A_TCP_LISTEN },
	{ "unix-listen", A_UNIX_LISTEN },
	{ "unix-l", A_UNIX_LISTEN },
	{ "tcp-tproxy", A_TCP_TPROXY },
	{ "udp-tproxy", A_UDP_TPROXY },
	{ "socks5-listen", A_SOCKS5_LISTEN },
	{ "http-listen", A_HTTP_LISTEN },
	{ "orig", A_ORIG },
	{ "udp-listen", A_UDP_LISTEN },
	{ "udp-l", A_UDP_LISTEN },
	{ "tcp", A_TCP },
	{ "udp", A_UDP },
	{ "unix", A_UNIX },
	{ "echo", A_ECHO },
	{ NULL, A_NONE },
};

int
addr_is_listen(enum addr_type t)
{
	return t == A_TCP_LISTEN || t == A_UNIX_LISTEN || t == A_UDP_LISTEN ||
	    t == A_TCP_TPROXY || t == A_UDP_TPROXY || t == A_STDIO ||
	    addr_is_explicit(t);
}

int
addr_is_explicit(enum addr_type t)
{
	return t == A_SOCKS5_LISTEN || t == A_HTTP_LISTEN;
}

int
addr_is_udp(enum addr_type t)
{
	return t == A_UDP_LISTEN || t == A_UDP || t == A_UDP_TPROXY;
}

int
addr_is_tproxy(enum addr_type t)
{
	return t == A_TCP_TPROXY || t == A_UDP_TPROXY;
}

const char *
addr_type_name(enum addr_type t)
{
	switch (t) {
	case A_TCP_LISTEN:
	case A_TCP_TPROXY:
	case A_SOCKS5_LISTEN:
	case A_HTTP_LISTEN:
	case A_TCP:
		return "tcp";
	case A_UDP_LISTEN:
	case A_UDP_TPROXY:
	case A_UDP:
		return "udp";
	case A_ORIG:
		return "orig";
	case A_UNIX_LISTEN:
	case A_UNIX:
		return "unix";
	case A_ECHO:
		return "echo";
	case A_STDIO:
		return "stdio";
	case A_EXEC:
		return "exec";
	default:
		return "?";
	}
}

/* A host name or literal: letters, digits, '.', '-', '_' (and ':' in v6). */
static int
host_ok(const char *h, int bracketed)
{
	unsigned char a[16];

	if (*h == '\0')
		return 0;
	if (bracketed)
		return inet_pton(AF_INET6, h, a) == 1;
	for (; *h; h++)
		if (!isalnum((unsigned char)*h) && *h != '.' && *h != '-' &&
		    *h != '_')
			return 0;
	return 1;
}

/*
 * Splits "[HOST:]PORT" or "HOST:PORT" into host and port.  need_host says
 * whether HOST is required; port_min is 0 for listeners.  Returns 0, or -1
 * with a message in err.
 */
static int
hostport_parse(const char *s, int need_host, int port_min, char *host,
    size_t hostlen, uint16_t *port, char *err, size_t errlen)
{
	const char *p, *colon;
	size_t hl;
	int bracketed = 0;
	long long v;

	if (s[0] == '[') {
		p = strchr(s, ']');
		if (p == NULL) {
			snprintf(err, errlen, "missing ']' after IPv6 host");
			return -1;
		}
		hl = (size_t)(p - s - 1);
		if (hl == 0 || hl >= hostlen) {
			snprintf(err, errlen, "bad IPv6 host");
			return -1;
		}
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		bracketed = 1;
		if (p[1] != ':') {
			snprintf(err, errlen, "expected ':PORT' after ']'");
			return -1;
		}
		colon = p + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon != NULL && memchr(s, ':', (size_t)(colon - s))) {
			snprintf(err, errlen,
			    "IPv6 hosts go in brackets, as in [::1]:8080");
			return -1;
		}
		if (colon == NULL) {
			if (need_host) {
				snprintf(err, errlen, "expected HOST:PORT");
				return -1;
			}
			snprintf(host, hostlen, "127.0.0.1");
			colon = s - 1;
		} else {
			hl = (size_t)(colon - s);
			if (hl >= hostlen) {
				snprintf(err, errlen, "host name too long");
				return -1;
			}
			memcpy(host, s, hl);
			host[hl] = '\0';
		}
	}
	if (!host_ok(host, bracketed)) {
		snprintf(err, errlen, "bad host '%s'", host);
		return -1;
	}
	if (num_parse(colon + 1, port_min, 65535, &v) == -1) {
		snprintf(err, errlen, "bad port '%s' (expected %d..65535)",
		    colon + 1, port_min);
		return -1;
	}
	*port = (uint16_t)v;
	return 0;
}

static int
bool_parse(const char *v, int *out)
{
	if (v == NULL || strcmp(v, "1") == 0)
		*out = 1;
	else if (strcmp(v, "0") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

/* The options an address of type t takes, for messages. */
static const char *
opts_help(enum addr_type t)
{
	switch (t) {
	case A_TCP_LISTEN:
	case A_TCP_TPROXY:
		return "reuseaddr, reuseport, backlog=N, ipv6only=0|1, "
		    "bind=HOST[:PORT], "
		    "tls, tls=auto, starttls, detect=MS, cert=FILE, key=FILE, "
		    "passthrough=REGEX, keylog=FILE, "
		    "proxy-protocol, proxy-from=CIDR[;CIDR]";
	case A_SOCKS5_LISTEN:
		return "reuseaddr, reuseport, backlog=N, ipv6only=0|1, "
		    "bind=HOST[:PORT], auth=USER:PASS, "
		    "tls, tls=auto, starttls, detect=MS, cert=FILE, key=FILE, "
		    "passthrough=REGEX, keylog=FILE";
	case A_HTTP_LISTEN:
		return "reuseaddr, reuseport, backlog=N, ipv6only=0|1, "
		    "bind=HOST[:PORT], "
		    "tls, tls=auto, starttls, detect=MS, cert=FILE, key=FILE, "
		    "passthrough=REGEX, keylog=FILE";
	case A_UDP_LISTEN:
	case A_UDP_TPROXY:
		return "reuseaddr, reuseport, ipv6only=0|1, bind=HOST[:PORT]";
	case A_UNIX_LISTEN:
		return "backlog=N, proxy-protocol";
	case A_TCP:
		return "bind=HOST[:PORT], spoof, tls, verify=0|1, cert=FILE, "
		    "key=FILE, proxy-protocol=v1|v2";
	case A_UNIX:
		return "proxy-protocol=v1|v2";
	case A_UDP:
		return "bind=HOST[:PORT], spoof";
	case A_ORIG:
		return "spoof, port-map=FROM:TO[;FROM:TO], allow-loopback, "
		    "bind=HOST[:PORT], tls, verify=0|1, cert=FILE, key=FILE, "
		    "proxy-protocol=v1|v2";
	default:
		return "no options";
	}
}

/* port-map=FROM:TO[;FROM:TO]...; returns 0 or -1. */
static int
portmap_parse(struct addr *a, const char *v)
{
	char pair[32];
	long long from, to;

	while (*v) {
		size_t n = strcspn(v, ";");
		char *colon;

		if (n == 0 || n >= sizeof(pair) || a->nportmap == MAX_PORTMAP)
			return -1;
		memcpy(pair, v, n);
		pair[n] = '\0';
		if ((colon = strchr(pair, ':')) == NULL)
			return -1;
		*colon = '\0';
		if (num_parse(pair, 1, 65535, &from) == -1 ||
		    num_parse(colon + 1, 1, 65535, &to) == -1)
			return -1;
		a->portmap[a->nportmap][0] = (uint16_t)from;
		a->portmap[a->nportmap][1] = (uint16_t)to;
		a->nportmap++;
		v += n;
		if (*v == ';' && *++v == '\0')
			return -1;
	}
	return a->nportmap > 0 ? 0 : -1;
}

/* proxy-from=CIDR[;CIDR]...; returns 0 or -1. */
static int
proxyfrom_parse(struct addr *a, const char *v)
{
	char one[64];

	while (*v) {
		size_t n = strcspn(v, ";");

		if (n == 0 || n >= sizeof(one) ||
		    a->nproxy_from == MAX_PROXY_FROM)
			return -1;
		memcpy(one, v, n);
		one[n] = '\0';
		if (cidr_parse(one, &a->proxy_from[a->nproxy_from]) == -1)
			return -1;
		a->nproxy_from++;
		v += n;
		if (*v == ';' && *++v == '\0')
			return -1;
	}
	return a->nproxy_from > 0 ? 0 : -1;
}

/* orig:HOST: a name, an IPv4 literal, or an IPv6 one (brackets optional). */
static int
orig_host_parse(struct addr *a, const char *h, char *err, size_t errlen)
{
	char hp[ADDRSTR];
	unsigned char buf[16];
	uint16_t port;

	if (*h == '\0') {
		snprintf(err, errlen, "expected orig:HOST");
		return -1;
	}
	if (inet_pton(AF_INET6, h, buf) == 1)
		snprintf(hp, sizeof(hp), "[%s]:0", h);
	else
		snprintf(hp, sizeof(hp), "%s:0", h);
	return hostport_parse(hp, 1, 0, a->host, sizeof(a->host), &port, err,
	    errlen);
}

/* One OPTION[=VALUE]; returns 0 or -1 with a message. */
static int
opt_parse(struct addr *a, int listen_side, char *opt, char *err,
    size_t errlen)
{
	char *val = strchr(opt, '=');
	long long v;

	if (val)
		*val++ = '\0';
	if (strcasecmp(opt, "reuseaddr") == 0) {
		if (bool_parse(val, &a->reuseaddr) == -1)
			goto badval;
	} else if (strcasecmp(opt, "reuseport") == 0 && listen_side &&
	    a->type != A_UNIX_LISTEN) {
		if (bool_parse(val, &a->reuseport) == -1)
			goto badval;
	} else if (strcasecmp(opt, "backlog") == 0 && listen_side &&
	    !addr_is_udp(a->type)) {
		if (val == NULL || num_parse(val, 1, 65535, &v) == -1)
			goto badval;
		a->backlog = (int)v;
	} else if (strcasecmp(opt, "ipv6only") == 0 && listen_side) {
		if (bool_parse(val, &a->ipv6only) == -1)
			goto badval;
	} else if (strcasecmp(opt, "bind") == 0 && a->type != A_ECHO &&
	    a->type != A_UNIX && a->type != A_UNIX_LISTEN) {
		char hp[ADDRSTR];

		if (val == NULL || *val == '\0')
			goto badval;
		/* bind=HOST or bind=HOST:PORT; a bare IPv6 is bracketed */
		if (strchr(val, ':') == NULL || (val[0] == '[' &&
		    val[strlen(val) - 1] == ']'))
			snprintf(hp, sizeof(hp), "%s:0", val);
		else
			snprintf(hp, sizeof(hp), "%s", val);
		if (hostport_parse(hp, 1, 0, a->bind_host,
		    sizeof(a->bind_host), &a->bind_port, err, errlen) == -1)
			return -1;
		a->has_bind = 1;
	} else if (strcasecmp(opt, "spoof") == 0 && (a->type == A_ORIG ||
	    a->type == A_TCP || a->type == A_UDP)) {
		if (val != NULL && bool_parse(val, &a->spoof) == -1)
			goto badval;
		if (val == NULL)
			a->spoof = 1;
	} else if (strcasecmp(opt, "allow-loopback") == 0 &&
	    a->type == A_ORIG) {
		if (val != NULL && bool_parse(val, &a->allow_loopback) == -1)
			goto badval;
		if (val == NULL)
			a->allow_loopback = 1;
	} else if (strcasecmp(opt, "port-map") == 0 && a->type == A_ORIG) {
		if (val == NULL || portmap_parse(a, val) == -1) {
			snprintf(err, errlen, "bad value for option 'port-map' "
			    "(expected FROM:TO[;FROM:TO]..., ports 1..65535, "
			    "at most %d pairs)", MAX_PORTMAP);
			return -1;
		}
	} else if (strcasecmp(opt, "tls") == 0 && listen_side && val != NULL &&
	    strcasecmp(val, "auto") == 0 && (a->type == A_TCP_LISTEN ||
	    a->type == A_TCP_TPROXY || addr_is_explicit(a->type))) {
		if (a->tls_detect == TLS_STARTTLS)
			goto detect_both;
		a->tls_detect = TLS_AUTO;
	} else if (strcasecmp(opt, "starttls") == 0 && (a->type ==
	    A_TCP_LISTEN || a->type == A_TCP_TPROXY ||
	    addr_is_explicit(a->type))) {
		int on = 1;

		if (val != NULL && bool_parse(val, &on) == -1)
			goto badval;
		if (on && a->tls_detect == TLS_AUTO)
			goto detect_both;
		a->tls_detect = on ? TLS_STARTTLS : 0;
	} else if (strcasecmp(opt, "detect") == 0 && (a->type ==
	    A_TCP_LISTEN || a->type == A_TCP_TPROXY ||
	    addr_is_explicit(a->type))) {
		if (val == NULL || num_parse(val, 1, 60000, &v) == -1) {
			snprintf(err, errlen, "bad value for option 'detect' "
			    "(expected milliseconds, 1..60000)");
			return -1;
		}
		a->detect_ms = (int)v;
	} else if (strcasecmp(opt, "tls") == 0 && (a->type == A_TCP_LISTEN ||
	    a->type == A_TCP_TPROXY || a->type == A_TCP || a->type == A_ORIG ||
	    addr_is_explicit(a->type))) {
		if (val != NULL && bool_parse(val, &a->tls) == -1) {
			snprintf(err, errlen, "bad value for option 'tls' "
			    "(expected 0, 1%s)", listen_side ? " or auto" : "");
			return -1;
		}
		if (val == NULL)
			a->tls = 1;
	} else if ((strcasecmp(opt, "cert") == 0 || strcasecmp(opt, "key") == 0) &&
	    (a->type == A_TCP || a->type == A_ORIG)) {
		/* target: a client certificate for mutual TLS */
		char *dst = strcasecmp(opt, "cert") == 0 ? a->cert : a->key;

		if (val == NULL || *val == '\0' || strlen(val) >= 256) {
			snprintf(err, errlen, "option '%s' needs a file name",
			    opt);
			return -1;
		}
		strcpy(dst, val);
	} else if ((strcasecmp(opt, "cert") == 0 || strcasecmp(opt, "key") == 0 ||
	    strcasecmp(opt, "keylog") == 0) && listen_side &&
	    !addr_is_udp(a->type) && a->type != A_UNIX_LISTEN) {
		char *dst = strcasecmp(opt, "cert") == 0 ? a->cert :
		    strcasecmp(opt, "key") == 0 ? a->key : a->keylog;

		if (val == NULL || *val == '\0' || strlen(val) >= 256) {
			snprintf(err, errlen, "option '%s' needs a file name",
			    opt);
			return -1;
		}
		strcpy(dst, val);
	} else if (strcasecmp(opt, "passthrough") == 0 && listen_side &&
	    !addr_is_udp(a->type) && a->type != A_UNIX_LISTEN) {
		char e[ERRLEN];

		if (val == NULL || *val == '\0') {
			snprintf(err, errlen, "option 'passthrough' needs a "
			    "REGEX");
			return -1;
		}
		re_free(a->passthrough);
		if ((a->passthrough = re_compile(val, 1, e, sizeof(e))) ==
		    NULL) {
			snprintf(err, errlen, "passthrough: %s", e);
			return -1;
		}
	} else if (strcasecmp(opt, "verify") == 0 && !listen_side &&
	    (a->type == A_TCP || a->type == A_ORIG)) {
		if (val == NULL || bool_parse(val, &a->verify) == -1)
			goto badval;
	} else if (strcasecmp(opt, "proxy-protocol") == 0 &&
	    addr_is_udp(a->type)) {
		snprintf(err, errlen, "UDP routes do not take the option "
		    "'proxy-protocol' (it is for streams)");
		return -1;
	} else if (strcasecmp(opt, "auth") == 0 &&
	    a->type == A_SOCKS5_LISTEN) {
		const char *colon = val ? strchr(val, ':') : NULL;

		if (colon == NULL || colon == val || colon - val > 255 ||
		    strlen(colon + 1) > 255 || colon[1] == '\0') {
			snprintf(err, errlen, "bad value for option 'auth' "
			    "(expected USER:PASS, each 1..255 bytes)");
			return -1;
		}
		strcpy(a->auth, val);
	} else if (strcasecmp(opt, "proxy-protocol") == 0 && listen_side &&
	    !addr_is_explicit(a->type)) {
		if (bool_parse(val, &a->proxy_protocol) == -1)
			goto badval;
	} else if (strcasecmp(opt, "proxy-protocol") == 0 &&
	    a->type != A_ECHO) {
		if (val == NULL || (strcasecmp(val, "v1") != 0 &&
		    strcasecmp(val, "v2") != 0)) {
			snprintf(err, errlen, "bad value for option "
			    "'proxy-protocol' (expected v1 or v2)");
			return -1;
		}
		a->proxy_protocol = val[1] - '0';
	} else if (strcasecmp(opt, "proxy-from") == 0 && listen_side &&
	    !addr_is_udp(a->type) && !addr_is_explicit(a->type)) {
		if (val == NULL || proxyfrom_parse(a, val) == -1) {
			snprintf(err, errlen, "bad value for option "
			    "'proxy-from' (expected CIDR[;CIDR]..., at most "
			    "%d)", MAX_PROXY_FROM);
			return -1;
		}
	} else {
		snprintf(err, errlen, "unknown option '%s' for a%s %s %s address "
		    "(expected %s)", opt, a->type == A_ECHO ? "n" : "",
		    addr_type_name(a->type), listen_side ? "listen" : "target",
		    opts_help(a->type));
		return -1;
	}
	return 0;
detect_both:
	snprintf(err, errlen, "tls=auto and starttls: choose one");
	return -1;
badval:
	snprintf(err, errlen, "bad value for option '%s'%s", opt,
	    strcasecmp(opt, "backlog") == 0 ? " (expected 1..65535)" :
	    strcasecmp(opt, "bind") == 0 ? " (expected HOST[:PORT])" :
	    " (expected 0 or 1)");
	return -1;
}

/*
 * The pipeline addresses, which do not follow TYPE:PARAMS,OPTIONS: stdio
 * (or "-") and exec:COMMAND, whose command is the rest of the spec.
 * Returns 1 when spec is one of them (a filled in), 0 when it is not, -1
 * on an error (err).
 */
static int
pipe_addr_parse(const char *spec, int listen_side, struct addr *a, char *err,
    size_t errlen)
{
	size_t n = strcspn(spec, ":,");

	if (strcmp(spec, "-") == 0 || (n == 5 &&
	    strncasecmp(spec, "stdio", 5) == 0)) {
		if (spec[n] != '\0') {
			snprintf(err, errlen, "stdio takes no parameters or "
			    "options");
			return -1;
		}
		if (!listen_side) {
			snprintf(err, errlen, "stdio is a listen address (it "
			    "comes first in a route)");
			return -1;
		}
		a->type = A_STDIO;
		strcpy(a->path, "-");
		return 1;
	}
	if (n != 4 || strncasecmp(spec, "exec", 4) != 0)
		return 0;
	if (listen_side) {
		snprintf(err, errlen, "exec is a target address (expected "
		    "%s)", LISTEN_HELP);
		return -1;
	}
	if (spec[n] != ':' || spec[n + 1 + strspn(spec + n + 1, " \t")] ==
	    '\0') {
		snprintf(err, errlen, "expected exec:COMMAND (a command "
		    "for /bin/sh -c)");
		return -1;
	}
	if ((a->cmd = strdup(spec + n + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->type = A_EXEC;
	return 1;
}

/*
 * Parses spec into a.  listen_side says which kind of address is expected.
 * Returns 0, or -1 with a message (without the spec itself) in err.
 */
int
addr_parse(const char *spec, int listen_side, struct addr *a, char *err,
    size_t errlen)
{
	char buf[1024], *params, *opts, *p;
	const struct type_name *tn;
	int depth = 0;

	memset(a, 0, sizeof(*a));
	a->reuseaddr = -1;
	a->ipv6only = -1;
	a->verify = 1;
	if (strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "address too long");
		return -1;
	}
	strcpy(buf, spec);
	if (pipe_addr_parse(buf, listen_side, a, err, errlen) != 0)
		return a->type == A_NONE ? -1 : 0;

	/* options start at the first comma outside brackets */
	opts = NULL;
	for (p = buf; *p; p++) {
		if (*p == '[')
			depth++;
		else if (*p == ']' && depth > 0)
			depth--;
		else if (*p == ',' && depth == 0) {
			*p = '\0';
			opts = p + 1;
			break;
		}
	}
	params = strchr(buf, ':');
	if (params)
		*params++ = '\0';

	for (tn = types; tn->name; tn++)
		if (strcasecmp(buf, tn->name) == 0)
			break;
	a->type = tn->type;
	if (a->type == A_NONE) {
		snprintf(err, errlen, "unknown address type '%s' (expected "
		    "%s)", buf, listen_side ? LISTEN_HELP : TARGET_HELP);
		return -1;
	}
	if (addr_is_listen(a->type) != listen_side) {
		snprintf(err, errlen, "expected a %s address here (%s)",
		    listen_side ? "listen" : "target", listen_side ?
		    LISTEN_HELP : TARGET_HELP);
		return -1;
	}

	switch (a->type) {
	case A_TCP_LISTEN:
	case A_TCP:
	case A_UDP_LISTEN:
	case A_UDP:
	case A_TCP_TPROXY:
	case A_UDP_TPROXY:
	case A_SOCKS5_LISTEN:
	case A_HTTP_LISTEN:
		if (params == NULL || *params == '\0') {
			snprintf(err, errlen, "expected %s:%s", buf,
			    addr_is_listen(a->type) ? "[HOST:]PORT" :
			    "HOST:PORT");
			return -1;
		}
		if (hostport_parse(params, !addr_is_listen(a->type),
		    addr_is_listen(a->type) ? 0 : 1, a->host, sizeof(a->host),
		    &a->port, err, errlen) == -1)
			return -1;
		/* a TPROXY rule delivers to the wildcard address */
		if (addr_is_tproxy(a->type) && strchr(params, ':') == NULL)
			strcpy(a->host, "0.0.0.0");
		break;
	case A_UNIX_LISTEN:
	case A_UNIX:
		if (params == NULL || *params == '\0') {
			snprintf(err, errlen, "expected a socket path");
			return -1;
		}
		if (strlen(params) >= sizeof(a->path)) {
			snprintf(err, errlen, "socket path longer than %zu "
			    "bytes", sizeof(a->path) - 1);
			return -1;
		}
		strcpy(a->path, params);
		break;
	case A_ORIG:
		if (params != NULL && orig_host_parse(a, params, err,
		    errlen) == -1)
			return -1;
		break;
	case A_ECHO:
		if (params != NULL) {
			snprintf(err, errlen, "%s takes no parameters", buf);
			return -1;
		}
		break;
	default:
		break;
	}

	while (opts != NULL) {
		char *next = NULL;

		depth = 0;
		for (p = opts; *p; p++) {
			if (*p == '[')
				depth++;
			else if (*p == ']' && depth > 0)
				depth--;
			else if (*p == ',' && depth == 0) {
				*p = '\0';
				next = p + 1;
				break;
			}
		}
		if (*opts == '\0') {
			snprintf(err, errlen, "empty option");
			return -1;
		}
		if (opt_parse(a, listen_side, opts, err, errlen) == -1)
			return -1;
		opts = next;
	}
	if (listen_side && !a->tls && !a->tls_detect && (a->cert[0] ||
	    a->key[0] || a->keylog[0] || a->passthrough)) {
		snprintf(err, errlen, "cert=, key=, keylog= and passthrough= "
		    "need the tls, tls=auto or starttls option");
		return -1;
	}
	if (a->tls && a->tls_detect) {
		snprintf(err, errlen, "tls and %s: choose one",
		    a->tls_detect == TLS_AUTO ? "tls=auto" : "starttls");
		return -1;
	}
	if (a->detect_ms && !a->tls_detect) {
		snprintf(err, errlen, "detect= needs tls=auto or starttls");
		return -1;
	}
	if (a->tls_detect && a->detect_ms == 0)
		a->detect_ms = DETECT_MS;
	/* a target's verify=, cert= and key= are checked with its route */
	if (a->nproxy_from > 0 && !a->proxy_protocol) {
		snprintf(err, errlen, "proxy-from= needs the proxy-protocol "
		    "option");
		return -1;
	}
	if (a->key[0] && !a->cert[0]) {
		snprintf(err, errlen, "key= needs cert=");
		return -1;
	}
	if (a->has_bind && addr_is_listen(a->type)) {
		/* socat: bind= on a listener names the listen address */
		memcpy(a->host, a->bind_host, sizeof(a->host));
		if (a->bind_port)
			a->port = a->bind_port;
		a->has_bind = 0;
	}
	return 0;
}

/* Frees what addr_parse() allocated (also after it failed). */
void
addr_free(struct addr *a)
{
	re_free(a->passthrough);
	a->passthrough = NULL;
	free(a->cmd);
	a->cmd = NULL;
}

/* "tcp 127.0.0.1:8080", "tcp [::1]:80", "unix /path", "echo". */
void
addr_target_str(const struct addr *a, char *buf, size_t len)
{
	switch (a->type) {
	case A_TCP:
	case A_UDP:
		if (strchr(a->host, ':'))
			snprintf(buf, len, "%s [%s]:%u", addr_type_name(a->type),
			    a->host, a->port);
		else
			snprintf(buf, len, "%s %s:%u", addr_type_name(a->type),
			    a->host, a->port);
		break;
	case A_UNIX:
		snprintf(buf, len, "unix %s", a->path);
		break;
	case A_ECHO:
		snprintf(buf, len, "echo");
		break;
	case A_EXEC:
		snprintf(buf, len, "exec %s", a->cmd);
		break;
	case A_ORIG:
		snprintf(buf, len, "orig%s%s%s", a->host[0] ? " " : "",
		    a->host, a->spoof ? " (spoof)" : "");
		break;
	default:
		snprintf(buf, len, "?");
	}
}
