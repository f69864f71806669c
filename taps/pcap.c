/*
 * taps/pcap.c - "pcap:FILE", "pcap:-", "pcap:DIR/": what passes this
 * point of the chain, as packets that Wireshark and tshark read (pcapw.c
 * makes them up around the bytes: a TCP handshake, sequence numbers, a FIN
 * or RST at the end; a UDP packet per datagram), between the client's
 * address and the connection's original destination.
 *
 * Where records go:
 *  -      standard output, through out.c's bounded buffer that never
 *         blocks the loop; the connections are not read while its reader
 *         is behind (the filter observes).  Records are written at the end
 *         of the loop turn that made them, so a pipe into wireshark -k -i -
 *         shows them at once.
 *  FILE   one file for every connection of the routes that name it.  A
 *         regular file is written through a 64 KiB buffer (a long record
 *         goes straight out with writev), at least once a second and at
 *         each connection's end: a killed tproxy leaves the records up to
 *         the last second, each one whole.  A pipe or a device (a fifo
 *         that wireshark -k -i reads) gets each record at once, never
 *         waiting: what the reader cannot take yet waits (up to 4 MiB,
 *         then records are dropped and that is said once).
 *  DIR/   one file per connection, created in DIR (made when missing),
 *         named TIME-ID-CLIENT-DESTINATION.pcap, each record written at
 *         once (no buffer per connection).
 *
 * An existing FILE that is not empty is kept: start-up refuses it unless
 * overwrite=1, so running a command again never loses an earlier capture.
 * Files are opened at the first connection, with mode 0600 (they hold
 * decrypted traffic).  A file that cannot be opened or written (a full
 * disk) is reported once on stderr; the traffic goes on, uncaptured.
 *
 * The two directions of a connection share one state: the chain opens a
 * filter's two directions one after the other, so the second finds the
 * first in the filter's configuration.
 */
#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../loop.h"
#include "../pcapw.h"
#include "../tap.h"

#define FLUSH_MS	1000		/* a file's buffer waits no longer */
#define PIPE_RETRY_MS	100		/* a full pipe is tried again */
#define FILE_BUF	(64 * 1024)	/* a file's buffer is written then */
#define BIG_RECORD	(16 * 1024)	/* written without a copy */
#define PIPE_MAX	(4 * 1024 * 1024) /* waiting for a pipe's reader */

/* One output: standard output, a FILE, or a connection's file in DIR/. */
struct pout {
	struct pout	*next;		/* shared outputs, by path */
	char		*path;
	int		 refs;
	int		 fd;		/* -1: not open (yet) */
	unsigned	 is_stdout:1;
	unsigned	 pipe:1;	/* not a regular file: write at once */
	unsigned	 direct:1;	/* no buffer: each record at once */
	unsigned	 overwrite:1;
	unsigned	 failed:1;	/* capture stopped */
	unsigned	 said_drop:1;
	int		*said;		/* a failure was reported */
	int		 said_own;
	struct buf	 b;		/* records not written yet */
	uint64_t	 since;		/* when b got its oldest bytes */
};

struct pcap_conf {
	struct pout	*out;		/* "-" or FILE; NULL for DIR/ */
	char		*dir;		/* DIR/, with its slash */
	int		 overwrite;
	int		 said;		/* DIR/: a failure was reported */
	struct pconn	*last;		/* opened last: its other direction */
};

/* One connection, shared by its two directions. */
struct pconn {
	struct pcapw	*w;
	struct pout	*out;
	const struct flow *flow;
	uint64_t	 id;
	int		 refs;
};

static const char *const pcap_keys[] = { "overwrite", NULL };
static struct pout *outs;		/* the outputs "-" and FILE */

/* ------------------------------------------------------------ outputs */

static void
pout_fail(struct pout *po, const char *what, int err)
{
	po->failed = 1;
	buf_free(&po->b);
	if (*po->said)
		return;
	*po->said = 1;
	diag_err("tproxy: pcap:%s: %s: %s; the traffic goes on uncaptured",
	    po->path, what, strerror(err));
}

/*
 * Writes iov[0..n) whole; a pipe that is full may take less.  Returns the
 * bytes written, or -1 after a failure (reported).
 */
