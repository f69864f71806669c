/*
 * out.c - where words go.  Observations (log lines, hexdumps, JSON events)
 * go to standard output so they can be piped; diagnostics go to standard
 * error.  Standard output is written once per loop turn, never blocking.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "loop.h"
#include "opts.h"
#include "out.h"

static int	ofileno = STDOUT_FILENO;	/* stderr with stdio */
static int	out_broken;	/* stdout's reader went away */
static int	color = -1;

/* style 0: 2026-11-22T02:18:16.123456Z   style 1: 2026/11/22 02:18:16.123456 */
void
out_time(char *buf, size_t len, int style)
{
	struct timeval tv;
	struct tm tm;
	char s[32];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	if (style == 0) {
		strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(buf, len, "%s.%06ldZ", s, (long)tv.tv_usec);
	} else {
		localtime_r(&tv.tv_sec, &tm);
		strftime(s, sizeof(s), "%Y/%m/%d %H:%M:%S", &tm);
		snprintf(buf, len, "%s.%06ld", s, (long)tv.tv_usec);
	}
}

int
out_color(void)
{
	if (color < 0)
		color = !opt.json && isatty(ofileno) &&
		    (getenv("NO_COLOR") == NULL || *getenv("NO_COLOR") == '\0');
	return color;
}

/* ------------------------------------------------------------ stdout */

/*
 * Observations are kept in one bounded buffer and written without ever
 * blocking the loop.  A pipe or a terminal is written through a descriptor
 * of its own opened with O_NONBLOCK (so the shell's, shared with ours, is
 * left as it was); a socket with MSG_DONTWAIT; a regular file never waits.
 * While the reader is behind, the descriptor is watched for POLLOUT, and
 * above OUT_HIGH_OBS the connections whose filters observe are not read
 * (out_blocked()); past OUT_MAX_OBS observations are dropped and counted.
 */
#define OUT_HIGH_OBS	(256 * 1024)
#define OUT_MAX_OBS	(16 * 1024 * 1024)

static struct buf	 obuf;
static int		 ofd = -1;	/* where observations are written */
static int		 osock;		/* ofd is a socket: send(MSG_DONTWAIT) */
static int		 oslot = -1;
static uint64_t		 dropped;	/* observations lost past OUT_MAX_OBS */
static void		(*on_drain)(void);

static void out_ready(void *arg, int revents);
static void kinds_flush(void);

/* Picks how standard output is written (once, at the first write). */
static void
out_open(void)
{
	char path[32];
	struct stat st;
	int fl;

	ofd = ofileno;
	if (fstat(ofileno, &st) == -1)
		return;
	if (S_ISSOCK(st.st_mode)) {
		osock = 1;
		return;
	}
	if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
		return;
	fl = fcntl(ofileno, F_GETFL);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", ofileno);
	ofd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC |
	    O_NOCTTY | (fl != -1 ? fl & O_APPEND : 0));
	if (ofd == -1) {	/* no /proc: our own flag on the shared one */
		ofd = ofileno;
		if (fl != -1 && S_ISFIFO(st.st_mode))
			(void)fcntl(ofd, F_SETFL, fl | O_NONBLOCK);
	}
}

/* Observations go to standard error: standard output carries data. */
void
out_to_stderr(void)
{
	ofileno = STDERR_FILENO;
}

void
out_on_drain(void (*cb)(void))
{
	on_drain = cb;
}

int
out_blocked(void)
{
	return buf_pending(&obuf) >= OUT_HIGH_OBS;
}

static void
out_add(const void *p, size_t n)
{
	if (out_broken || n == 0)
		return;
	if (buf_pending(&obuf) + n > OUT_MAX_OBS ||
	    buf_append(&obuf, p, n) == -1)
		dropped++;
}

void
out_write(const void *p, size_t n)
{
	out_add(p, n);
}

/*
 * Two pieces as one record (a pcap packet): both are kept, or neither is
 * (past OUT_MAX_OBS), so a reader never gets half a record.
 */
void
out_write2(const void *a, size_t an, const void *b, size_t bn)
{
	if (out_broken || an + bn == 0)
		return;
	if (buf_pending(&obuf) + an + bn > OUT_MAX_OBS ||
	    buf_append(&obuf, a, an) == -1) {
		dropped++;
		return;
	}
	if (buf_append(&obuf, b, bn) == -1) {
		obuf.len -= an;		/* the first piece ends the buffer */
		dropped++;
	}
}

void
out_printf(const char *fmt, ...)
{
	char line[1024], *big = NULL;
	va_list ap;
	int n;

	if (out_broken)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line)) {
		out_add(line, (size_t)n);
		return;
	}
	va_start(ap, fmt);
	n = vasprintf(&big, fmt, ap);
	va_end(ap);
	if (n >= 0)
		out_add(big, (size_t)n);
	free(big);
}

