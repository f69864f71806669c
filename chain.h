/*
 * chain.h - running a connection's chunks through its filters, holding what
 * they hold, and handing the result to the connection.
 */
#ifndef CHAIN_H
#define CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "tap.h"

/*
 * What the chain asks of its connection.  Every callback gets the arg given
 * to chain_open().  After close, the chain does nothing more but be freed.
 */
struct chain_sink {
	void	(*deliver)(void *arg, enum dir d, const uint8_t *p, size_t n);
	void	(*answer)(void *arg, enum dir d, const uint8_t *p, size_t n);
	void	(*eof)(void *arg, enum dir d);	/* d ends here: pass FIN on */
	void	(*close)(void *arg, const char *reason, int reset);
	void	(*redirect)(void *arg, const struct addr *to);
	void	(*resume)(void *arg);	/* held bytes went on: read again */
	/* 1 if what direction d feeds (and its sender's output) has room */
	int	(*room)(void *arg, enum dir d);
};

struct chain;

/* A chain over taps[0..n) for flow f; NULL when out of memory. */
struct chain *chain_open(const struct tap *taps, size_t n,
	    const struct flow *f, const struct chain_sink *sink, void *arg)
	    __attribute__((nonnull(3, 4)));
/* Opens every filter that applies (they may redirect, close or reset). */
void	 chain_start(struct chain *ch) __attribute__((nonnull));
/* Ends the filters' state and timers (a close); the chain stays allocated. */
void	 chain_close(struct chain *ch);
void	 chain_free(struct chain *ch);
/* A chunk read in direction d. */
void	 chain_input(struct chain *ch, enum dir d, const uint8_t *p, size_t n)
	    __attribute__((nonnull));
/* The end of direction d: passed on (sink->eof) after what is held. */
void	 chain_eof(struct chain *ch, enum dir d) __attribute__((nonnull));
/* The connection's output drained: let held bytes go on. */
void	 chain_kick(struct chain *ch) __attribute__((nonnull));
/* Bytes held in direction d (toward back-pressure). */
size_t	 chain_held(const struct chain *ch, enum dir d)
	    __attribute__((nonnull));
/* Returns 1 if a filter that applies writes observations to stdout. */
int	 chain_observes(const struct chain *ch) __attribute__((nonnull));
/* Returns 1 if a filter on c2s wants the client's first bytes to connect. */
int	 chain_first_bytes(const struct chain *ch) __attribute__((nonnull));

#endif /* CHAIN_H */
