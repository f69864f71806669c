/*
 * buf.h - a byte buffer whose storage exists only while bytes wait in it.
 */
#ifndef BUF_H
#define BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t		*data;
	size_t		 off;		/* first unsent byte */
	size_t		 len;		/* end of bytes */
	size_t		 cap;
};

/* Appends n bytes; returns 0, or -1 when out of memory (nothing added). */
int	 buf_append(struct buf *b, const void *p, size_t n)
	    __attribute__((nonnull(1), warn_unused_result));
size_t	 buf_pending(const struct buf *b) __attribute__((nonnull));
/* Drops n bytes from the front; frees the storage once it is empty. */
void	 buf_consume(struct buf *b, size_t n) __attribute__((nonnull));
void	 buf_free(struct buf *b) __attribute__((nonnull));

#endif /* BUF_H */
