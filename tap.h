/*
 * tap.h - the filter (tap) interface.  A filter sees chunks and returns
 * verdicts; it never touches a connection.  What it may know about the
 * connection comes in its context (struct tapctx, struct flow); what it
 * wants done is its verdict.  The chain (chain.c) keeps the bytes a filter
 * holds, counts them toward back-pressure, and runs the rest of the chain
 * when the filter releases them.
 *
 * A new filter is one file in taps/ that exports one struct tap_ops, and
 * one line in the table in filter.c.
 */
#ifndef TAP_H
#define TAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "addr.h"
#include "buf.h"
#include "out.h"
#include "parse.h"
#include "re.h"
#include "sockname.h"

#define MAX_TAPS	32		/* filters per route */

/* Direction of a byte stream through a connection. */
enum dir {
	C2S = 0,			/* client to server */
	S2C = 1,			/* server to client */
};
#define DIR_BIT(d)	(1u << (d))
#define DIR_BOTH	(DIR_BIT(C2S) | DIR_BIT(S2C))

/* What a filter may know about a connection (read only). */
struct flow {
	uint64_t	 id;
	int		 route;		/* route number, from 1 */
	int		 udp;		/* datagrams: a chunk is one datagram */
	int		 echo;		/* the target is echo */
	struct flowaddr	 client;	/* the client's address */
	struct flowaddr	 peer;		/* who sent a PROXY header naming
					   the client (len 0: none) */
	struct flowaddr	 local;		/* our address the client reached */
	struct flowaddr	 dst;		/* where the client meant to go */
	struct flowaddr	 server;	/* the upstream, once connected */
	struct flowaddr	 server_local;	/* our end toward the upstream */
	const char	*sni;		/* from the ClientHello, or NULL */
	const char	*host;		/* the name an explicit proxy's client
					   asked for, or NULL */
	const char	*exec;		/* exec: the command (the route's) */
	uint64_t	 start_ms;
	uint64_t	 bytes[2];	/* read, per direction */
	uint64_t	 chunks[2];
	int		 reset;		/* it ends with a reset (set before close()) */
};

enum verdict {
	V_PASS = 0,	/* forward *ch (maybe rewritten) to the next filter */
	V_DROP,		/* discard the chunk */
	V_ANSWER,	/* send *ch back to the sender; nothing goes on */
	V_HOLD,		/* the chain keeps *ch, not before x->due */
	V_SHUT,		/* forward *ch, then end this direction (FIN) */
	V_REDIRECT,	/* forward *ch; the upstream is x->to (before connect) */
	V_CLOSE,	/* close the connection gracefully */
	V_RESET,	/* reset both sides */
};

/* A chunk as a filter sees it. */
struct chunk {
	const uint8_t	*p;
	size_t		 n;
};

/* Where a chunk is, and what the callback may ask for besides a verdict. */
struct tapctx {
	const struct flow *flow;
	enum dir	 dir;
	void		*st;		/* this filter's state for (conn, dir) */
	uint64_t	 off;		/* stream offset of the chunk at this filter */
	uint64_t	 now;		/* ms, monotonic */
	size_t		 held;		/* bytes the chain holds for this filter */
	uint64_t	 due;		/* V_HOLD: release not before (ms) */
	uint64_t	 wake;		/* call tick() then (ms); 0 = never */
	const struct addr *to;		/* V_REDIRECT: the new upstream */
};

#define DUE_NEVER	UINT64_MAX

struct tap;