/*
 * The length of the valid UTF-8 sequence of a character from U+00A0 up at
 * p[0..n), or 0 (not one: an invalid byte, an overlong form, a surrogate,
 * or a C1 control, which some terminals obey).
 */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	size_t len, i;
	unsigned long cp;

	if (p[0] < 0xc2 || p[0] > 0xf4)
		return 0;
	len = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
	if (len > n)
		return 0;
	cp = p[0] & (0x7f >> len);
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
		return 0;
	return len;
}

/*
 * A JSON string, quotes included, handed to add(arg, ...): valid UTF-8 as
 * it is, control characters and invalid bytes escaped (a stray byte as
 * \u00XX).
 */
void
json_str_to(void (*add)(void *, const void *, size_t), void *arg,
    const char *s, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	char e[8];
	size_t i, u;

	add(arg, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char ch = p[i];

		if (ch == '"' || ch == '\\') {
			e[0] = '\\';
			e[1] = (char)ch;
			add(arg, e, 2);
		} else if (ch >= 0x80 && (u = utf8_len(p + i, n - i)) > 0) {
			add(arg, p + i, u);
			i += u - 1;
		} else if (ch < 0x20 || ch >= 0x7f) {
			memcpy(e, "\\u00", 4);
			e[4] = hx[ch >> 4];
			e[5] = hx[ch & 15];
			add(arg, e, 6);
		} else
			add(arg, &ch, 1);
	}
	add(arg, "\"", 1);
}

static void
out_add_cb(void *arg, const void *p, size_t n)
{
	(void)arg;
	out_add(p, n);
}

void
out_json_str(const char *s, size_t n)
{
	json_str_to(out_add_cb, NULL, s, n);
}

/*
 * Text from the network (a Unix client's socket path, say) made safe for a
 * terminal: control characters, DEL and every byte from 0x80 up become
 * \xHH, so no escape sequence or line break of a peer's reaches the
 * screen.  Returns out.
 */
char *
out_safe(const char *in, char *out, size_t len)
{
	static const char hx[] = "0123456789abcdef";
	size_t o = 0;

	for (; *in && o + 5 < len; in++) {
		unsigned char ch = (unsigned char)*in;

		if (ch < 0x20 || ch >= 0x7f) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hx[ch >> 4];
			out[o++] = hx[ch & 15];
		} else
			out[o++] = (char)ch;
	}
	out[o] = '\0';
	return out;
}

