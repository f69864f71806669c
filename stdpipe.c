/*
 * stdpipe.c - the stdio (or "-") listen address.  Standard input and output
 * are two descriptors that may be pipes, terminals, regular files or
 * sockets: they cannot be shut down, spliced to or polled alike.  So they
 * are not a side of the stream transport: a small pump moves bytes between
 * them and one end of a socketpair, and the other end is accepted as an
 * ordinary Unix stream connection, with its chain, back-pressure and
 * half-close.  Standard input's end is a shutdown(SHUT_WR) of the pair;
 * the pair's end is the end of standard output (it is replaced by
 * /dev/null, so the reader downstream sees EOF).
 *
 * A pipe or a terminal is read and written through a descriptor of our own
 * opened non-blocking from /proc/self/fd (the shell's shared one keeps its
 * flags); a socket gets O_NONBLOCK, put back at the end; a regular file
 * never waits (the loop calls it always ready).  Observations go to
 * standard error meanwhile (out.c), since standard output carries data.
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

#include "filter.h"
#include "loop.h"
#include "opts.h"
#include "out.h"
#include "route.h"
#include "stdpipe.h"
#include "stream.h"

#define PUMP_BUF	(64 * 1024)

/* One direction: from fd `from` into buf, then out to `to`. */
struct pump {
	int		 from, to;
	int		 fslot, tslot;	/* loop slots (-1: none) */
	unsigned char	 buf[PUMP_BUF];
	size_t		 off, len;
	int		 eof;		/* from is done */
	int		 done;		/* ... and everything went out */
};

struct stdio {
	struct pump	 in;		/* stdin -> pair */
	struct pump	 out;		/* pair -> stdout */
	int		 pair;		/* our end of the socketpair */
	int		 pslot;
	int		 fd[2];		/* what we read/write for fd 0/1 */
	int		 flags[2];	/* a socket's flags to restore; -1 */
	int		 started;
};

static struct stdio	 io = { .pair = -1, .pslot = -1, .fd = { -1, -1 },
			    .flags = { -1, -1 } };

static void pump_update(void);

static int	 stdio_used;	/* a route listens on stdio */

/* ------------------------------------------------------------ checks */

void
stdio_routes_check(void)
{
	const struct route *own = NULL;
	size_t i, j;

	for (i = 0; i < nroutes; i++) {
		if (routes[i].listen.type != A_STDIO)
			continue;
		if (own != NULL)
			usage_error("%s: stdio can be used by one route only",
			    routes[i].lspec);
		own = &routes[i];
	}
	if (own == NULL)
		return;
	for (i = 0; i < nroutes; i++)
		for (j = 0; j < routes[i].ntaps; j++) {
			const struct tap *t = &routes[i].taps[j];

			if (tap_writes_stdout(t))
				usage_error("%s: standard output carries the "
				    "data of stdio; '%s' cannot write there "
				    "too", own->lspec, t->spec);
			/* its keys would be read as data, and eaten */
			if (strcmp(t->ops->name, "inspect") == 0 &&
			    opt.control == NULL)
				usage_error("%s: standard input carries the "
				    "data of stdio; '%s' needs --control=PATH "
				    "to be answered", own->lspec, t->spec);
		}
	stdio_used = 1;
	out_to_stderr();
}

int
stdio_in_use(void)
{
	return stdio_used;
}

/* ------------------------------------------------------------ descriptors */

/*
 * Our descriptor for standard descriptor n (0 or 1): a non-blocking one of
 * our own for a pipe or a terminal, the same one otherwise.  Returns -1
 * when n is not open.
 */
static int
std_open(int n)
{
	struct stat st;
	char path[32];
	int fd, fl;

	if (fstat(n, &st) == -1)
		return -1;
	if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", n);
		fd = open(path, (n == 0 ? O_RDONLY : O_WRONLY) | O_NONBLOCK |
		    O_CLOEXEC | O_NOCTTY);
		if (fd >= 0)
			return fd;
	}
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
		return n;
	/* a socket (or no /proc): our flag on the shared descriptor */
	if ((fl = fcntl(n, F_GETFL)) != -1 && !(fl & O_NONBLOCK)) {
		io.flags[n] = fl;
		(void)fcntl(n, F_SETFL, fl | O_NONBLOCK);
	}
	return n;
}

/* Standard output is finished: its reader gets EOF now, not at our exit. */
static void
stdout_finish(void)
{
	int null;

	if (io.fd[1] > STDERR_FILENO)
		close(io.fd[1]);
	if (io.fd[1] == STDOUT_FILENO && io.flags[1] != -1)
		(void)fcntl(STDOUT_FILENO, F_SETFL, io.flags[1]);
	io.flags[1] = -1;
	io.fd[1] = -1;
	if ((null = open("/dev/null", O_WRONLY | O_CLOEXEC)) >= 0) {
		(void)dup2(null, STDOUT_FILENO);
		close(null);
	}
}

/* ------------------------------------------------------------ the pump */

/* Reads into p->buf when it is empty; an end or an error ends from. */
static void
pump_read(struct pump *p)
{
	ssize_t n;

	if (p->eof || p->len > 0)
		return;
	n = read(p->from, p->buf, sizeof(p->buf));
	if (n > 0) {
		p->off = 0;
		p->len = (size_t)n;
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR))
		p->eof = 1;
}

