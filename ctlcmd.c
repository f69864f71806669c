/*
 * ctlcmd.c - parse one control socket line into a command.
 *
 *   line    = *SP [command] *SP
 *   command = "help"
 *           / "show" SP ("stats" / "conns" / "filters" / "held")
 *           / "kill" SP ("conn" SP ID / "all")
 *           / "add" SP "filter" SP ROUTE SP SPEC     (SPEC: the rest)
 *           / ("del" / "enable" / "disable") SP "filter" SP ROUTE SP INDEX
 *           / ("forward" / "drop") SP ID
 *           / ("replace" / "answer") SP ID SP HEX
 *   HEX     = pairs of hex digits, spaces allowed between pairs
 *   SP      = one or more spaces or tabs
 *
 * Words are case-insensitive.  The line is the client's: every read is
 * bounded by n, a NUL byte is refused, numbers are range-checked, and
 * tests/fuzz/fuzz_control.c runs this under libFuzzer.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ctlcmd.h"
#include "parse.h"

#define ID_MAX		((uint64_t)1 << 62)
#define NUM_MAX		1000000

struct lex {
	const char	*p;
	size_t		 n;
};

static int
is_sp(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static void
skip_sp(struct lex *l)
{
	while (l->n > 0 && is_sp(*l->p)) {
		l->p++;
		l->n--;
	}
}

/* The next word: its length (0 at the end), *w at its start. */
static size_t
word(struct lex *l, const char **w)
{
	size_t k = 0;

	skip_sp(l);
	*w = l->p;
	while (k < l->n && !is_sp(l->p[k]))
		k++;
	l->p += k;
	l->n -= k;
	return k;
}

static int
word_is(struct lex *l, const char *want)
{
	struct lex save = *l;
	const char *w;
	size_t k = word(l, &w);

	if (k == strlen(want) && strncasecmp(w, want, k) == 0)
		return 1;
	*l = save;
	return 0;
}

/* A decimal number in 1..max: 0, or -1 with a message naming what. */
static int
number(struct lex *l, const char *what, uint64_t max, uint64_t *v,
    char *err, size_t errlen)
{
	const char *w;
	size_t k = word(l, &w), i;
	uint64_t n = 0;

	if (k == 0) {
		snprintf(err, errlen, "missing %s", what);
		return -1;
	}
	for (i = 0; i < k; i++) {
		if (!isdigit((unsigned char)w[i]) || n > max / 10) {
			snprintf(err, errlen, "bad %s '%.*s' (expected 1..%llu)",
			    what, (int)(k > 32 ? 32 : k), w,
			    (unsigned long long)max);
			return -1;
		}
		n = n * 10 + (uint64_t)(w[i] - '0');
	}
	if (n < 1 || n > max) {
		snprintf(err, errlen, "bad %s '%.*s' (expected 1..%llu)", what,
		    (int)(k > 32 ? 32 : k), w, (unsigned long long)max);
		return -1;
	}
	*v = n;
	return 0;
}

static int
at_end(struct lex *l, char *err, size_t errlen)
{
	const char *w;
	size_t k = word(l, &w);

	if (k == 0)
		return 0;
	snprintf(err, errlen, "unexpected '%.*s' at the end", (int)(k > 32 ?
	    32 : k), w);
	return -1;
}

/* The rest of the line as bytes: 0, or -1 with a message. */
static int
hex_rest(struct lex *l, uint8_t *out, size_t cap, size_t *len, char *err,
    size_t errlen)
{
	size_t n = 0;
	int hi, lo;

	skip_sp(l);
	if (l->n == 0) {
		snprintf(err, errlen, "missing HEX bytes");
		return -1;
	}
	while (l->n > 0) {
		if (is_sp(*l->p)) {
			skip_sp(l);
			continue;
		}
		if (l->n < 2 || (hi = hexval(l->p[0])) < 0 ||
		    (lo = hexval(l->p[1])) < 0) {
			snprintf(err, errlen, "bad HEX bytes (expected pairs "
			    "of hex digits)");
			return -1;
		}
		if (n >= cap) {
			snprintf(err, errlen, "too many bytes");
			return -1;
		}
		out[n++] = (uint8_t)(hi << 4 | lo);
		l->p += 2;
		l->n -= 2;
	}
	*len = n;
	return 0;
}

