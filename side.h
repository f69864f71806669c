/*
 * side.h - one socket of a connection: its output buffer, its splice pipe,
 * its TLS, and how far each direction has got (EOF read, FIN sent).
 */
#ifndef SIDE_H
#define SIDE_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "tls.h"

struct side {
	int		 fd;
	int		 slot;
	struct buf	 out;		/* bytes waiting to be written to fd */
	int		 pipefd[2];	/* splice pipe toward this side */
	size_t		 inpipe;	/* bytes in that pipe */
	unsigned	 rd_eof:1;	/* read returned 0 */
	unsigned	 wr_shut:1;	/* we shut down writing */
	unsigned	 want_shut:1;	/* shut down writing once out drains */
	unsigned	 cut:1;		/* ...without close_notify (TLS) */
	unsigned	 splice:1;	/* reads from this side go through a pipe */
	unsigned	 is_server:1;
	struct tls	 tls;
};

void	 side_init(struct side *s, int is_server) __attribute__((nonnull));
/* Bytes waiting to go to s (buffer and pipe). */
size_t	 side_pending(const struct side *s) __attribute__((nonnull));
/* Writes p now: the count, -1 to wait, -2 on error (why). */
ssize_t	 side_raw_write(struct side *s, const uint8_t *p, size_t n, char *why,
	    size_t len) __attribute__((nonnull));
/*
 * Writes what waits, then, if asked, close_notify (unless cut) and FIN: 0,
 * or -1 on error (why).
 */
int	 side_flush(struct side *s, char *why, size_t len)
	    __attribute__((nonnull));
/* Reads: the count, 0 at EOF, -1 to wait, -2 on error (why). */
ssize_t	 side_read(struct side *s, uint8_t *buf, size_t n, char *why,
	    size_t len) __attribute__((nonnull));
/*
 * Moves bytes from s into dst's pipe: the count, 0 at EOF, -1 to wait, -2
 * on error (why), -3 when splice() cannot serve this pair (read instead).
 */
ssize_t	 side_splice(struct side *s, struct side *dst, char *why, size_t len)
	    __attribute__((nonnull));
void	 side_close(struct side *s, int reset) __attribute__((nonnull));

#endif /* SIDE_H */
