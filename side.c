/*
 * side.c - one socket of a connection: reads, writes through TLS or not,
 * splice() through pooled pipes, FIN once the output drains, close with or
 * without a reset.  Nothing here knows the other side or the filters.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"
#include "side.h"

#define PIPE_MAX	256		/* pipes in use or pooled */
#define PIPE_BYTES	(256 * 1024)

static int	 pool[PIPE_MAX][2];
static int	 npool, npipes;

static const char *
who(const struct side *s)
{
	return s->is_server ? "server" : "client";
}

void
side_init(struct side *s, int is_server)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->slot = -1;
	s->pipefd[0] = s->pipefd[1] = -1;
	s->is_server = is_server;
}

size_t
side_pending(const struct side *s)
{
	return buf_pending(&s->out) + s->inpipe;
}

/* ------------------------------------------------------------ pipes */

static int
pipe_get(struct side *s)
{
	if (npool > 0) {
		npool--;
		s->pipefd[0] = pool[npool][0];
		s->pipefd[1] = pool[npool][1];
		return 0;
	}
	if (npipes >= PIPE_MAX || pipe2(s->pipefd, O_NONBLOCK | O_CLOEXEC))
		return -1;
	/* a bigger pipe moves more per splice(), up to the system's limit */
	(void)fcntl(s->pipefd[1], F_SETPIPE_SZ, PIPE_BYTES);
	npipes++;
	return 0;
}

/* Returns the side's pipe to the pool; one with bytes in it is closed. */
static void
pipe_put(struct side *s)
{
	if (s->pipefd[0] < 0)
		return;
	if (s->inpipe == 0 && npool < PIPE_MAX) {
		pool[npool][0] = s->pipefd[0];
		pool[npool][1] = s->pipefd[1];
		npool++;
	} else {
		close(s->pipefd[0]);
		close(s->pipefd[1]);
		npipes--;
	}
	s->pipefd[0] = s->pipefd[1] = -1;
	s->inpipe = 0;
}

/* ------------------------------------------------------------ I/O */

ssize_t
side_raw_write(struct side *s, const uint8_t *p, size_t n, char *why,
    size_t len)
{
	char e[ERRLEN / 2];
	ssize_t w;

	if (s->tls.ssl != NULL) {
		w = tls_write(&s->tls, p, n, e, sizeof(e));
		if (w == -2)
			snprintf(why, len, "write to %s: %s", who(s), e);
		return w;
	}
	do
		w = write(s->fd, p, n);
	while (w < 0 && errno == EINTR);
	if (w >= 0)
		return w;
	if (errno == EAGAIN)
		return -1;
	snprintf(why, len, "write to %s: %s", who(s), strerror(errno));
	return -2;
}

int
side_flush(struct side *s, char *why, size_t len)
{
	ssize_t n;

	while (buf_pending(&s->out) > 0) {
		n = side_raw_write(s, s->out.data + s->out.off,
		    buf_pending(&s->out), why, len);
		if (n == -1)
			break;
		if (n == -2)
			return -1;
		buf_consume(&s->out, (size_t)n);
	}
	while (s->inpipe > 0 && buf_pending(&s->out) == 0) {
		n = splice(s->pipefd[0], NULL, s->fd, NULL, s->inpipe,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			snprintf(why, len, "write to %s: %s", who(s),
			    strerror(errno));
			return -1;
		}
		s->inpipe -= (size_t)n;
	}
	if (s->inpipe == 0)
		pipe_put(s);
	if (s->want_shut && !s->wr_shut && side_pending(s) == 0) {
		if (!s->cut)
			tls_shutdown(&s->tls);
		(void)shutdown(s->fd, SHUT_WR);
		s->wr_shut = 1;
	}
	return 0;
}

static ssize_t
read_error(struct side *s, int err, char *why, size_t len)
{
	if (err == EAGAIN || err == EINTR)
		return -1;
	if (err == ECONNRESET)		/* passed on as a reset */
		snprintf(why, len, "reset by %s", who(s));
	else
		snprintf(why, len, "read from %s: %s", who(s), strerror(err));
	return -2;
}

ssize_t
side_read(struct side *s, uint8_t *buf, size_t n, char *why, size_t len)
{
	char e[ERRLEN / 2];
	ssize_t r;

	if (s->tls.ssl != NULL) {
		r = tls_read(&s->tls, buf, n, e, sizeof(e));
		if (r == -2)
			snprintf(why, len, "read from %s: %s", who(s), e);
		return r;
	}
	r = read(s->fd, buf, n);
	return r >= 0 ? r : read_error(s, errno, why, len);
}

ssize_t
side_splice(struct side *s, struct side *dst, char *why, size_t len)
{
	ssize_t n;

	if (dst->pipefd[0] < 0 && pipe_get(dst) == -1)
		return -3;
	n = splice(s->fd, NULL, dst->pipefd[1], NULL, PIPE_BYTES,
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		dst->inpipe += (size_t)n;
		return n;
	}
	if (dst->inpipe == 0)
		pipe_put(dst);
	if (n == 0)
		return 0;
	if (errno == EINVAL) {
		s->splice = 0;
		return -3;
	}
	return read_error(s, errno, why, len);
}

void
side_close(struct side *s, int reset)
{
	struct linger lg = { 1, 0 };

	tls_free(&s->tls);
	if (s->fd >= 0) {
		loop_del_closing(&s->slot);
		if (reset)
			(void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg,
			    sizeof(lg));
		close(s->fd);
		s->fd = -1;
	}
	pipe_put(s);
	buf_free(&s->out);
}
