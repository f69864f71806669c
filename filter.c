/*
 * filter.c - the table of filters, and parsing a filter spec into a tap.
 *
 * Filter spec grammar:
 *   NAME[:ARG][,KEY=VALUE]...          e.g. answer:hi\r\n,match=^GET,dir=c2s
 *   sDREGEXDREPLACEMENTD[FLAGS][,KEY=VALUE]...   (D: any punctuation)
 * A comma followed by a known key name and '=' ends ARG (or a value); any
 * other comma belongs to it, so texts and regexes may hold commas.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filter.h"

extern const struct tap_ops tap_log, tap_hexdump, tap_replace, tap_drop,
    tap_answer, tap_redirect, tap_delay, tap_throttle, tap_slice, tap_limit,
    tap_reset, tap_stall, tap_loss, tap_pcap, tap_inspect;

/* Every filter, in the order --help and the man page list them. */
static const struct tap_ops *const all_taps[] = {
	&tap_log, &tap_hexdump, &tap_replace, &tap_drop, &tap_answer,
	&tap_redirect, &tap_delay, &tap_throttle, &tap_slice, &tap_limit,
	&tap_reset, &tap_stall, &tap_loss, &tap_pcap, &tap_inspect, NULL,
};

static const char *const common_keys[] = {
	"dir", "src", "dst", "dport", "sni", NULL,
};

/* Filters of the contract that later work will bring. */
static int
in_keys(const char *k, size_t kl, const char *const *keys)
{
	if (keys == NULL)
		return 0;
	for (; *keys; keys++)
		if (strlen(*keys) == kl && strncmp(k, *keys, kl) == 0)
			return 1;
	return 0;
}

/* Returns a pointer to the next ",KEY=" with KEY known, or NULL. */
static const char *
next_key(const char *s, const struct tap_ops *ops)
{
	for (; (s = strchr(s, ',')) != NULL; s++) {
		const char *k = s + 1, *e = k;

		while (isalnum((unsigned char)*e) || *e == '-' || *e == '_')
			e++;
		if (*e == '=' && (in_keys(k, (size_t)(e - k), common_keys) ||
		    in_keys(k, (size_t)(e - k), ops->keys)))
			return s;
	}
	return NULL;
}

static int
common_key(struct tap *t, const char *k, const char *v, char *err,
    size_t errlen)
{
	long long n;

	if (strcmp(k, "dir") == 0) {
		if (strcasecmp(v, "c2s") == 0)
			t->dirs = DIR_BIT(C2S);
		else if (strcasecmp(v, "s2c") == 0)
			t->dirs = DIR_BIT(S2C);
		else if (strcasecmp(v, "both") == 0)
			t->dirs = DIR_BOTH;
		else {
			snprintf(err, errlen, "bad dir '%s' (expected c2s, "
			    "s2c or both)", v);
			return -1;
		}
	} else if (strcmp(k, "src") == 0 || strcmp(k, "dst") == 0) {
		if (cidr_parse(v, k[0] == 's' ? &t->src : &t->dst) == -1) {
			snprintf(err, errlen, "bad %s '%s' (expected an IPv4 "
			    "or IPv6 address with an optional /BITS)", k, v);
			return -1;
		}
	} else if (strcmp(k, "dport") == 0) {
		if (num_parse(v, 1, 65535, &n) == -1) {
			snprintf(err, errlen, "bad dport '%s' (expected "
			    "1..65535)", v);
			return -1;
		}
		t->dport = (int)n;
	} else if (strcmp(k, "sni") == 0) {
		re_free(t->sni_re);
		if ((t->sni_re = re_compile(v, 1, err, errlen)) == NULL)
			return -1;
	} else
		return 1;
	return 0;
}

static int
is_sexpr(const char *spec)
{
	return spec[0] == 's' && spec[1] != '\0' &&
	    !isalnum((unsigned char)spec[1]) && spec[1] != '\\' &&
	    spec[1] != '\n' && !isspace((unsigned char)spec[1]);
}

static const struct tap_ops *
tap_find(const char *name, size_t len)
{
	const struct tap_ops *const *o;

	for (o = all_taps; *o; o++)
		if (*o != &tap_replace &&	/* only as sDREDREPLD */
		    strlen((*o)->name) == len &&
		    strncasecmp((*o)->name, name, len) == 0)
			return *o;
	return NULL;
}

/* "log, hexdump, s/RE/REPL/, ..." from the table, for error messages. */
static void
names_list(char *buf, size_t len)
{
	const struct tap_ops *const *o;
	size_t n = 0;

	buf[0] = '\0';
	for (o = all_taps; *o && n < len; o++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "",
		    *o == &tap_replace ? "s/RE/REPL/" : (*o)->name);
}