/*
 * A filter's operations.  Any callback but name may be NULL.
 *  parse:   once at start-up with ARG (NULL when absent); returns 0, or -1
 *           with a message in err.  It owns t->conf.
 *  key:     a KEY=VALUE of its own; returns 0, 1 if the key is not its own,
 *           -1 (message in err) if the value is bad.
 *  check:   after all keys (t->udp tells the route's kind); 0 or -1 + err.
 *  open:    per connection and direction it applies to, before the upstream
 *           is chosen: sets x->st (its state) and may set x->wake; returns
 *           V_PASS, or V_REDIRECT, V_CLOSE or V_RESET to act at once.
 *  chunk:   sees a chunk; returns a verdict.  It may point c at its own
 *           bytes, valid until its next call.  V_HOLD hands the chunk to
 *           the chain, which queues it (in order on a stream, by x->due on
 *           datagrams) and releases it through release().
 *  decide:  instead of release, for a filter that waits for someone's
 *           decision on the oldest held chunk h: returns V_HOLD (not yet;
 *           x->wake may ask to be asked again), V_PASS (forward *h, which
 *           it may point at other bytes), V_DROP, or V_ANSWER (send *h
 *           back).  Something outside the chain decides, then kicks the
 *           connection (conn_kick).
 *  release: the chain holds bytes for this filter: returns how many bytes
 *           of the oldest held chunk h may go on now (a datagram goes
 *           whole or not at all), and sets x->wake when it returns less
 *           than all.  NULL: a chunk goes whole once its due time is past.
 *  tick:    x->wake has come; may point out at bytes to pass on (V_PASS),
 *           or return V_CLOSE/V_RESET; may set x->wake again.
 *  flush:   the end of the stream reached this filter: bytes it kept itself
 *           (not in the chain's queue) go into out; returns 1 if any.
 *  held:    bytes it keeps itself (they count toward back-pressure).
 *  close:   frees the state of (conn, dir).
 *  free:    frees t->conf.
 */
struct tap_ops {
	const char	*name;
	const char	*usage;		/* "delay:MS[,jitter=MS]" for --help */
	int		 takes_arg;	/* 0 none, 1 optional, 2 required */
	int		 udp_only;	/* refused on stream routes */
	int		 observes;	/* writes observations to stdout */
	const char	*const *keys;	/* filter-specific key names */
	int	(*parse)(struct tap *t, const char *arg, char *err, size_t len);
	int	(*key)(struct tap *t, const char *k, const char *v, char *err,
		    size_t len);
	int	(*check)(struct tap *t, char *err, size_t len);
	enum verdict (*open)(const struct tap *t, struct tapctx *x);
	enum verdict (*chunk)(const struct tap *t, struct tapctx *x,
		    struct chunk *c);
	enum verdict (*decide)(const struct tap *t, struct tapctx *x,
		    struct chunk *h);
	size_t	(*release)(const struct tap *t, struct tapctx *x,
		    const struct chunk *h);
	enum verdict (*tick)(const struct tap *t, struct tapctx *x,
		    struct chunk *out);
	int	(*flush)(const struct tap *t, struct tapctx *x,
		    struct chunk *out);
	size_t	(*held)(const struct tap *t, const void *st);
	void	(*close)(const struct tap *t, void *st);
	void	(*free)(struct tap *t);
};

/* One filter in a route's chain, configured once. */
struct tap {
	const struct tap_ops *ops;
	const char	*spec;		/* as the user wrote it */
	unsigned	 dirs;		/* DIR_BIT mask */
	struct cidr	 src, dst;
	int		 dport;		/* -1 = any */
	void		*sni_re;	/* pcre2_code *, or NULL */
	void		*conf;		/* the filter's own */
	int		 udp;		/* the route carries datagrams */
	int		 first_bytes;	/* needs client bytes before connect */
	const char	*writes;	/* the file it writes, "-" for stdout */
	const unsigned	*off;		/* shared switch, nonzero: switched off
					   (the control socket); NULL: on */
};

/* Returns 1 while the control socket has switched t off. */
static inline int
tap_off(const struct tap *t)
{
	return t->off != NULL && *t->off != 0;
}

/* For filters whose conf or state is one plain allocation. */
static inline void
tap_conf_free(struct tap *t)
{
	free(t->conf);
	t->conf = NULL;
}

static inline void
tap_state_free(const struct tap *t, void *st)
{
	(void)t;
	free(st);
}

#endif /* TAP_H */
