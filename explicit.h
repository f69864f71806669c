/*
 * explicit.h - the handshake of an explicit proxy listener (socks5-listen,
 * http-listen): what the client asks for, read before the upstream is
 * chosen, and the replies it gets.  The socket is the stream transport's;
 * this side only parses and answers.
 */
#ifndef EXPLICIT_H
#define EXPLICIT_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "httpproxy.h"
#include "sockname.h"

#define XP_REPLY_MAX	1024

enum xp_rc {
	XP_MORE,		/* a part of a message: read on */
	XP_NEXT,		/* a message taken, the reply sent: read on */
	XP_DEST,		/* the destination is known */
	XP_FAIL,		/* refused: send the reply, then close */
};

struct xp_out {
	uint8_t		 reply[XP_REPLY_MAX];	/* to send now */
	size_t		 rlen;
	const char	*why;		/* XP_FAIL: the reason */
	int		 drain;		/* XP_FAIL: read the client's rest */
};

struct xp;

/* The handshake of a new connection on listener l; NULL: no memory. */
struct xp *xp_new(const struct addr *l) __attribute__((nonnull));
void	 xp_free(struct xp *x);
/* Where the client's next bytes go, and how many fit (at least 1). */
uint8_t	*xp_room(struct xp *x, size_t *room) __attribute__((nonnull));
/*
 * The n bytes just put at xp_room() (peeked, still in the socket): *take
 * says how many of them the handshake consumed; the rest stays for later.
 */
enum xp_rc xp_feed(struct xp *x, size_t n, size_t *take, struct xp_out *o)
	    __attribute__((nonnull));
/* The requested destination (after XP_DEST). */
const char *xp_host(const struct xp *x) __attribute__((nonnull));
uint16_t xp_port(const struct xp *x) __attribute__((nonnull));
/*
 * An absolute-URI request (not a tunnel): its forwarder, and its head in
 * origin form in *head (*len bytes, to free).  NULL for a tunnel, or with
 * *head NULL when out of memory.
 */
struct hp *xp_forward(struct xp *x, uint8_t **head, size_t *len)
	    __attribute__((nonnull));
int	 xp_is_forward(const struct xp *x) __attribute__((nonnull));
/* The request is handled: frees its buffer (what xp_result() needs stays). */
void	 xp_release(struct xp *x) __attribute__((nonnull));
/*
 * The reply once the upstream is reached (why NULL; bnd is our end toward
 * it) or not (why says why): its length in out (0: none is due).
 */
size_t	 xp_result(const struct xp *x, const char *why,
	    const struct sockname *bnd, uint8_t *out, size_t len)
	    __attribute__((nonnull(1, 3, 4)));

#endif /* EXPLICIT_H */
