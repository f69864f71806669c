/*
 * stdpipe.h - the stdio listen address: one connection made of standard
 * input and output, for pipelines.
 */
#ifndef STDPIPE_H
#define STDPIPE_H

/* The routes' checks: stdio once, and nothing else on stdout (exit 2). */
void	 stdio_routes_check(void);
/* Returns 1 if a route listens on stdio (after the check). */
int	 stdio_in_use(void);
/* Starts the stdio route's connection, if there is one. */
void	 stdio_start(void);
/* Returns 1 when the stdio connection is over both ways: time to exit. */
int	 stdio_done(void);
/* Puts standard input and output back as they were. */
void	 stdio_end(void);

#endif /* STDPIPE_H */
