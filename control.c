/*
 * control.c - the control socket: listening, its clients, their bounded
 * line buffers and their replies.
 *
 * A client's lines are parsed (ctlcmd.c) and run (ctlrun.c) one at a time;
 * each reply is appended to the client's output buffer and written as the
 * socket takes it, never blocking the loop.  While a client has more than
 * CTL_OUT_HIGH bytes of replies unread, its further lines wait (it is not
 * read), so a client that never reads holds little memory and stalls
 * nothing.  A line longer than CTL_LINE_MAX closes that client.  After
 * the client's EOF, the lines it sent are answered and it is closed.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "control.h"
#include "ctlcmd.h"
#include "ctlrun.h"
#include "loop.h"
#include "out.h"

#define CTL_CLIENTS	64		/* at once; more wait in the backlog */
#define CTL_OUT_HIGH	(256 * 1024)	/* unread replies: stop reading */
#define CTL_READ	4096

struct client {
	int		 fd;
	int		 slot;
	struct buf	 in;		/* bytes of lines not yet run */
	struct buf	 out;		/* replies not yet written */
	unsigned	 eof:1;		/* the client is done sending */
	struct client	*next;
};

static int		 lfd = -1, lslot = -1;
static char		*lpath;
static struct client	*clients;
static size_t		 nclients;

static void client_io(void *arg, int revents);

static void
client_close(struct client *cl)
{
	struct client **pp;

	for (pp = &clients; *pp != cl; pp = &(*pp)->next)
		;
	*pp = cl->next;
	loop_del(&cl->slot);
	close(cl->fd);
	buf_free(&cl->in);
	buf_free(&cl->out);
	free(cl);
	if (nclients-- == CTL_CLIENTS && lslot >= 0)
		loop_set(lslot, POLLIN);
}

/* Runs one line. */
static void
client_line(struct client *cl, const char *line, size_t n)
{
	static uint8_t hex[CTL_LINE_MAX / 2 + 1];
	struct ctlcmd cmd;
	char err[ERRLEN];

	if (ctl_parse(line, n, &cmd, hex, sizeof(hex), err, sizeof(err)) == -1)
		ctl_error(&cl->out, err);
	else
		ctl_run(&cmd, hex, &cl->out);
}

/*
 * Runs the whole lines waiting (and, after EOF, the last one).  Returns
 * -1 when the client must go (a line over the limit).
 */
static int
client_lines(struct client *cl)
{
	while (buf_pending(&cl->in) > 0 &&
	    buf_pending(&cl->out) < CTL_OUT_HIGH) {
		const char *p = (const char *)cl->in.data + cl->in.off;
		size_t n = buf_pending(&cl->in);
		const char *nl = memchr(p, '\n', n);

		if (nl == NULL && n > CTL_LINE_MAX)
			return -1;
		if (nl == NULL && !cl->eof)
			return 0;
		if (nl != NULL && (size_t)(nl - p) > CTL_LINE_MAX)
			return -1;
		client_line(cl, p, nl ? (size_t)(nl - p) : n);
		buf_consume(&cl->in, nl ? (size_t)(nl - p) + 1 : n);
	}
	return 0;
}