static ssize_t
pout_writev(struct pout *po, struct iovec *iov, int n)
{
	size_t done = 0;
	ssize_t w;

	while (n > 0) {
		if (iov->iov_len == 0) {
			iov++, n--;
			continue;
		}
		if ((w = writev(po->fd, iov, n)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && po->pipe)
				break;
			pout_fail(po, "write", errno);
			return -1;
		}
		if (w == 0) {
			pout_fail(po, "write", ENOSPC);
			return -1;
		}
		done += (size_t)w;
		for (; n > 0 && (size_t)w >= iov->iov_len; iov++, n--)
			w -= (ssize_t)iov->iov_len;
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return (ssize_t)done;
}

/* Writes what waits in the buffer (a full pipe keeps the rest). */
static void
pout_flush(struct pout *po)
{
	struct iovec v;
	ssize_t w;

	if (po->failed || po->fd < 0 || buf_pending(&po->b) == 0)
		return;
	v.iov_base = po->b.data + po->b.off;
	v.iov_len = buf_pending(&po->b);
	if ((w = pout_writev(po, &v, 1)) > 0)
		buf_consume(&po->b, (size_t)w);
}

/* Keeps a record in the buffer; returns -1 (reported) without memory. */
static int
pout_keep(struct pout *po, const uint8_t *hdr, size_t hl, const uint8_t *p,
    size_t n, uint64_t now)
{
	if (buf_pending(&po->b) == 0)
		po->since = now;
	if (buf_append(&po->b, hdr, hl) == -1 ||
	    (n > 0 && buf_append(&po->b, p, n) == -1)) {
		pout_fail(po, "buffer", ENOMEM);
		return -1;
	}
	return 0;
}

/* One record, hdr then p: written whole, or kept whole, or dropped. */
static void
pout_record(struct pout *po, const uint8_t *hdr, size_t hl, const uint8_t *p,
    size_t n)
{
	struct iovec v[3];
	size_t pend;
	uint64_t now;

	if (po->is_stdout) {
		out_write2(hdr, hl, p, n);
		return;
	}
	if (po->failed || po->fd < 0)
		return;
	pend = buf_pending(&po->b);
	now = now_ms();
	if (po->pipe) {
		if (pend + hl + n > PIPE_MAX) {
			if (!po->said_drop)
				diag_err("tproxy: pcap:%s: the reader is "
				    "behind; records are dropped", po->path);
			po->said_drop = 1;
			return;
		}
		if (pout_keep(po, hdr, hl, p, n, now) == 0)
			pout_flush(po);
		return;
	}
	if (!po->direct && n < BIG_RECORD && pend + hl + n <= FILE_BUF) {
		if (pout_keep(po, hdr, hl, p, n, now) == 0 &&
		    now - po->since >= FLUSH_MS)
			pout_flush(po);
		return;
	}
	v[0].iov_base = po->b.data ? po->b.data + po->b.off : NULL;
	v[0].iov_len = pend;
	v[1].iov_base = (void *)hdr;
	v[1].iov_len = hl;
	v[2].iov_base = (void *)p;
	v[2].iov_len = n;
	if (pout_writev(po, v, 3) >= 0)
		buf_free(&po->b);
}

/* When the output wants to be written again: 0 when nothing waits. */
static uint64_t
pout_due(const struct pout *po, uint64_t now)
{
	if (po->is_stdout || po->failed || buf_pending(&po->b) == 0)
		return 0;
	return po->pipe ? now + PIPE_RETRY_MS : po->since + FLUSH_MS;
}

/*
 * Opens path for records: a new file; an existing one only when empty,
 * not a regular file (a fifo, a device), or with overwrite.  Returns the
 * descriptor, or -1 with errno set (EEXIST: a file not empty).
 */
static int
file_open(const char *path, int overwrite, int *pipe)
{
	/* O_NONBLOCK: a fifo without a reader fails at once (ENXIO);
	   O_NOFOLLOW: decrypted traffic never goes where a link points */
	int fl = O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW, fd;
	struct stat st;

	if (overwrite)
		fd = open(path, fl | O_CREAT | O_TRUNC, 0600);
	else if ((fd = open(path, fl | O_CREAT | O_EXCL, 0600)) == -1 &&
	    errno == EEXIST)
		fd = open(path, fl);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1) {
		close(fd);
		return -1;
	}
	if (!overwrite && S_ISREG(st.st_mode) && st.st_size > 0) {
		close(fd);
		errno = EEXIST;
		return -1;
	}
	*pipe = !S_ISREG(st.st_mode);
	if (!*pipe)			/* a regular file never waits */
		(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

/* Opens a file output and writes its file header; returns 0 or -1. */
static int
pout_open(struct pout *po, const char *path)
{
	uint8_t fh[PCAPW_FILEHDR];
	int pipe = 0, e;

	if (po->is_stdout || po->fd >= 0)
		return 0;
	if (po->failed)
		return -1;
	if ((po->fd = file_open(path, po->overwrite, &pipe)) == -1) {
		e = errno;
		pout_fail(po, e == EEXIST ? "not empty (overwrite=1 replaces "
		    "it)" : e == ENXIO ? "no reader on the pipe" : "cannot "
		    "open", e);
		return -1;
	}
	po->pipe = pipe;
	pcapw_file_header(fh);
	if (pout_keep(po, fh, sizeof(fh), NULL, 0, now_ms()) == -1)
		return -1;
	pout_flush(po);
	return po->failed ? -1 : 0;
}

static void
pout_close(struct pout *po)
{
	pout_flush(po);
	if (po->fd >= 0)
		close(po->fd);
	po->fd = -1;
	buf_free(&po->b);
}

/* ------------------------------------------------------------ DIR/ */

/* Creates dir and its parents (mode 0700); returns 0 or -1 with errno. */
static int
mkdirs(const char *dir)
{
	char p[PATH_MAX], *s;

	if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) == -1 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	if (mkdir(p, 0700) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

/* An end for a file name: 127.0.0.1_41234, ::1_443, unix. */
static void
end_name(const struct flowaddr *fa, char *buf, size_t len)
{
	struct sockname name;
	const struct sockname *sn = flowaddr_get(fa, &name);
	char h[64], *s;

	sockname_host(sn, h, sizeof(h));
	if (sockname_port(sn) != 0 || sn->ss.ss_family == AF_INET ||
	    sn->ss.ss_family == AF_INET6)
		snprintf(buf, len, "%s_%u", h, sockname_port(sn));
	else
		snprintf(buf, len, "unix");
	for (s = buf; *s; s++)
		if (!(*s >= '0' && *s <= '9') && !(*s >= 'a' && *s <= 'z') &&
		    !(*s >= 'A' && *s <= 'Z') && *s != '.' && *s != ':' &&
		    *s != '_' && *s != '-')
			*s = '_';
}

/* The output of one connection in DIR/, or NULL (reported once). */
static struct pout *
dir_out(struct pcap_conf *pc, const struct flow *f)
{
	char path[PATH_MAX], ts[32], cl[ADDRSTR], ds[ADDRSTR];
	struct pout *po;
	struct tm tm;
	time_t now = time(NULL);

	if ((po = calloc(1, sizeof(*po))) == NULL)
		return NULL;
	po->fd = -1;
	po->direct = 1;
	po->overwrite = pc->overwrite != 0;
	po->said = &pc->said;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
	end_name(&f->client, cl, sizeof(cl));
	end_name(&f->dst, ds, sizeof(ds));
	snprintf(path, sizeof(path), "%s%s-%llu-%s-%s.pcap", pc->dir, ts,
	    (unsigned long long)f->id, cl, ds);
	po->path = strdup(path);
	if (po->path == NULL) {
		free(po);
		return NULL;
	}
	if (mkdirs(pc->dir) == -1) {
		po->path[strlen(pc->dir)] = '\0';	/* name the directory */
		pout_fail(po, "cannot create", errno);
	} else
		(void)pout_open(po, po->path);
	if (po->failed) {
		free(po->path);
		free(po);
		return NULL;
	}
	return po;
}

/* ------------------------------------------------------------ the filter */

static void
emit(void *arg, const uint8_t *hdr, size_t hl, const uint8_t *p, size_t n)
{
	pout_record(arg, hdr, hl, p, n);
}

static int
pcap_parse(struct tap *t, const char *arg, char *err, size_t len)
{
	struct pcap_conf *pc;

	if (arg[0] == '\0') {
		snprintf(err, len, "pcap: empty argument (expected FILE, - "
		    "for standard output, or DIR/)");
		return -1;
	}
	if ((pc = calloc(1, sizeof(*pc))) == NULL) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	t->conf = pc;
	if (arg[strlen(arg) - 1] == '/' && (pc->dir = strdup(arg)) == NULL) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	t->writes = pc->dir;
	if (pc->dir == NULL && (pc->out = calloc(1, sizeof(*pc->out))) != NULL)
		pc->out->path = strdup(arg);
	if (pc->dir == NULL && (pc->out == NULL || pc->out->path == NULL)) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	if (pc->out != NULL) {
		pc->out->fd = -1;
		pc->out->refs = 1;
		pc->out->said = &pc->out->said_own;
		pc->out->is_stdout = strcmp(arg, "-") == 0;
		t->writes = pc->out->path;
	}
	return 0;
}

static int
pcap_key(struct tap *t, const char *k, const char *v, char *err, size_t len)
{
	struct pcap_conf *pc = t->conf;

	if (strcmp(k, "overwrite") != 0)
		return 1;
	if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0) {
		snprintf(err, len, "pcap: bad overwrite '%s' (expected 0 or "
		    "1)", v);
		return -1;
	}
	pc->overwrite = v[0] == '1';
	return 0;
}

/* What is there already at path is fit for this filter: 0, or -1 + err. */
static int
pcap_path_check(const struct pcap_conf *pc, const char *path, char *err,
    size_t len)
{
	char p[PATH_MAX];
	struct stat st;

	/* DIR/ without its slash: a file of that name is not a directory */
	snprintf(p, sizeof(p), "%.*s", (int)(strlen(path) -
	    (pc->dir != NULL && strlen(path) > 1)), path);
	if (stat(p, &st) == -1)
		return 0;		/* made at the first connection */
	if (pc->dir != NULL && !S_ISDIR(st.st_mode)) {
		snprintf(err, len, "pcap: '%s' exists and is not a directory",
		    path);
		return -1;
	}
	if (pc->dir == NULL && S_ISDIR(st.st_mode)) {
		snprintf(err, len, "pcap: '%s' is a directory (pcap:%s/ "
		    "writes a file per connection in it)", path, path);
		return -1;
	}
	if (pc->dir == NULL && !pc->overwrite && S_ISREG(st.st_mode) &&
	    st.st_size > 0) {
		snprintf(err, len, "pcap: '%s' exists and is not empty "
		    "(overwrite=1 replaces it)", path);
		return -1;
	}
	return 0;
}

/* Shares an output with the filters of other routes that name it. */
static int
pcap_check(struct tap *t, char *err, size_t len)
{
	struct pcap_conf *pc = t->conf;
	struct pout *po;
	uint8_t fh[PCAPW_FILEHDR];

	if (pc->out != NULL && pc->out->is_stdout) {
		if (pc->overwrite) {
			snprintf(err, len, "pcap: overwrite= is for a FILE or "
			    "DIR/, not for standard output");
			return -1;
		}
		if (isatty(STDOUT_FILENO)) {
			snprintf(err, len, "pcap: standard output is a "
			    "terminal (pipe it: | wireshark -k -i -)");
			return -1;
		}
	}
	if (pc->dir != NULL)
		return pcap_path_check(pc, pc->dir, err, len);
	for (po = outs; po; po = po->next)
		if (strcmp(po->path, pc->out->path) == 0)
			break;
	if (po == NULL) {
		if (!pc->out->is_stdout &&
		    pcap_path_check(pc, pc->out->path, err, len) == -1)
			return -1;
		pc->out->overwrite = pc->overwrite != 0;
		pc->out->next = outs;
		outs = pc->out;
		if (pc->out->is_stdout) {	/* lost if start-up fails */
			pcapw_file_header(fh);
			out_write(fh, sizeof(fh));
		}
		return 0;
	}
	if (pc->overwrite != po->overwrite && !pc->out->is_stdout) {
		snprintf(err, len, "pcap: '%s' is named elsewhere %s "
		    "overwrite=1", po->path, po->overwrite ? "with" :
		    "without");
		return -1;
	}
	free(pc->out->path);
	free(pc->out);
	pc->out = po;
	po->refs++;
	t->writes = po->path;
	return 0;
}

static enum verdict
pcap_open(const struct tap *t, struct tapctx *x)
{
	struct pcap_conf *pc = t->conf;
	struct pconn *c = pc->last;
	const struct flow *f = x->flow;

	if (c != NULL && c->flow == f && c->id == f->id) {
		c->refs++;		/* the other direction */
		pc->last = NULL;
		x->st = c;
		return V_PASS;
	}
	pc->last = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return V_PASS;
	c->flow = f;
	c->id = f->id;
	c->refs = 1;
	if (pc->dir != NULL)
		c->out = dir_out(pc, f);
	else if (pout_open(pc->out, pc->out->path) == 0)
		c->out = pc->out;
	if (c->out != NULL)
		c->w = pcapw_new((const struct sockaddr *)&f->client.ip,
		    (const struct sockaddr *)&f->dst.ip, f->udp, f->id, emit,
		    c->out);
	if (c->w == NULL) {		/* not captured */
		if (c->out != NULL && pc->dir != NULL) {
			pout_close(c->out);
			free(c->out->path);
			free(c->out);
		}
		free(c);
		return V_PASS;
	}
	pcapw_begin(c->w);
	x->wake = pout_due(c->out, x->now);
	x->st = c;
	pc->last = c;
	return V_PASS;
}

static enum verdict
pcap_chunk(const struct tap *t, struct tapctx *x, struct chunk *ch)
{
	struct pconn *c = x->st;

	(void)t;
	if (c == NULL)
		return V_PASS;
	pcapw_data(c->w, x->dir == S2C, ch->p, ch->n);
	if (x->wake == 0)
		x->wake = pout_due(c->out, x->now);
	return V_PASS;
}

/* The end of this direction: its FIN. */
static int
pcap_flush(const struct tap *t, struct tapctx *x, struct chunk *out)
{
	struct pconn *c = x->st;

	(void)t;
	(void)out;
	if (c != NULL)
		pcapw_fin(c->w, x->dir == S2C);
	return 0;
}

/* A second has passed since records waited: write them. */
static enum verdict
pcap_tick(const struct tap *t, struct tapctx *x, struct chunk *out)
{
	struct pconn *c = x->st;

	(void)t;
	(void)out;
	if (c != NULL) {
		pout_flush(c->out);
		x->wake = pout_due(c->out, x->now);
	}
	return V_PASS;
}

static void
pcap_close(const struct tap *t, void *st)
{
	struct pcap_conf *pc = t->conf;
	struct pconn *c = st;

	if (pc->last == c)
		pc->last = NULL;
	if (--c->refs > 0)
		return;
	pcapw_end(c->w, c->flow->reset);
	pcapw_free(c->w);
	if (pc->dir != NULL) {
		pout_close(c->out);
		free(c->out->path);
		free(c->out);
	} else
		pout_flush(c->out);
	free(c);
}

static void
pcap_free(struct tap *t)
{
	struct pcap_conf *pc = t->conf;
	struct pout **pp;

	if (pc == NULL)
		return;
	if (pc->out != NULL && --pc->out->refs == 0) {
		for (pp = &outs; *pp && *pp != pc->out; pp = &(*pp)->next)
			;
		if (*pp)
			*pp = pc->out->next;
		pout_close(pc->out);
		free(pc->out->path);
		free(pc->out);
	}
	free(pc->dir);
	free(pc);
	t->conf = NULL;
}

const struct tap_ops tap_pcap = {
	.name = "pcap",
	.usage = "pcap:FILE|-|DIR/[,overwrite=1]",
	.takes_arg = 2,
	.keys = pcap_keys,
	.parse = pcap_parse,
	.key = pcap_key,
	.check = pcap_check,
	.open = pcap_open,
	.chunk = pcap_chunk,
	.flush = pcap_flush,
	.tick = pcap_tick,
	.close = pcap_close,
	.free = pcap_free,
};
