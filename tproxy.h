/*
 * tproxy.h - the types every part of tproxy shares, and the filter (tap)
 * interface.  See man/tproxy.1 for what the user sees.
 */
#ifndef TPROXY_H
#define TPROXY_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define TPROXY_VERSION	"0.1.0"

#define NONNULL		__attribute__((nonnull))
#define WUNRES		__attribute__((warn_unused_result))
#define PRINTF(f, a)	__attribute__((format(printf, f, a)))

#define IO_CHUNK	(64 * 1024)	/* one read from a socket */
#define OUT_HIGH	(64 * 1024)	/* stop reading the peer above this */
#define ERRLEN		512
#define ADDRSTR		160		/* an address as text */
#define MAX_TAPS	32		/* filters per route (a bit mask) */

/* Direction of a byte stream through a connection. */
enum dir {
	C2S = 0,			/* client to server */
	S2C = 1,			/* server to client */
};
#define DIR_BIT(d)	(1u << (d))
#define DIR_BOTH	(DIR_BIT(C2S) | DIR_BIT(S2C))

/* ------------------------------------------------------------ addresses */

enum addr_type {
	A_NONE = 0,
	A_TCP_LISTEN,
	A_UDP_LISTEN,
	A_UNIX_LISTEN,
	A_TCP,
	A_UDP,
	A_UNIX,
	A_ECHO,
	A_TCP_TPROXY,			/* listen: IP_TRANSPARENT */
	A_UDP_TPROXY,
	A_ORIG,				/* target: the original destination */
};

#define MAX_PORTMAP	16

/* A parsed address spec: what the user wrote, split into its parts. */
struct addr {
	enum addr_type	 type;
	char		 host[256];	/* name or literal, no brackets */
	char		 path[108];	/* unix sockets */
	uint16_t	 port;
	int		 reuseaddr;	/* -1 unset, 0, 1 */
	int		 backlog;	/* 0 unset */
	int		 ipv6only;	/* -1 unset */
	int		 has_bind;
	int		 spoof;		/* connect from the client's address */
	int		 tls;		/* TLS on this side */
	int		 verify;	/* target: check the upstream (default 1) */
	char		 cert[256], key[256], keylog[256];
	void		*passthrough;	/* pcre2_code *: SNIs not intercepted */
	uint16_t	 portmap[MAX_PORTMAP][2];
	int		 nportmap;
	char		 bind_host[256];
	uint16_t	 bind_port;
};

int	 addr_parse(const char *spec, int listen_side, struct addr *a,
	    char *err, size_t errlen) NONNULL WUNRES;
void	 addr_free(struct addr *a) NONNULL;
int	 addr_is_listen(enum addr_type t);
int	 addr_is_udp(enum addr_type t);
int	 addr_is_tproxy(enum addr_type t);
const char *addr_type_name(enum addr_type t);

/* A socket address with its length, for any family we speak. */
struct sockname {
	struct sockaddr_storage	 ss;
	socklen_t		 len;
};

void	 sockname_str(const struct sockname *sn, char *buf, size_t len) NONNULL;
uint16_t sockname_port(const struct sockname *sn) NONNULL;
void	 sockname_host(const struct sockname *sn, char *buf, size_t len)
	    NONNULL;

/* A CIDR block for the src= and dst= filter keys. */
struct cidr {
	int		 family;	/* 0 = not set */
	uint8_t		 addr[16];
	int		 bits;
};

int	 cidr_parse(const char *s, struct cidr *c) NONNULL WUNRES;
int	 cidr_match(const struct cidr *c, const struct sockname *sn) NONNULL;

/* Parse a decimal integer within [lo, hi]; 0 on success, -1 if malformed. */
int	 num_parse(const char *s, long long lo, long long hi, long long *out)
	    NONNULL WUNRES;
/* The same with the k (KiB) and m (MiB) suffixes. */
int	 size_parse(const char *s, long long hi, long long *out) NONNULL WUNRES;

/* C escapes (\r \n \t \\ \xHH) in TEXT; returns the length or -1. */
ssize_t	 esc_decode(const char *in, char *out, size_t outlen, char *err,
	    size_t errlen) NONNULL;

/* ------------------------------------------------------------ buffers */

/* A byte buffer owned by one side; storage exists only while bytes wait. */
struct buf {
	uint8_t		*data;
	size_t		 off;		/* first unsent byte */
	size_t		 len;		/* end of bytes */
	size_t		 cap;
};

int	 buf_append(struct buf *b, const void *p, size_t n) NONNULL WUNRES;
size_t	 buf_pending(const struct buf *b) NONNULL;
void	 buf_consume(struct buf *b, size_t n) NONNULL;
void	 buf_free(struct buf *b) NONNULL;

/* ------------------------------------------------------------ the loop */

