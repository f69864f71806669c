/*
 * prompt.c - the terminal side of inspect.
 *
 * When standard input is a terminal, the oldest undecided held chunk is
 * shown on the controlling terminal (/dev/tty, never standard output, so
 * observations stay pipeable) as a hexdump with a prompt, and one key
 * decides it: f forward, d drop, e edit then forward, a edit then answer,
 * F forward this and every later chunk of the connection.  The terminal
 * is put in non-canonical, no-echo mode at the first prompt (signals keep
 * working, so ^C still ends tproxy) and restored at exit, and while an
 * editor runs.
 *
 * The editor runs as a child while the loop goes on (a pidfd in the loop
 * tells its end), so every other connection moves while a person edits;
 * meanwhile the terminal is the editor's: no key is read, no prompt shown.
 */
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "event.h"
#include "held.h"
#include "loop.h"
#include "out.h"
#include "prompt.h"

#define SHOW_MAX	4096		/* bytes of a chunk shown */
#define EDIT_MAX	(1024 * 1024)	/* bytes read back from the editor */

static int		 tty = -1, slot = -1, raw, enabled;
static int		 keyed;		/* the chunk shown was decided by a key */
static struct termios	 saved;
static uint64_t		 shown;		/* the chunk prompted for, or 0 */

static void prompt_changed(void);

static void
tty_printf(const char *fmt, ...) PRINTF(1, 2);

static void
tty_printf(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && tty >= 0)
		(void)!write(tty, line, (size_t)n < sizeof(line) ? (size_t)n :
		    sizeof(line) - 1);
}

static void
tty_restore(void)
{
	if (raw && tty >= 0)
		(void)tcsetattr(tty, TCSAFLUSH, &saved);
	raw = 0;
}

static void
tty_raw(void)
{
	struct termios t = saved;

	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(tty, TCSAFLUSH, &t) == 0)
		raw = 1;
}

/* One hexdump line of p[0..n) (n <= 16) at off into buf: its length. */
static size_t
hex_line(const uint8_t *p, size_t n, size_t off, char *buf, size_t len)
{
	size_t i, k;

	k = (size_t)snprintf(buf, len, "%04zx ", off);
	for (i = 0; i < 16; i++) {
		if (i == 8)
			k += (size_t)snprintf(buf + k, len - k, " ");
		if (i < n)
			k += (size_t)snprintf(buf + k, len - k, " %02x", p[i]);
		else
			k += (size_t)snprintf(buf + k, len - k, "   ");
	}
	k += (size_t)snprintf(buf + k, len - k, "  |");
	for (i = 0; i < n; i++)
		buf[k++] = isprint(p[i]) ? (char)p[i] : '.';
	k += (size_t)snprintf(buf + k, len - k, "|\n");
	return k;
}

static void
show(const struct held_chunk *h)
{
	struct conn *c = conn_find(h->conn);
	char from[ADDRSTR] = "?", to[ADDRSTR] = "?", line[128];
	size_t off, n = h->n < SHOW_MAX ? h->n : SHOW_MAX;

	if (c != NULL)
		flow_endpoints(conn_flow(c), h->dir, from, to, sizeof(from));
	tty_printf("\ninspect #%llu: conn %llu %s %zu bytes %s -> %s\n",
	    (unsigned long long)h->id, (unsigned long long)h->conn,
	    h->dir == C2S ? "c2s" : "s2c", h->n, from, to);
	for (off = 0; off < n; off += 16) {
		size_t k = hex_line(h->p + off, n - off < 16 ? n - off : 16, off,
		    line, sizeof(line));

		(void)!write(tty, line, k);
	}
	if (n < h->n)
		tty_printf("... %zu more bytes\n", h->n - n);
	tty_printf("[f]orward [d]rop [e]dit [a]nswer [F]orward all? ");
}

/* Returns 1 if p[0..n) is text: printable, tab, CR, LF. */
static int
is_text(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isprint(p[i]) && p[i] != '\t' && p[i] != '\r' &&
		    p[i] != '\n')
			return 0;
	return 1;
}

/*
 * The bytes of an edited hexdump: on each line that is not a comment
 * (#), after the offset, pairs of hex digits up to the '|' of the text
 * column.  Returns the count, or -1 (with the line number in *bad).
 */
static long
hex_back(const char *s, size_t n, uint8_t *out, size_t cap, int *bad)
{
	size_t i = 0, k = 0;
	int line = 1;

	while (i < n) {
		size_t e = i;

		while (e < n && s[e] != '\n')
			e++;
		while (i < e && isspace((unsigned char)s[i]))
			i++;
		if (i < e && s[i] != '#') {
			while (i < e && !isspace((unsigned char)s[i]))
				i++;		/* the offset */
			for (;;) {
				int hi, lo;

				while (i < e && isspace((unsigned char)s[i]))
					i++;
				if (i >= e || s[i] == '|')
					break;
				if (e - i < 2 || (hi = hexval(s[i])) < 0 ||
				    (lo = hexval(s[i + 1])) < 0 ||
				    (i + 2 < e && !isspace((unsigned char)
				    s[i + 2])) || k >= cap) {
					*bad = line;
					return -1;
				}
				out[k++] = (uint8_t)(hi << 4 | lo);
				i += 2;
			}
		}
		i = e + 1;
		line++;
	}
	return (long)k;
}