/* "filter ROUTE INDEX" after del/enable/disable. */
static int
route_index(struct lex *l, struct ctlcmd *cmd, char *err, size_t errlen)
{
	uint64_t v;

	if (!word_is(l, "filter")) {
		snprintf(err, errlen, "expected 'filter ROUTE INDEX'");
		return -1;
	}
	if (number(l, "ROUTE", NUM_MAX, &v, err, errlen) == -1)
		return -1;
	cmd->route = (long)v;
	if (number(l, "INDEX", NUM_MAX, &v, err, errlen) == -1)
		return -1;
	cmd->index = (long)v;
	return at_end(l, err, errlen);
}

static int
show(struct lex *l, struct ctlcmd *cmd, char *err, size_t errlen)
{
	if (word_is(l, "stats"))
		cmd->op = CTL_SHOW_STATS;
	else if (word_is(l, "conns"))
		cmd->op = CTL_SHOW_CONNS;
	else if (word_is(l, "filters"))
		cmd->op = CTL_SHOW_FILTERS;
	else if (word_is(l, "held"))
		cmd->op = CTL_SHOW_HELD;
	else {
		snprintf(err, errlen, "show what? (stats, conns, filters or "
		    "held)");
		return -1;
	}
	return at_end(l, err, errlen);
}

static int
add(struct lex *l, struct ctlcmd *cmd, char *err, size_t errlen)
{
	uint64_t v;

	if (!word_is(l, "filter")) {
		snprintf(err, errlen, "expected 'filter ROUTE SPEC'");
		return -1;
	}
	if (number(l, "ROUTE", NUM_MAX, &v, err, errlen) == -1)
		return -1;
	cmd->route = (long)v;
	skip_sp(l);
	while (l->n > 0 && is_sp(l->p[l->n - 1]))
		l->n--;
	if (l->n == 0) {
		snprintf(err, errlen, "missing filter SPEC");
		return -1;
	}
	cmd->spec = l->p;
	cmd->speclen = l->n;
	cmd->op = CTL_ADD_FILTER;
	return 0;
}

static int
decide(struct lex *l, struct ctlcmd *cmd, enum ctl_op op, uint8_t *hex,
    size_t cap, char *err, size_t errlen)
{
	if (number(l, "ID", ID_MAX, &cmd->id, err, errlen) == -1)
		return -1;
	cmd->op = op;
	if (op == CTL_REPLACE || op == CTL_ANSWER)
		return hex_rest(l, hex, cap, &cmd->hexlen, err, errlen);
	return at_end(l, err, errlen);
}

int
ctl_parse(const char *line, size_t n, struct ctlcmd *cmd, uint8_t *hex,
    size_t cap, char *err, size_t errlen)
{
	struct lex l = { line, n };
	const char *w;

	memset(cmd, 0, sizeof(*cmd));
	if (memchr(line, '\0', n) != NULL) {
		snprintf(err, errlen, "a NUL byte in the command");
		return -1;
	}
	skip_sp(&l);
	if (l.n == 0)
		return 0;
	if (word_is(&l, "help")) {
		cmd->op = CTL_HELP;
		return at_end(&l, err, errlen);
	}
	if (word_is(&l, "show"))
		return show(&l, cmd, err, errlen);
	if (word_is(&l, "kill")) {
		if (word_is(&l, "all")) {
			cmd->op = CTL_KILL_ALL;
			return at_end(&l, err, errlen);
		}
		if (!word_is(&l, "conn")) {
			snprintf(err, errlen, "expected 'kill conn ID' or "
			    "'kill all'");
			return -1;
		}
		return decide(&l, cmd, CTL_KILL_CONN, hex, cap, err, errlen);
	}
	if (word_is(&l, "add"))
		return add(&l, cmd, err, errlen);
	if (word_is(&l, "del")) {
		cmd->op = CTL_DEL_FILTER;
		return route_index(&l, cmd, err, errlen);
	}
	if (word_is(&l, "enable")) {
		cmd->op = CTL_ENABLE_FILTER;
		return route_index(&l, cmd, err, errlen);
	}
	if (word_is(&l, "disable")) {
		cmd->op = CTL_DISABLE_FILTER;
		return route_index(&l, cmd, err, errlen);
	}
	if (word_is(&l, "forward"))
		return decide(&l, cmd, CTL_FORWARD, hex, cap, err, errlen);
	if (word_is(&l, "drop"))
		return decide(&l, cmd, CTL_DROP, hex, cap, err, errlen);
	if (word_is(&l, "replace"))
		return decide(&l, cmd, CTL_REPLACE, hex, cap, err, errlen);
	if (word_is(&l, "answer"))
		return decide(&l, cmd, CTL_ANSWER, hex, cap, err, errlen);
	(void)word(&l, &w);
	snprintf(err, errlen, "unknown command '%.*s' (try help)",
	    (int)(l.p - w > 32 ? 32 : l.p - w), w);
	return -1;
}
