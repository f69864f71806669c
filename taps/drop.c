/*
 * taps/drop.c - "drop[:REGEX]": discard chunks (only those matching REGEX
 * when given); the connection stays open.
 */
#include <stdio.h>

#include "../tap.h"

static int
drop_parse(struct tap *t, const char *arg, char *err, size_t len)
{

	if (arg == NULL)
		return 0;
	if (*arg == '\0') {
		snprintf(err, len, "drop: empty regex (use plain 'drop' to "
		    "drop everything)");
		return -1;
	}
	t->conf = re_compile(arg, 0, err, len);
	return t->conf ? 0 : -1;
}

static enum verdict
drop_chunk(const struct tap *t, struct tapctx *x, struct chunk *ch)
{
	(void)x;
	if (t->conf == NULL || re_search(t->conf, ch->p, ch->n))
		return V_DROP;
	return V_PASS;
}

static void
drop_free(struct tap *t)
{
	re_free(t->conf);
	t->conf = NULL;
}

const struct tap_ops tap_drop = {
	.name = "drop",
	.usage = "drop[:REGEX]",
	.takes_arg = 1,
	.parse = drop_parse,
	.chunk = drop_chunk,
	.free = drop_free,
};
