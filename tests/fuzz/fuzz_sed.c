/*
 * fuzz_sed.c - libFuzzer harness for filter specs (filter.c) and above all
 * the s/// expression parser and its stream-wise matcher (taps/replace.c).
 *
 * Input: a filter spec, a NUL byte, then stream bytes.  The stream is cut
 * into chunks whose sizes come from the stream itself, fed through the
 * filter, flushed by "timer" once and at EOF.  For a literal regex without
 * g, the result must equal a one-shot replacement of the whole stream.
 */
#include <stdlib.h>
#include <string.h>

#include "../../tproxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct buf got;

static int
alnum_only(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' &&
		    s[i] <= '9')))
			return 0;
	return 1;
}

/*
 * For "s/LIT/REP/" or "s/LIT/REP/g" with LIT and REP plain lowercase
 * letters and digits, returns 1 and the parts; the stream result must then
 * equal a one-shot replacement.
 */
static int
literal_spec(const char *spec, const char **lit, size_t *ll, const char **rep,
    size_t *rl, int *global)
{
	const char *a, *b;

	if (strncmp(spec, "s/", 2) != 0 || (a = strchr(spec + 2, '/')) == NULL ||
	    (b = strchr(a + 1, '/')) == NULL)
		return 0;
	*lit = spec + 2;
	*ll = (size_t)(a - spec - 2);
	*rep = a + 1;
	*rl = (size_t)(b - a - 1);
	*global = strcmp(b + 1, "g") == 0;
	if (!*global && b[1] != '\0')
		return 0;
	return *ll > 0 && alnum_only(*lit, *ll) && alnum_only(*rep, *rl);
}

static void
check_literal(const uint8_t *in, size_t n, const char *lit, size_t ll,
    const char *rep, size_t rl, int global)
{
	struct buf want = { 0 };
	size_t i = 0;
	int done = 0;

	while (i < n) {
		if (!done && i + ll <= n && memcmp(in + i, lit, ll) == 0) {
			if (buf_append(&want, rep, rl) == -1)
				abort();
			i += ll;
			done = !global;
			continue;
		}
		if (buf_append(&want, in + i, 1) == -1)
			abort();
		i++;
	}
	if (buf_pending(&want) != buf_pending(&got) || (buf_pending(&want) &&
	    memcmp(want.data + want.off, got.data + got.off,
	    buf_pending(&got)) != 0))
		abort();	/* stream result differs from one-shot */
	buf_free(&want);
}

static void
collect(const struct chunk *ch)
{
	if (ch->n > 0 && buf_append(&got, ch->p, ch->n) == -1)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	char *spec, err[ERRLEN];
	struct tap t;
	struct flow f;
	struct tapctx x;
	struct chunk ch;
	size_t sl, off, i = 0, ll = 0, rl = 0;
	const char *lit = NULL, *rep = NULL;
	int literal, global = 0;

	if (nul == NULL || nul == data)
		return 0;
	sl = (size_t)(nul - data);
	if ((spec = malloc(sl + 1)) == NULL)
		return 0;
	memcpy(spec, data, sl);
	spec[sl] = '\0';
	if (tap_parse(spec, 0, &t, err, sizeof(err)) != 0) {
		tap_free(&t);
		free(spec);
		return 0;
	}
	literal = literal_spec(spec, &lit, &ll, &rep, &rl, &global);
	if (strcmp(t.ops->name, "s") == 0) {
		memset(&f, 0, sizeof(f));
		memset(&x, 0, sizeof(x));
		x.flow = &f;
		(void)t.ops->open(&t, &x);
		for (off = sl + 1; off < size; i++) {
			size_t n = 1 + data[off] % 97;

			if (n > size - off)
				n = size - off;
			ch.p = data + off;
			ch.n = n;
			if (t.ops->chunk(&t, &x, &ch) == V_PASS)
				collect(&ch);
			off += n;
			ch.n = 0;
			if (!literal && i == 3 && t.ops->tick(&t, &x, &ch) ==
			    V_PASS)
				collect(&ch);
		}
		if (t.ops->flush(&t, &x, &ch))
			collect(&ch);
		if (literal)
			check_literal(nul + 1, size - sl - 1, lit, ll, rep, rl,
			    global);
		t.ops->close(&t, x.st);
		buf_free(&got);
	}
	tap_free(&t);
	free(spec);
	return 0;
}