/* Writes the chunk for the editor: raw text, or the hexdump. */
static int
edit_write(int fd, const struct held_chunk *h, int text)
{
	char line[128];
	size_t off;
	FILE *f = fdopen(fd, "w");

	if (f == NULL)
		return -1;
	if (text)
		fwrite(h->p, 1, h->n, f);
	else {
		fprintf(f, "# tproxy inspect #%llu: edit the hex columns (the "
		    "offset and the text\n# between | are ignored); lines "
		    "starting with # too\n", (unsigned long long)h->id);
		for (off = 0; off < h->n; off += 16) {
			hex_line(h->p + off, h->n - off < 16 ? h->n - off : 16,
			    off, line, sizeof(line));
			fputs(line, f);
		}
	}
	return fclose(f) == 0 ? 0 : -1;
}

/* The edit under way: the editor runs while the loop goes on. */
static struct {
	pid_t		 pid;		/* 0: none */
	int		 pidfd, slot;
	uint64_t	 id;
	int		 text, answer;
	char		 path[512];
} ed = { .pidfd = -1, .slot = -1 };

static void edit_done(void *arg, int revents);

/* Starts the editor on ed.path.  Returns 0, or -1. */
static int
edit_start(void)
{
	const char *e = getenv("VISUAL");
	char cmd[1024];
	sigset_t none;
	pid_t pid;
	int fd;

	if (e == NULL || *e == '\0')
		e = getenv("EDITOR");
	if (e == NULL || *e == '\0')
		e = "vi";
	snprintf(cmd, sizeof(cmd), "%s \"$1\"", e);
	tty_restore();
	if ((pid = fork()) == -1) {
		tty_raw();
		return -1;
	}
	if (pid == 0) {
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		dup2(tty, 0);
		dup2(tty, 1);
		execl("/bin/sh", "sh", "-c", cmd, "sh", ed.path, (char *)NULL);
		_exit(127);
	}
	/* the loop learns of its end through a pidfd: no SIGCHLD */
	if ((fd = (int)syscall(SYS_pidfd_open, pid, 0)) == -1 ||
	    loop_add(fd, POLLIN, edit_done, NULL, &ed.slot) == -1) {
		if (fd != -1)
			close(fd);
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
		tty_raw();
		return -1;
	}
	ed.pid = pid;
	ed.pidfd = fd;
	loop_set(slot, 0);		/* the keys are the editor's now */
	return 0;
}