typedef void (*io_cb)(void *arg, int revents);

struct timer;
typedef void (*timer_cb)(struct timer *t);
struct timer {
	uint64_t	 when;		/* ms, monotonic */
	size_t		 idx;		/* position in the heap; 0 = unarmed */
	timer_cb	 cb;
	void		*arg;
};

uint64_t now_ms(void);
int	 loop_add(int fd, short events, io_cb cb, void *arg, int *slotp)
	    WUNRES;
void	 loop_set(int slot, short events);
void	 loop_del(int *slotp) NONNULL;
void	 timer_arm(struct timer *t, uint64_t ms_from_now) NONNULL;
void	 timer_stop(struct timer *t) NONNULL;
int	 loop_run_once(const sigset_t *sigmask);
void	 loop_free(void);

/* ------------------------------------------------------------ routes */

struct tap;

struct route {
	int		 id;
	const char	*lspec;		/* the listen address as written */
	struct addr	 listen;
	struct addr	 target;
	struct tap	*taps;		/* the chain, in order */
	size_t		 ntaps;
	int		 first_bytes;	/* a tap needs client bytes first */
	int		 lfd;
	int		 lslot;
	struct sockname	 lname;		/* bound address */
	struct sockname	 tname;		/* target, when numeric */
	int		 tresolved;
	struct ssl_ctx_st *sctx;	/* TLS toward clients */
	struct ssl_ctx_st *cctx;	/* TLS toward the upstream */
	FILE		*keylog;
};

/* ------------------------------------------------------------ connections */

struct conn;

struct side {
	struct conn	*conn;
	int		 fd;
	int		 slot;
	struct buf	 out;		/* bytes waiting to be written to fd */
	int		 pipefd[2];	/* splice pipe toward this side */
	size_t		 inpipe;	/* bytes in that pipe */
	unsigned	 rd_eof:1;	/* read returned 0 */
	unsigned	 wr_shut:1;	/* we shut down writing */
	unsigned	 want_shut:1;	/* shut down writing once out drains */
	unsigned	 splice:1;	/* reads from this side go through a pipe */
	unsigned	 is_server:1;
	unsigned	 hs:1;		/* TLS handshake under way */
	short		 ssl_want;	/* POLLIN/POLLOUT that TLS waits for */
	struct ssl_st	*ssl;
	struct sockname	 peer;
	struct sockname	 local;
};

enum conn_state {
	CS_HELLO,			/* peeking at the client's TLS ClientHello */
	CS_WAIT_BYTES,			/* waiting for client bytes to pick upstream */
	CS_CONNECTING,
	CS_OPEN,
	CS_CLOSED,
};

struct conn {
	uint64_t	 id;
	struct route	*route;
	enum conn_state	 state;
	struct side	 side[2];	/* [C2S] client, [S2C] server (by reader) */
	void		**tapst[2];	/* per tap, per direction state */
	uint32_t	 tapon[2];	/* tap i active in dir d: bit i */
	uint64_t	 bytes[2];	/* read, per direction */
	uint64_t	 chunks[2];
	uint64_t	 start_ms;
	uint64_t	 last_ms;
	struct timer	 idle;		/* --idle-timeout */
	struct timer	 hold[2];	/* flush bytes taps hold, per direction */
	struct timer	 wait;		/* connect timeout, first-bytes wait */
	struct sockname	 dst;		/* where the client meant to go */
	const char	*sni;		/* from the ClientHello, when valid */
	struct tlsinfo	*ti;		/* TLS listeners only (memory) */
	int		 passthrough;	/* TLS relayed untouched (by SNI) */
	int		 tls_wait;	/* client handshake not finished */
	int		 hello_wait;	/* ClientHello incomplete: retry later */
	int		 echo;		/* target is echo: c2s comes back */
	int		 udp;		/* a UDP session: a chunk is a datagram */
	uint64_t	 idle_ms;	/* close after this long without bytes */
	struct conn	*hnext;		/* UDP session table chain */
	struct addr	*redirect;	/* chosen by a redirect tap */
	struct conn	*next, *prev;
};

#define CLIENT(c)	(&(c)->side[C2S])
#define SERVER(c)	(&(c)->side[S2C])

/* ------------------------------------------------------------ taps */

enum verdict {
	V_PASS = 0,			/* forward *out (maybe rewritten) */
	V_DROP,				/* discard the chunk */
	V_ANSWER,			/* send *out back to the sender, forward nothing */
	V_CLOSE,			/* close the connection gracefully */
	V_RESET,			/* reset both sides */
};

/* A chunk as a tap sees it. */
struct chunk {
	const uint8_t	*p;
	size_t		 n;
};

/* What a tap callback knows about where the chunk is. */
struct tapctx {
	struct conn	*conn;
	enum dir	 dir;
	void		*st;		/* this tap's state for (conn, dir) */
};

