/*
 * out.c - where words go.  Observations (log lines, hexdumps, JSON events)
 * go to standard output so they can be piped; diagnostics go to standard
 * error.  Standard output is flushed once per loop turn, not per line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "opts.h"
#include "out.h"

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
		color = !opt.json && isatty(STDOUT_FILENO) &&
		    (getenv("NO_COLOR") == NULL || *getenv("NO_COLOR") == '\0');
	return color;
}

void
out_write(const void *p, size_t n)
{
	if (!out_broken)
		fwrite(p, 1, n, stdout);
}

void
out_printf(const char *fmt, ...)
{
	va_list ap;

	if (out_broken)
		return;
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
}

/* A JSON string, quotes included; bytes outside printable ASCII escaped. */
void
out_json_str(const char *s, size_t n)
{
	size_t i;

	if (out_broken)
		return;
	putchar('"');
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/*
 * Flushes observations.  When the reader of stdout has gone away (a pipe into
 * `head`), the proxy keeps relaying and stops writing observations.
 */
void
out_flush(void)
{
	if (out_broken)
		return;
	if (fflush(stdout) == EOF && (errno == EPIPE || errno == EBADF)) {
		out_broken = 1;
		diag_err("tproxy: standard output closed; observations "
		    "stop, traffic goes on");
	}
}

static void
vdiag(const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "%s\n", line);
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
