/*
 * taps/hexdump.c - "hexdump": each chunk in the layout socat users know from
 * `socat -v -x`: a header with the direction, the time, the length and the
 * chunk's stream offsets, 16 bytes a line with an ASCII column, and "--"
 * after the chunk.  Colour only when standard output is a terminal.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "../event.h"
#include "../opts.h"
#include "../out.h"
#include "../tap.h"

static void
hexdump_line(const uint8_t *p, size_t n)
{
	char line[16 * 3 + 2 + 16 + 2], *o = line;
	static const char hx[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < 16; i++) {
		*o++ = ' ';
		*o++ = i < n ? hx[p[i] >> 4] : ' ';
		*o++ = i < n ? hx[p[i] & 15] : ' ';
	}
	*o++ = ' ';
	*o++ = ' ';
	for (i = 0; i < n; i++)
		*o++ = isprint(p[i]) ? (char)p[i] : '.';
	*o++ = '\n';
	out_write(line, (size_t)(o - line));
}

static enum verdict
hexdump_chunk(const struct tap *t, struct tapctx *x, struct chunk *ch)
{
	uint64_t o = x->off;
	char ts[40];
	size_t i;
	int col = out_color();

	(void)t;
	if (opt.json) {
		ev_data(x->flow, x->dir, ch->n, o, ch->p);
		return V_PASS;
	}
	out_time(ts, sizeof(ts), 1);
	if (col)
		out_printf("%s", x->dir == C2S ? "\033[32m" : "\033[36m");
	out_printf("%c %s  length=%zu from=%llu to=%llu\n",
	    x->dir == C2S ? '>' : '<', ts, ch->n, (unsigned long long)o,
	    (unsigned long long)(o + ch->n - 1));
	for (i = 0; i < ch->n; i += 16)
		hexdump_line(ch->p + i, ch->n - i < 16 ? ch->n - i : 16);
	out_printf("--%s\n", col ? "\033[0m" : "");
	return V_PASS;
}

const struct tap_ops tap_hexdump = {
	.name = "hexdump",
	.usage = "hexdump",
	.observes = 1,
	.chunk = hexdump_chunk,
};