/* Writes what it can without waiting; returns 0, or -1 when it must wait. */
static int
out_try(void)
{
	ssize_t w;

	while (buf_pending(&obuf) > 0) {
		if (osock)
			w = send(ofd, obuf.data + obuf.off, buf_pending(&obuf),
			    MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			w = write(ofd, obuf.data + obuf.off, buf_pending(&obuf));
		if (w >= 0) {
			buf_consume(&obuf, (size_t)w);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return -1;
		out_broken = 1;
		buf_free(&obuf);
		if (errno == EPIPE || errno == EBADF || errno == ECONNRESET)
			diag_err("tproxy: standard output closed; observations "
			    "stop, traffic goes on");
		else
			diag_err("tproxy: standard output: %s; observations "
			    "stop, traffic goes on", strerror(errno));
	}
	return 0;
}

/*
 * Writes observations without blocking: what the reader cannot take now
 * waits in the buffer, and the loop wakes us when it can.  When the reader
 * of stdout has gone away (a pipe into `head`), the proxy keeps relaying
 * and stops writing observations.
 */
void
out_flush(void)
{
	int was = out_blocked();

	if (out_broken)
		return;
	if (ofd == -1)
		out_open();
	if (dropped > 0 && !out_blocked()) {
		diag_err("tproxy: standard output is not read: %llu "
		    "observations dropped", (unsigned long long)dropped);
		dropped = 0;
	}
	if (out_try() == -1) {
		if (oslot < 0 && loop_add(ofd, POLLOUT, out_ready, NULL,
		    &oslot) == -1)
			oslot = -1;
	} else if (oslot >= 0)
		loop_del(&oslot);
	if (was && !out_blocked() && on_drain)
		on_drain();
}

/*
 * The last flush, at exit: waits up to wait_ms for a reader that is behind
 * (never longer, so a stopped reader cannot keep tproxy alive), then lets
 * go of what is left.
 */
void
out_close(int wait_ms)
{
	uint64_t end = now_ms() + (uint64_t)wait_ms;
	struct pollfd p;

	kinds_flush();
	out_flush();
	while (!out_broken && buf_pending(&obuf) > 0 && now_ms() < end) {
		p.fd = ofd;
		p.events = POLLOUT;
		if (poll(&p, 1, (int)(end - now_ms())) <= 0)
			break;
		(void)out_try();
	}
	if (oslot >= 0)
		loop_del(&oslot);
	buf_free(&obuf);
	if (ofd >= 0 && ofd != ofileno)
		close(ofd);
	ofd = -1;
	out_broken = 1;
}

static void
out_ready(void *arg, int revents)
{
	(void)arg;
	(void)revents;
	out_flush();
}

static void
vdiag(const char *fmt, va_list ap)
{
	char line[1024], safe[4 * sizeof(line)];

	/* every diagnostic is one line of text, whatever a peer sent */
	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "%s\n", out_safe(line, safe, sizeof(safe)));
}

void
diag(const char *fmt, ...)
{
	va_list ap;

	if (opt.verbose < 0)
		return;
	va_start(ap, fmt);
	vdiag(fmt, ap);
	va_end(ap);
}

void
diag_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ rate limit */

/*
 * Lines about one connection (its error, a dropped datagram) come at most
 * once a second per kind: a flood of clients would otherwise make a line
 * each.  The kind is the line without its digits (connection ids,
 * addresses, ports), so "#12 connect 10.0.0.1:80: refused" and "#13
 * connect 10.0.0.2:80: refused" are one kind.  The first line of a kind is
 * printed; the ones in the second after it are counted, and when that
 * second is over one line gives the count and the last of them, and opens
 * the next second.  A kind that collides with a busy one shares its count.
 */
#define KINDS		64
#define KIND_MS		1000	/* "in 1 s" in kind_report() */

static struct kind {
	uint32_t	 hash;
	uint64_t	 since;		/* ms: its second began; 0 = free */
	unsigned long	 suppressed;
	char		 last[256];	/* the last line kept back */
} kinds[KINDS];
static struct timer	 kinds_timer;

static uint32_t
kind_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		if (*s < '0' || *s > '9')
			h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static void
kind_report(struct kind *k)
{
	const char *last = k->last;

	if (strncmp(last, "tproxy: ", 8) == 0)
		last += 8;
	diag_err("tproxy: suppressed %lu more like this in 1 s; the last: %s",
	    k->suppressed, last);
	k->suppressed = 0;
}

/* Reports what each kind kept back in a second that is over. */
static void
kinds_fired(struct timer *t)
{
	uint64_t now = now_ms(), next = 0, due;
	size_t i;

	(void)t;
	for (i = 0; i < KINDS; i++) {
		struct kind *k = &kinds[i];

		if (k->suppressed == 0)
			continue;
		due = k->since + KIND_MS;
		if (due <= now) {
			kind_report(k);
			k->since = now;		/* the report opens a second */
		} else if (next == 0 || due < next)
			next = due;
	}
	if (next != 0)
		timer_arm(&kinds_timer, next - now);
}

void
diag_limited(const char *fmt, ...)
{
	char line[1024];
	struct kind *k = NULL, *spare = NULL, *c;
	uint64_t now = now_ms();
	uint32_t h;
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	h = kind_hash(line);
	for (i = 0; i < 4 && k == NULL; i++) {	/* its slot, or a free one */
		c = &kinds[(h + i) % KINDS];
		if (c->since != 0 && c->hash == h)
			k = c;
		else if (spare == NULL && c->suppressed == 0 &&
		    (c->since == 0 || now - c->since >= KIND_MS))
			spare = c;
	}
	if (k == NULL && spare != NULL) {
		k = spare;
		k->hash = h;
		k->since = 0;
	}
	if (k == NULL)
		k = &kinds[h % KINDS];		/* all busy: share a count */
	if (k->since == 0 || now - k->since >= KIND_MS) {
		if (k->suppressed > 0)
			kind_report(k);
		k->since = now ? now : 1;
		diag_err("%s", line);
		return;
	}
	k->suppressed++;
	line[sizeof(k->last) - 1] = '\0';	/* the start of it will do */
	memcpy(k->last, line, strlen(line) + 1);
	kinds_timer.cb = kinds_fired;
	if (!timer_armed(&kinds_timer))
		timer_arm(&kinds_timer, k->since + KIND_MS - now);
}

/* At exit: the counts still kept back. */
static void
kinds_flush(void)
{
	size_t i;

	for (i = 0; i < KINDS; i++)
		if (kinds[i].suppressed > 0)
			kind_report(&kinds[i]);
	timer_stop(&kinds_timer);
}

void
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tproxy: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'tproxy --help' for more information.\n");
	exit(2);
}
