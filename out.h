/*
 * out.h - where words go: observations (log lines, hexdumps, JSON events)
 * to standard output, diagnostics to standard error.
 */
#ifndef OUT_H
#define OUT_H

#include <stddef.h>

#define PRINTF(f, a)	__attribute__((format(printf, f, a)))
#define ERRLEN		512		/* a message */

void	 out_time(char *buf, size_t len, int style);	/* 0 RFC3339, 1 socat */
void	 out_json_str(const char *s, size_t n);
/* The same JSON string, handed to add(arg, bytes, count) in pieces. */
void	 json_str_to(void (*add)(void *, const void *, size_t), void *arg,
	    const char *s, size_t n);
/* in escaped for a terminal (\\xHH for all but printable ASCII); out. */
char	*out_safe(const char *in, char *out, size_t len);
/* Writes what it can of the observations without blocking. */
void	 out_flush(void);
/* The last flush: waits at most wait_ms for a slow reader. */
void	 out_close(int wait_ms);
/* Returns 1 while stdout's reader is too far behind: observers wait. */
int	 out_blocked(void);
/* cb runs when out_blocked() turns 0 again. */
void	 out_on_drain(void (*cb)(void));
int	 out_color(void);
/* From now on observations go to standard error (stdout carries data). */
void	 out_to_stderr(void);
void	 diag(const char *fmt, ...) PRINTF(1, 2);	/* stderr, not with -q */
void	 diag_err(const char *fmt, ...) PRINTF(1, 2);	/* stderr, always */
/* diag_err() for lines about one connection: one a second per kind. */
void	 diag_limited(const char *fmt, ...) PRINTF(1, 2);
void	 out_printf(const char *fmt, ...) PRINTF(1, 2);	/* stdout */
void	 out_write(const void *p, size_t n);
/* a then b, both or neither (one record that must not be cut) */
void	 out_write2(const void *a, size_t an, const void *b, size_t bn);
/* A usage error: the message, the hint, exit status 2. */
void	 usage_error(const char *fmt, ...) PRINTF(1, 2)
	    __attribute__((noreturn));

#endif /* OUT_H */