/* Writes what p holds; a dead reader discards the rest. */
static void
pump_write(struct pump *p)
{
	ssize_t n;

	while (p->len > 0) {
		if (p->to == io.pair)
			n = send(p->to, p->buf + p->off, p->len, MSG_NOSIGNAL);
		else
			n = write(p->to, p->buf + p->off, p->len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {		/* the reader is gone */
			p->len = 0;
			if (p->to == io.pair)
				p->eof = 1;	/* the connection is over */
			else
				p->to = -1;
			break;
		}
		p->off += (size_t)n;
		p->len -= (size_t)n;
	}
}

/* Finishes a direction whose source is done and whose bytes went out. */
static void
pump_finish(void)
{
	if (io.in.eof && io.in.len == 0 && !io.in.done) {
		io.in.done = 1;
		(void)shutdown(io.pair, SHUT_WR);
	}
	if (io.out.eof && io.out.len == 0 && !io.out.done) {
		io.out.done = 1;
		stdout_finish();
		if (io.out.tslot >= 0)
			loop_del(&io.out.tslot);
	}
	if (io.in.done && io.in.fslot >= 0)
		loop_del(&io.in.fslot);
}

static void
pump_io(void *arg, int revents)
{
	(void)arg;
	(void)revents;
	pump_read(&io.in);
	pump_write(&io.in);
	pump_read(&io.out);
	if (io.out.to < 0)
		io.out.len = 0;		/* stdout's reader went away */
	pump_write(&io.out);
	pump_finish();
	pump_update();
}

static void
pump_update(void)
{
	short pev = 0;

	if (io.in.fslot >= 0)
		loop_set(io.in.fslot, !io.in.eof && io.in.len == 0 ? POLLIN :
		    0);
	if (io.out.tslot >= 0)
		loop_set(io.out.tslot, io.out.len > 0 ? POLLOUT : 0);
	if (io.pslot < 0)
		return;
	if (!io.out.eof && io.out.len == 0)
		pev |= POLLIN;
	if (io.in.len > 0)
		pev |= POLLOUT;
	loop_set(io.pslot, pev);
}

/* ------------------------------------------------------------ life */

void
stdio_start(void)
{
	struct route *r = NULL;
	struct sockname peer;
	struct sockaddr_un *su = (struct sockaddr_un *)&peer.ss;
	int sv[2];
	size_t i;

	for (i = 0; i < nroutes; i++)
		if (routes[i].listen.type == A_STDIO)
			r = &routes[i];
	if (r == NULL)
		return;
	io.started = 1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) == -1) {
		diag_err("tproxy: stdio: socketpair: %s", strerror(errno));
		exit(1);
	}
	io.pair = sv[0];
	io.fd[0] = std_open(STDIN_FILENO);
	io.fd[1] = std_open(STDOUT_FILENO);
	io.in.from = io.fd[0];
	io.in.to = sv[0];
	io.out.from = sv[0];
	io.out.to = io.fd[1];
	io.in.fslot = io.in.tslot = io.out.fslot = io.out.tslot = -1;
	if (io.fd[0] < 0)
		io.in.eof = 1;
	if ((io.fd[0] >= 0 && loop_add(io.fd[0], POLLIN, pump_io, NULL,
	    &io.in.fslot) == -1) || (io.fd[1] >= 0 && loop_add(io.fd[1], 0,
	    pump_io, NULL, &io.out.tslot) == -1) ||
	    loop_add(sv[0], POLLIN, pump_io, NULL, &io.pslot) == -1) {
		diag_err("tproxy: stdio: out of memory");
		exit(1);
	}
	memset(&peer, 0, sizeof(peer));
	su->sun_family = AF_UNIX;
	strcpy(su->sun_path, "stdio");
	peer.len = (socklen_t)sizeof(*su);
	(void)stream_accept(r, sv[1], &peer);
	pump_finish();
	pump_update();
}

/*
 * The connection may have ended while standard input has nothing to say
 * (the upstream closed, a filter reset it): the pair's hang-up tells, and
 * the rest of standard input is not waited for.
 */
int
stdio_done(void)
{
	struct pollfd p;

	if (!io.started)
		return 0;
	if (io.out.done && !io.in.done && io.in.len == 0) {
		p.fd = io.pair;
		p.events = 0;
		if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR))) {
			io.in.eof = 1;
			pump_finish();
		}
	}
	return io.in.done && io.out.done;
}

void
stdio_end(void)
{
	if (!io.started)
		return;
	if (io.in.fslot >= 0)
		loop_del(&io.in.fslot);
	if (io.out.tslot >= 0)
		loop_del(&io.out.tslot);
	if (io.pslot >= 0)
		loop_del(&io.pslot);
	if (io.fd[0] > STDERR_FILENO)
		close(io.fd[0]);
	if (io.fd[0] == STDIN_FILENO && io.flags[0] != -1)
		(void)fcntl(STDIN_FILENO, F_SETFL, io.flags[0]);
	if (io.fd[1] == STDOUT_FILENO && io.flags[1] != -1)
		(void)fcntl(STDOUT_FILENO, F_SETFL, io.flags[1]);
	else if (io.fd[1] > STDERR_FILENO)
		close(io.fd[1]);
	if (io.pair >= 0)
		close(io.pair);
	io.started = 0;
}