/* The bytes the editor left: 0 with *out (malloc'd) and *n, or -1. */
static int
edit_read(uint8_t **out, size_t *n)
{
	char *s = NULL;
	int fd, bad = 0, rc = -1;
	ssize_t r;
	size_t len = 0;
	long k;

	if ((fd = open(ed.path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if ((s = malloc(EDIT_MAX)) == NULL)
		goto out;
	while (len < EDIT_MAX && (r = read(fd, s + len, EDIT_MAX - len)) > 0)
		len += (size_t)r;
	if ((*out = malloc(len ? len : 1)) == NULL)
		goto out;
	if (ed.text) {
		memcpy(*out, s, len);
		*n = len;
		rc = 0;
	} else if ((k = hex_back(s, len, *out, len, &bad)) >= 0) {
		*n = (size_t)k;
		rc = 0;
	} else {
		tty_printf("inspect: line %d of the hexdump is not pairs of "
		    "hex digits; the chunk is still held\n", bad);
		free(*out);
	}
out:
	close(fd);
	free(s);
	return rc;
}

/* Ends the edit: the terminal and its keys come back. */
static void
edit_end(void)
{
	loop_del(&ed.slot);
	close(ed.pidfd);
	ed.pidfd = -1;
	ed.pid = 0;
	unlink(ed.path);
	if (enabled) {
		tty_raw();
		loop_set(slot, POLLIN);
	}
}

static void
edit_done(void *arg, int revents)
{
	uint8_t *p = NULL;
	size_t n = 0;
	char err[80];
	int st = 0, ok;

	(void)arg;
	(void)revents;
	if (waitpid(ed.pid, &st, WNOHANG) == 0)
		return;
	ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (!ok)
		tty_printf("inspect: the editor failed; the chunk is still "
		    "held\n");
	if (ok && edit_read(&p, &n) == 0) {
		keyed = 1;
		if (held_decide(ed.id, ed.answer ? H_ANSWER : H_FORWARD, p, n,
		    err, sizeof(err)) == -1)
			tty_printf("inspect: %s\n", err);
		free(p);
	}
	edit_end();
	shown = 0;			/* show what is held now, afresh */
	keyed = 0;
	prompt_changed();
}

/* Edits h (then forwards, or answers): the editor runs meanwhile. */
static void
edit(const struct held_chunk *h, int answer)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	ed.text = h->edit == EDIT_RAW || (h->edit == EDIT_AUTO &&
	    is_text(h->p, h->n));
	ed.id = h->id;
	ed.answer = answer;
	snprintf(ed.path, sizeof(ed.path), "%s/tproxy-inspect-XXXXXX",
	    dir && *dir ? dir : "/tmp");
	if ((fd = mkstemp(ed.path)) == -1) {
		tty_printf("inspect: %s: %s\n", ed.path, strerror(errno));
		return;
	}
	if (edit_write(fd, h, ed.text) == -1 || edit_start() == -1) {
		tty_printf("inspect: the editor cannot start; the chunk is "
		    "still held\n");
		unlink(ed.path);
		shown = 0;
		prompt_changed();
	}
}

/* One key for the chunk shown. */
static void
key(int k)
{
	struct held_chunk *h = held_find(shown);
	uint64_t id = shown;
	char err[80];
	int rc = 0;

	if (h == NULL || ed.pid != 0)
		return;
	if (k != 0 && strchr("fdF", k) != NULL)
		keyed = 1;
	switch (k) {
	case 'f':
	case 'd':
		tty_printf("%s\n", k == 'f' ? "forward" : "drop");
		rc = held_decide(id, k == 'f' ? H_FORWARD : H_DROP, NULL, 0,
		    err, sizeof(err));
		break;
	case 'F':
		tty_printf("forward all of conn %llu\n",
		    (unsigned long long)h->conn);
		held_pass_all(h->conn);
		rc = held_decide(id, H_FORWARD, NULL, 0, err, sizeof(err));
		break;
	case 'e':
	case 'a':
		tty_printf("%s\n", k == 'e' ? "edit" : "edit, then answer");
		edit(h, k == 'a');
		return;
	default:
		return;
	}
	if (rc == -1)
		tty_printf("inspect: %s\n", err);
	prompt_changed();
}

static void
tty_ready(void *arg, int revents)
{
	unsigned char b[64];
	ssize_t r, i;

	(void)arg;
	(void)revents;
	r = read(tty, b, sizeof(b));
	if (r <= 0) {
		if (r == 0 || (errno != EAGAIN && errno != EINTR))
			loop_del(&slot);	/* the terminal is gone */
		return;
	}
	for (i = 0; i < r && shown != 0; i++)
		key(b[i]);
}

static int
tty_open(void)
{
	if (tty >= 0)
		return 0;
	/* no controlling terminal (setsid): standard input is one */
	if ((tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) == -1 &&
	    (tty = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3)) == -1)
		return -1;
	if (tcgetattr(tty, &saved) == -1 ||
	    loop_add(tty, POLLIN, tty_ready, NULL, &slot) == -1) {
		close(tty);
		tty = -1;
		return -1;
	}
	tty_raw();
	return 0;
}

/* A chunk came or went: prompt for the oldest undecided one. */
static void
prompt_changed(void)
{
	struct held_chunk *h;

	if (!enabled || ed.pid != 0)
		return;		/* the editor has the terminal */
	if (shown != 0 && (h = held_find(shown)) != NULL &&
	    h->how == H_UNDECIDED)
		return;
	if (shown != 0 && !keyed)	/* timeout=, the control socket */
		tty_printf("decided without a key\n");
	shown = 0;
	keyed = 0;
	if ((h = held_next()) == NULL || tty_open() == -1)
		return;
	shown = h->id;
	show(h);
}

void
prompt_init(void)
{
	if (!isatty(STDIN_FILENO))
		return;
	enabled = 1;
	held_on_change(prompt_changed);
	atexit(tty_restore);
}

void
prompt_close(void)
{
	enabled = 0;
	held_on_change(NULL);
	if (ed.pid != 0) {		/* tproxy ends: so does the edit */
		struct timespec tick = { 0, 20 * 1000 * 1000 };
		int i;

		kill(ed.pid, SIGTERM);
		for (i = 0; i < 50 && waitpid(ed.pid, NULL, WNOHANG) == 0; i++)
			nanosleep(&tick, NULL);
		if (i == 50) {		/* an editor deaf to SIGTERM */
			kill(ed.pid, SIGKILL);
			(void)waitpid(ed.pid, NULL, 0);
		}
		edit_end();
	}
	tty_restore();
	if (slot >= 0)
		loop_del(&slot);
	if (tty >= 0)
		close(tty);
	tty = -1;
}
