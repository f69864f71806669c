/*
 * taps/answer.c - "answer:TEXT" or "answer:@FILE": send TEXT back to the
 * sender of a chunk instead of forwarding it (only of chunks matching
 * match=REGEX when given).  TEXT takes C escapes; a file is sent as it is.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"

#define ANSWER_MAX	(1024 * 1024)

struct answer {
	char	*text;
	size_t	 len;
	void	*match;
};

static const char *const answer_keys[] = { "match", NULL };

static int
answer_file(struct answer *a, const char *path, char *err, size_t len)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL) {
		snprintf(err, len, "answer: cannot read '%s': %s", path,
		    strerror(errno));
		return -1;
	}
	a->text = malloc(ANSWER_MAX + 1);
	n = a->text ? fread(a->text, 1, ANSWER_MAX + 1, f) : 0;
	fclose(f);
	if (a->text == NULL || n > ANSWER_MAX) {
		snprintf(err, len, "answer: '%s' is larger than 1 MiB", path);
		return -1;
	}
	a->len = n;
	return 0;
}

static int
answer_parse(struct tap *t, const char *arg, char *err, size_t len)
{
	struct answer *a = calloc(1, sizeof(*a));
	char e[ERRLEN];
	ssize_t n;

	if (a == NULL)
		return -1;
	t->conf = a;
	if (arg[0] == '@')
		return answer_file(a, arg + 1, err, len);
	a->text = malloc(strlen(arg) + 1);
	if (a->text == NULL)
		return -1;
	n = esc_decode(arg, a->text, strlen(arg) + 1, e, sizeof(e));
	if (n < 0) {
		snprintf(err, len, "answer: %s", e);
		return -1;
	}
	if (n == 0) {
		snprintf(err, len, "answer: empty TEXT");
		return -1;
	}
	a->len = (size_t)n;
	return 0;
}

static int
answer_key(struct tap *t, const char *k, const char *v, char *err,
    size_t len)
{
	struct answer *a = t->conf;

	if (strcmp(k, "match") != 0)
		return 1;
	re_free(a->match);
	a->match = re_compile(v, 0, err, len);
	return a->match ? 0 : -1;
}

static enum verdict
answer_chunk(const struct tap *t, struct tapctx *x, struct chunk *ch)
{
	struct answer *a = t->conf;

	(void)x;
	if (a->match && !re_search(a->match, ch->p, ch->n))
		return V_PASS;
	ch->p = (const uint8_t *)a->text;
	ch->n = a->len;
	return V_ANSWER;
}

static void
answer_free(struct tap *t)
{
	struct answer *a = t->conf;

	if (a == NULL)
		return;
	re_free(a->match);
	free(a->text);
	free(a);
	t->conf = NULL;
}

const struct tap_ops tap_answer = {
	.name = "answer",
	.usage = "answer:TEXT|@FILE[,match=REGEX]",
	.takes_arg = 2,
	.keys = answer_keys,
	.parse = answer_parse,
	.key = answer_key,
	.chunk = answer_chunk,
	.free = answer_free,
};