/* Writes what the socket takes.  Returns -1 on an error. */
static int
client_write(struct client *cl)
{
	while (buf_pending(&cl->out) > 0) {
		ssize_t w = send(cl->fd, cl->out.data + cl->out.off,
		    buf_pending(&cl->out), MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		buf_consume(&cl->out, (size_t)w);
	}
	return 0;
}

/* Reads what is there.  Returns -1 on an error. */
static int
client_read(struct client *cl)
{
	uint8_t b[CTL_READ];
	ssize_t r;

	if (cl->eof || buf_pending(&cl->in) > CTL_LINE_MAX + 1)
		return 0;
	r = recv(cl->fd, b, sizeof(b), MSG_DONTWAIT);
	if (r == 0)
		cl->eof = 1;
	else if (r < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	else if (buf_append(&cl->in, b, (size_t)r) == -1)
		return -1;
	return 0;
}

/* What the client waits for: reading while replies are read, writing. */
static void
client_want(struct client *cl)
{
	short ev = 0;

	if (!cl->eof && buf_pending(&cl->out) < CTL_OUT_HIGH &&
	    buf_pending(&cl->in) <= CTL_LINE_MAX)
		ev |= POLLIN;
	if (buf_pending(&cl->out) > 0)
		ev |= POLLOUT;
	loop_set(cl->slot, ev);
}

static void
client_io(void *arg, int revents)
{
	struct client *cl = arg;

	if ((revents & (POLLIN | POLLHUP | POLLERR)) &&
	    client_read(cl) == -1)
		goto gone;
	if (client_lines(cl) == -1)
		goto gone;
	if (client_write(cl) == -1)
		goto gone;
	if (client_lines(cl) == -1)	/* room again: lines that waited */
		goto gone;
	if (client_write(cl) == -1)
		goto gone;
	if (cl->eof && buf_pending(&cl->out) == 0 &&
	    (buf_pending(&cl->in) == 0 || (revents & POLLERR)))
		goto gone;
	client_want(cl);
	return;
gone:
	client_close(cl);
}

static void
control_accept(void *arg, int revents)
{
	struct client *cl;
	int fd;

	(void)arg;
	(void)revents;
	if (nclients >= CTL_CLIENTS) {
		loop_set(lslot, 0);	/* the rest wait in the backlog */
		return;
	}
	if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) ==
	    -1)
		return;
	if ((cl = calloc(1, sizeof(*cl))) == NULL) {
		close(fd);
		return;
	}
	cl->fd = fd;
	cl->slot = -1;
	if (loop_add(fd, POLLIN, client_io, cl, &cl->slot) == -1) {
		close(fd);
		free(cl);
		return;
	}
	cl->next = clients;
	clients = cl;
	if (++nclients >= CTL_CLIENTS)
		loop_set(lslot, 0);
}

/* Returns 1 if a process answers on the socket at path. */
static int
socket_live(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), live;

	if (fd == -1)
		return 0;
	live = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return live;
}

void
control_open(const char *path, uid_t uid, gid_t gid)
{
	struct sockaddr_un sun;
	struct stat sb;
	mode_t mask;
	int rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		diag_err("tproxy: --control: path too long: %s", path);
		exit(1);
	}
	memcpy(sun.sun_path, path, strlen(path));
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			diag_err("tproxy: --control: %s exists and is not a "
			    "socket (left alone)", path);
			exit(1);
		}
		if (socket_live(&sun)) {
			diag_err("tproxy: --control: %s is in use by another "
			    "process", path);
			exit(1);
		}
		(void)unlink(path);	/* stale: replaced */
	}
	if ((lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		diag_err("tproxy: --control: socket: %s", strerror(errno));
		exit(1);
	}
	mask = umask(0177);
	rc = bind(lfd, (struct sockaddr *)&sun, sizeof(sun));
	umask(mask);
	if (rc == -1 || chmod(path, 0600) == -1 ||
	    (uid != (uid_t)-1 && chown(path, uid, gid) == -1) ||
	    listen(lfd, 16) == -1) {
		diag_err("tproxy: --control: %s: %s", path, strerror(errno));
		if (rc == 0)
			(void)unlink(path);
		exit(1);
	}
	if ((lpath = strdup(path)) == NULL ||
	    loop_add(lfd, POLLIN, control_accept, NULL, &lslot) == -1) {
		diag_err("tproxy: out of memory");
		(void)unlink(path);
		exit(1);
	}
}

void
control_close(void)
{
	while (clients != NULL)
		client_close(clients);
	if (lfd == -1)
		return;
	loop_del(&lslot);
	close(lfd);
	lfd = -1;
	(void)unlink(lpath);
	free(lpath);
	lpath = NULL;
}

void
control_stats_stderr(void)
{
	struct buf b = { NULL, 0, 0, 0 };

	ctl_stats(&b);
	if (buf_pending(&b) > 0)
		(void)!write(STDERR_FILENO, b.data + b.off, buf_pending(&b));
	buf_free(&b);
}
