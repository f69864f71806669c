/*
 * buf.c - byte buffers: grown by doubling, slid down instead of grown when
 * the front has been consumed, freed as soon as they are empty.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n > b->cap) {
		size_t pend = b->len - b->off, ncap = b->cap ? b->cap : 4096;
		uint8_t *nd;

		if (b->off > 0) {	/* slide the pending bytes down */
			memmove(b->data, b->data + b->off, pend);
			b->off = 0;
			b->len = pend;
		}
		while (ncap < b->len + n)
			ncap *= 2;
		if (ncap > b->cap) {
			if ((nd = realloc(b->data, ncap)) == NULL)
				return -1;
			b->data = nd;
			b->cap = ncap;
		}
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

size_t
buf_pending(const struct buf *b)
{
	return b->len - b->off;
}

void
buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		buf_free(b);
}

void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}