/*
 * A filter's operations.  Any callback may be NULL.
 *  parse:  called once at start-up with ARG (NULL when absent); returns 0, or
 *          -1 with a message in err.  It owns t->conf.
 *  key:    a KEY=VALUE this filter takes beyond the common ones; returns 0,
 *          1 if the key is not one of its own, -1 (message in err) if the
 *          value is bad.
 *  check:  after all keys; returns 0 or -1 with a message.
 *  accept: once per connection the tap applies to, before the upstream is
 *          chosen (redirect decides here unless it needs bytes).
 *  open:   per connection and direction; returns the state or NULL (none).
 *  chunk:  sees a chunk, returns a verdict; may point *c at its own bytes,
 *          valid until its next call.
 *  flush:  releases held bytes into *c at EOF (eof=1) or on the hold timer;
 *          returns 1 if it produced bytes.
 *  held:   returns 1 if state holds bytes back (the loop arms the timer).
 *  close:  frees the state.
 */
struct tap_ops {
	const char	*name;
	int		 takes_arg;	/* 0 none, 1 optional, 2 required */
	const char	*const *keys;	/* filter-specific key names */
	int	(*parse)(struct tap *t, const char *arg, char *err, size_t len);
	int	(*key)(struct tap *t, const char *k, const char *v, char *err,
		    size_t len);
	int	(*check)(struct tap *t, char *err, size_t len);
	void	 (*accept)(struct tap *t, struct conn *c);
	void	*(*open)(struct tap *t, struct conn *c, enum dir d);
	enum verdict (*chunk)(struct tap *t, struct tapctx *x, struct chunk *c);
	int	(*flush)(struct tap *t, struct tapctx *x, struct chunk *c,
		    int eof);
	int	(*held)(struct tap *t, void *st);
	void	(*close)(struct tap *t, void *st);
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
	void		*conf;		/* the tap's own */
	uint64_t	 hold_ms;	/* flush delay for taps that hold */
	int		 first_bytes;	/* needs client bytes before connect */
};

extern const struct tap_ops tap_log, tap_hexdump, tap_replace, tap_drop,
    tap_answer, tap_redirect;

int	 tap_parse(const char *spec, struct tap *t, char *err, size_t errlen)
	    NONNULL WUNRES;
void	 tap_free(struct tap *t) NONNULL;
int	 tap_conn_match(const struct tap *t, const struct conn *c) NONNULL;

/* regex helpers shared by taps (PCRE2, binary-safe, no UTF) */
void	*re_compile(const char *pat, int caseless, char *err, size_t errlen);
int	 re_search(void *re, const uint8_t *p, size_t n) NONNULL;
void	 re_free(void *re);

/* Running the chain (chain.c). */
int	 chain_open(struct conn *c) NONNULL WUNRES;
void	 chain_close(struct conn *c) NONNULL;
int	 chain_run(struct conn *c, enum dir d, const uint8_t *p, size_t n)
	    NONNULL;
int	 chain_flush(struct conn *c, enum dir d, int eof) NONNULL;
int	 chain_holding(struct conn *c, enum dir d) NONNULL;
uint64_t chain_hold_ms(struct conn *c, enum dir d) NONNULL;

/* ------------------------------------------------------------ output */

extern int	 opt_json;
extern int	 opt_verbose;		/* -1 quiet, 0 normal, >0 more */

void	 out_time(char *buf, size_t len, int style);	/* 0 RFC3339, 1 socat */
void	 out_json_str(const char *s, size_t n);
void	 out_flush(void);
int	 out_color(void);
void	 diag(const char *fmt, ...) PRINTF(1, 2);	/* stderr, not with -q */
void	 diag_err(const char *fmt, ...) PRINTF(1, 2);	/* stderr, always */
void	 out_printf(const char *fmt, ...) PRINTF(1, 2);	/* stdout */
void	 out_write(const void *p, size_t n);

/* Events of routes and connections (event.c). */
void	 ev_listen(const struct route *r) NONNULL;
void	 ev_accept(const struct conn *c) NONNULL;
void	 ev_connect(const struct conn *c) NONNULL;
void	 ev_error(const struct conn *c, const char *reason) NONNULL;
void	 ev_close(const struct conn *c, const char *reason) NONNULL;
void	 ev_data(const struct conn *c, enum dir d, size_t n, uint64_t off,
	    const uint8_t *hex);

/* ------------------------------------------------------------ conn.c */

void	 conn_accept(struct route *r) NONNULL;
void	 conn_close(struct conn *c, const char *reason, int reset) NONNULL;
void	 conn_close_all(const char *reason);
void	 conn_deliver(struct conn *c, enum dir d, const uint8_t *p, size_t n)
	    NONNULL;