/* Splits "NAME[:ARG]" off spec: sets t->ops and *arg; returns the rest. */
static const char *
name_arg(const char *spec, struct tap *t, char **arg, char *err,
    size_t errlen)
{
	const char *rest, *p;
	size_t nl, re_end, rp_end;
	char name[64], names[512];

	if (is_sexpr(spec)) {
		t->ops = &tap_replace;
		if ((nl = sexpr_scan(spec, &re_end, &rp_end)) == 0) {
			snprintf(err, errlen, "unterminated s%cREGEX%c"
			    "REPLACEMENT%c[gi] expression", spec[1], spec[1],
			    spec[1]);
			return NULL;
		}
		*arg = strndup(spec, nl);
		return spec + nl;
	}
	nl = strcspn(spec, ":,");
	if ((t->ops = tap_find(spec, nl)) == NULL) {
		snprintf(name, sizeof(name), "%.*s", (int)nl, spec);
		names_list(names, sizeof(names));
		snprintf(err, errlen, "unknown filter '%s' (expected %s)",
		    name, names);
		return NULL;
	}
	rest = spec + nl;
	if (*rest == ':') {
		rest++;
		if ((p = next_key(rest - 1, t->ops)) == NULL)
			p = rest + strlen(rest);
		*arg = strndup(rest, (size_t)(p - rest));
		rest = p;
	}
	return rest;
}

/* Applies ",KEY=VALUE..." in rest.  Returns 0, or -1 with a message. */
static int
keys_parse(struct tap *t, const char *rest, char *err, size_t errlen)
{
	char *kv = NULL;
	const char *p;
	int rc = -1;

	while (*rest) {
		const char *k = rest + 1, *eq = strchr(k, '=');
		int r;

		p = eq ? next_key(eq, t->ops) : NULL;
		if (p == NULL)
			p = k + strlen(k);
		free(kv);
		kv = strndup(k, (size_t)(p - k));
		if (kv == NULL || eq == NULL || eq > p ||
		    !(in_keys(k, (size_t)(eq - k), common_keys) ||
		    in_keys(k, (size_t)(eq - k), t->ops->keys))) {
			snprintf(err, errlen, "unknown key '%s' for filter "
			    "'%s' (expected dir=, src=, dst=, dport=, sni=%s)",
			    kv ? kv : "", t->ops->name, t->ops->keys ?
			    " or its own keys" : "");
			goto out;
		}
		kv[eq - k] = '\0';
		r = common_key(t, kv, kv + (eq - k) + 1, err, errlen);
		if (r == 1 && t->ops->key)
			r = t->ops->key(t, kv, kv + (eq - k) + 1, err, errlen);
		if (r != 0)
			goto out;
		rest = p;
	}
	rc = 0;
out:
	free(kv);
	return rc;
}

/*
 * Parses one filter spec into t.  Returns 0, or -1 with a message in err.
 */
int
tap_parse(const char *spec, int udp, struct tap *t, char *err, size_t errlen)
{
	char *arg = NULL;
	const char *rest;
	int rc = -1;

	memset(t, 0, sizeof(*t));
	t->spec = spec;
	t->dirs = DIR_BOTH;
	t->dport = -1;
	t->udp = udp;
	if ((rest = name_arg(spec, t, &arg, err, errlen)) == NULL)
		goto out;
	if (arg == NULL && t->ops->takes_arg == 2) {
		snprintf(err, errlen, "filter '%s' needs an argument (%s)",
		    t->ops->name, t->ops->usage);
		goto out;
	}
	if (arg != NULL && t->ops->takes_arg == 0) {
		snprintf(err, errlen, "filter '%s' takes no argument",
		    t->ops->name);
		goto out;
	}
	if (t->ops->udp_only && !udp) {
		snprintf(err, errlen, "filter '%s' works on UDP routes only",
		    t->ops->name);
		goto out;
	}
	if (t->ops->parse && t->ops->parse(t, arg, err, errlen) == -1)
		goto out;
	if (keys_parse(t, rest, err, errlen) == -1)
		goto out;
	if (t->ops->check && t->ops->check(t, err, errlen) == -1)
		goto out;
	rc = 0;
out:
	free(arg);
	return rc;
}

void
tap_free(struct tap *t)
{
	if (t->ops && t->ops->free)
		t->ops->free(t);
	re_free(t->sni_re);
	t->sni_re = NULL;
}

int
tap_match(const struct tap *t, const struct flow *f)
{
	struct sockname sn;

	if (!cidr_match(&t->src, flowaddr_get(&f->client, &sn)))
		return 0;
	if (!cidr_match(&t->dst, flowaddr_get(&f->dst, &sn)))
		return 0;
	if (t->dport >= 0 && sockname_port(&sn) != t->dport)
		return 0;
	if (t->sni_re != NULL && (f->sni == NULL ||
	    !re_search(t->sni_re, (const uint8_t *)f->sni, strlen(f->sni))))
		return 0;
	return 1;
}

int
tap_writes_stdout(const struct tap *t)
{
	return t->writes != NULL && strcmp(t->writes, "-") == 0;
}

/* The usage of every filter, a few to a line, for --help. */
void
filters_help(FILE *f)
{
	const struct tap_ops *const *o;
	size_t col = 0, n;

	for (o = all_taps; *o; o++) {
		n = strlen((*o)->usage);
		if (col > 0 && col + 3 + n > 78) {
			fputc('\n', f);
			col = 0;
		}
		col += (size_t)fprintf(f, "%s%s", col ? "   " : "         ",
		    (*o)->usage);
	}
	fputc('\n', f);
}