void	 conn_answer(struct conn *c, enum dir d, const uint8_t *p, size_t n)
	    NONNULL;
void	 conn_endpoints(const struct conn *c, enum dir d, char *from,
	    char *to, size_t len) NONNULL;
size_t	 conn_count(void);
void	 conn_reap(void);

extern uint64_t	 stat_conns, stat_bytes[2];
extern long	 opt_max_conns, opt_idle_timeout;

/* ------------------------------------------------------------ udp.c */

extern long	 opt_udp_timeout;

void	 udp_listen_ready(struct route *r) NONNULL;
int	 udp_opened(struct conn *c, int fd) NONNULL WUNRES;
void	 udp_send(struct conn *c, struct side *s, const uint8_t *p, size_t n)
	    NONNULL;
void	 udp_forget(struct conn *c) NONNULL;
void	 udp_buffers(int fd);

/* shared by conn.c and udp.c */
struct conn *conn_create(struct route *r, int fd, const struct sockname *peer)
	    NONNULL;
void	 conn_start(struct conn *c) NONNULL;
int	 conn_room(void);
void	 conn_fail(struct conn *c, const char *reason) NONNULL;
void	 conn_account(struct conn *c, enum dir d, size_t n) NONNULL;
void	 conn_after_chunk(struct conn *c, enum dir d) NONNULL;
void	 conn_side_io(void *arg, int revents);

/* ------------------------------------------------------------ transparent.c */

struct passwd;
int	 orig_lookup(struct conn *c, int fd, char *err, size_t errlen) NONNULL;
int	 orig_target(const struct conn *c, const struct addr *t,
	    struct sockname *to, char *err, size_t errlen) NONNULL;
void	 priv_check(void);
void	 priv_drop(const struct passwd *pw) NONNULL;
void	 print_rules(void);

/* ------------------------------------------------------------ hello.c */

struct hello {
	char		 sni[256];	/* "" when absent or invalid */
	int		 sni_bad;	/* an invalid name was sent */
	uint8_t		 alpn[256];	/* the offer, in wire format */
	size_t		 alpn_len;
};

int	 hello_parse(const uint8_t *p, size_t n, struct hello *h) NONNULL;

/* What a TLS listener's connection learnt from both handshakes. */
struct tlsinfo {
	struct hello	 hello;		/* the client's SNI and ALPN offer */
	uint8_t		 alpn[256];	/* what the upstream chose */
	size_t		 alpn_len;
};

/* ------------------------------------------------------------ tls.c */

struct x509_st;
extern const char *opt_ca_cert, *opt_ca_key;

int	 tls_route_init(struct route *r, char *err, size_t errlen) NONNULL;
void	 tls_route_free(struct route *r) NONNULL;
void	 tls_cleanup(void);
const char *tls_error(void);
int	 tls_upstream_start(struct conn *c, struct side *s,
	    const struct addr *t, char *err, size_t errlen) NONNULL;
int	 tls_client_start(struct conn *c, struct side *s, struct x509_st *up,
	    char *err, size_t errlen) __attribute__((nonnull(1, 2, 4)));
int	 tls_handshake(struct conn *c, struct side *s, char *err,
	    size_t errlen) NONNULL;
struct x509_st *tls_peer_cert(struct side *s) NONNULL;
ssize_t	 tls_read(struct side *s, void *buf, size_t n, char *err,
	    size_t errlen) NONNULL;
ssize_t	 tls_write(struct side *s, const void *buf, size_t n, char *err,
	    size_t errlen) NONNULL;
int	 tls_pending(struct side *s) NONNULL;
int	 tls_ready(struct side *s) NONNULL;
void	 X509_free_ref(struct x509_st *x);
void	 tls_shutdown(struct side *s) NONNULL;
void	 tls_free(struct side *s) NONNULL;

/* ------------------------------------------------------------ net.c */

int	 net_listen(struct route *r, char *err, size_t errlen) NONNULL WUNRES;
int	 net_connect(const struct addr *a, int type,
	    const struct sockname *pre, const struct sockname *spoof,
	    struct sockname *to, char *err, size_t errlen)
	    __attribute__((nonnull(1, 5, 6))) WUNRES;
int	 net_transparent(int fd, int family, char *err, size_t errlen);
int	 net_original_dst(int fd, int family, struct sockname *out) NONNULL;
int	 net_is_local(const struct sockname *sn) NONNULL;
int	 net_resolve(const char *host, uint16_t port, int passive,
	    struct sockname *out, char *err, size_t errlen) NONNULL WUNRES;
void	 addr_target_str(const struct addr *a, char *buf, size_t len) NONNULL;

extern struct route	*routes;
extern size_t		 nroutes;

#endif /* TPROXY_H */
