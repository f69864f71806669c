/*
 * udp.c - UDP routes: one session per client address, each with its own
 * connected upstream socket; a datagram is one chunk for every filter.
 *
 * Datagrams are read in batches (recvmmsg) into fixed slots large enough for
 * the largest UDP payload; one that the kernel still flags as truncated is
 * dropped, never forwarded as if whole.  A session is a struct conn whose
 * client side has no socket of its own: replies leave through the route's
 * socket, from the address the client sent to.  Sessions expire after
 * --udp-timeout seconds without a datagram either way.  --max-conns,
 * --max-sessions and --max-per-source cap how many exist (in all, and from
 * one client address), and a datagram that would need one more is dropped:
 * a client that sends from many ports cannot take every descriptor.
 *
 * The table is keyed by the client address; TPROXY mode will add the
 * original destination to the key.
 */
#include <sys/socket.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "event.h"
#include "loop.h"
#include "net.h"
#include "opts.h"
#include "out.h"
#include "transparent.h"
#include "udp.h"

#define UDP_BATCH	64
#define UDP_SLOT	65536		/* > the largest UDP payload (65527) */
#define UDP_BATCHES	4		/* batches per wake-up, for fairness */
#define HASH_SIZE	4096		/* buckets; chains grow past that */

/* A session: the datagram transport's side of a connection. */
struct session {
	struct conn	*c;
	struct route	*r;
	struct sockname	 peer;		/* the client */
	struct sockname	 dst;		/* where it sent to */
	int		 upfd, upslot;	/* the upstream socket */
	int		 cfd, cslot;	/* TPROXY: the reply socket */
	struct buf	 first;		/* a datagram before upfd exists */
	struct source	*src;		/* its client address's count */
	struct session	*hnext;		/* hash chain */
};

/* The sessions of one client address (its port aside). */
struct source {
	uint8_t		 addr[16];	/* IPv4 in the first 4 bytes */
	int		 family;
	uint32_t	 bucket;	/* in sources[] */
	long		 n;
	struct source	*next;
};

static uint8_t		 slots[UDP_BATCH][UDP_SLOT];
static struct iovec	 iov[UDP_BATCH];
static struct mmsghdr	 msgs[UDP_BATCH];
static union sockaddr_any names[UDP_BATCH];
static uint8_t		 cmsgs[UDP_BATCH][CMSG_SPACE(sizeof(struct sockaddr_in6))];
static struct session	*table[HASH_SIZE];
static struct source	*sources[HASH_SIZE];
static long		 nsessions;

/*
 * Datagrams waiting to leave through one socket, sent together with
 * sendmmsg(): a burst of 16 datagrams costs one system call, not 16.  Only
 * datagrams still in the receive slots are queued, and the queue is sent
 * before the slots are read into again.
 */
static struct {
	int		 fd;
	int		 n;
	struct mmsghdr	 m[UDP_BATCH];
	struct iovec	 v[UDP_BATCH];
	struct session	*s[UDP_BATCH];
} outq;

static void session_error(struct session *ss, int err);
static void outq_flush(void);

/* FNV-1a over the client address and, in TPROXY mode, the destination. */
static uint32_t
name_hash(const struct sockname *sn, const struct sockname *dst)
{
	const uint8_t *p = (const uint8_t *)&sn->ss;
	uint32_t h = 2166136261u;
	socklen_t i;

	for (i = 0; i < sn->len; i++)
		h = (h ^ p[i]) * 16777619u;
	p = (const uint8_t *)&dst->ss;
	for (i = 0; i < dst->len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h % HASH_SIZE;
}

static int
name_eq(const struct sockname *a, const struct sockname *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* The session of (client, destination) on route r, or NULL. */
static struct session *
session_find(const struct route *r, const struct sockname *peer,
    const struct sockname *dst)
{
	struct session *ss;

	for (ss = table[name_hash(peer, dst)]; ss; ss = ss->hnext)
		if (ss->r == r && name_eq(&ss->peer, peer) &&
		    name_eq(&ss->dst, dst))
			return ss;
	return NULL;
}

static void
session_forget(struct session *ss)
{
	struct session **pp = &table[name_hash(&ss->peer, &ss->dst)];
	int i;

	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == ss) {
			*pp = ss->hnext;
			break;
		}
	for (i = 0; i < outq.n; i++)	/* queued datagrams point into ss */
		if (outq.s[i] == ss) {
			outq_flush();
			break;
		}
}

/* Reports a dropped datagram (at most once a second per kind). */
static void
drop_note(const struct route *r, const struct sockname *peer,
    const char *why)
{
	char a[ADDRSTR];

	sockname_str(peer, a, sizeof(a));
	diag_limited("tproxy: route %d: datagram from %s dropped: %s", r->id,
	    a, why);
}

/*
 * The count of peer's address (an IPv4-mapped IPv6 address counts as the
 * IPv4 one); created with n = 0 when create is set.  NULL when there is
 * none (or no memory).
 */
static struct source *
source_get(const struct sockname *peer, int create)
{
	struct source key, *s;
	uint32_t h = 2166136261u;
	size_t i, len;

	memset(&key, 0, sizeof(key));
	key.family = peer->ss.ss_family;
	if (key.family == AF_INET) {
		memcpy(key.addr, &((const struct sockaddr_in *)(const void *)
		    &peer->ss)->sin_addr, 4);
	} else if (key.family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)
		    (const void *)&peer->ss)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			key.family = AF_INET;
			memcpy(key.addr, a6->s6_addr + 12, 4);
		} else
			memcpy(key.addr, a6->s6_addr, 16);
	}
	len = key.family == AF_INET ? 4 : 16;
	for (i = 0; i < len; i++)
		h = (h ^ key.addr[i]) * 16777619u;
	h %= HASH_SIZE;
	for (s = sources[h]; s; s = s->next)
		if (s->family == key.family && memcmp(s->addr, key.addr,
		    sizeof(key.addr)) == 0)
			return s;
	if (!create || (s = malloc(sizeof(*s))) == NULL)
		return NULL;
	*s = key;
	s->bucket = h;
	s->next = sources[h];
	sources[h] = s;
	return s;
}

/* One session of s fewer; the count goes with the last. */
static void
source_put(struct source *s)
{
	struct source **pp;

	if (--s->n > 0)
		return;
	for (pp = &sources[s->bucket]; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			free(s);
			return;
		}
}

static int	 gso_broken;	/* the kernel refused UDP_SEGMENT once */

/*
 * Sends the whole queue as one GSO datagram train (UDP_SEGMENT): the
 * kernel cuts it into datagrams of the first one's size.  Possible when
 * every datagram goes to the same place and all but the last have that
 * size.  Returns 1 when sent, 0 when not possible (send them one by one).
 */
static int
outq_gso(void)
{
	union {
		char		 buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr	 align;
	} u;
	struct msghdr h;
	struct cmsghdr *cm;
	size_t seg = outq.v[0].iov_len, total = 0;
	uint16_t seg16;
	int i;

	if (gso_broken || outq.n < 2 || seg == 0)
		return 0;
	for (i = 0; i < outq.n; i++) {
		if (outq.m[i].msg_hdr.msg_name != outq.m[0].msg_hdr.msg_name ||
		    outq.v[i].iov_len > seg || (i < outq.n - 1 &&
		    outq.v[i].iov_len != seg) || outq.v[i].iov_len == 0)
			return 0;
		total += outq.v[i].iov_len;
	}
	if (total > 65000)
		return 0;
	memset(&h, 0, sizeof(h));
	h.msg_name = outq.m[0].msg_hdr.msg_name;
	h.msg_namelen = outq.m[0].msg_hdr.msg_namelen;
	h.msg_iov = outq.v;
	h.msg_iovlen = (size_t)outq.n;
	h.msg_control = u.buf;
	h.msg_controllen = sizeof(u.buf);
	cm = CMSG_FIRSTHDR(&h);
	cm->cmsg_level = SOL_UDP;
	cm->cmsg_type = UDP_SEGMENT;
	cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
	seg16 = (uint16_t)seg;
	memcpy(CMSG_DATA(cm), &seg16, sizeof(seg16));
	if (sendmsg(outq.fd, &h, 0) >= 0)
		return 1;
	if (errno == EINVAL || errno == EIO || errno == ENOPROTOOPT ||
	    errno == EOPNOTSUPP)
		gso_broken = 1;		/* one by one from now on */
	return 0;
}

/* Sends what is queued; a datagram the kernel refuses is dropped. */
static void
outq_flush(void)
{
	int off = 0, k;

	if (outq_gso()) {
		outq.n = 0;
		return;
	}

	while (off < outq.n) {
		k = sendmmsg(outq.fd, outq.m + off, (unsigned)(outq.n - off), 0);
		if (k > 0) {
			off += k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno != EAGAIN && outq.m[off].msg_hdr.msg_name ==
		    NULL && outq.s[off] != NULL)
			session_error(outq.s[off], errno);
		off++;		/* UDP: a datagram that cannot go is lost */
	}
	outq.n = 0;
}

/* Queues a datagram still in the slots; returns 0, or -1 to send it now. */
static int
outq_add(struct session *ss, int fd, const uint8_t *p, size_t n,
    const struct sockname *to)
{
	struct msghdr *h;

	if (p < &slots[0][0] || p >= &slots[UDP_BATCH - 1][0] + UDP_SLOT)
		return -1;
	if (outq.n > 0 && (outq.fd != fd || outq.n == UDP_BATCH))
		outq_flush();
	outq.fd = fd;
	outq.v[outq.n].iov_base = (void *)p;
	outq.v[outq.n].iov_len = n;
	h = &outq.m[outq.n].msg_hdr;
	memset(h, 0, sizeof(*h));
	h->msg_iov = &outq.v[outq.n];
	h->msg_iovlen = 1;
	if (to != NULL) {
		h->msg_name = (void *)&to->ss;
		h->msg_namelen = to->len;
	}
	outq.s[outq.n++] = ss;
	return 0;
}

static void
batch_prepare(void)
{
	int i;

	outq_flush();		/* the slots are about to be overwritten */
	for (i = 0; i < UDP_BATCH; i++) {
		iov[i].iov_base = slots[i];
		iov[i].iov_len = UDP_SLOT;
		memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &names[i];
		msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
		msgs[i].msg_hdr.msg_control = cmsgs[i];
		msgs[i].msg_hdr.msg_controllen = sizeof(cmsgs[i]);
	}
}

/* The original destination of datagram i (IP_RECVORIGDSTADDR). */
static int
orig_dst(int i, struct sockname *dst)
{
	struct msghdr *m = &msgs[i].msg_hdr;
	struct cmsghdr *cm;

	for (cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
		if ((cm->cmsg_level == SOL_IP &&
		    cm->cmsg_type == IP_ORIGDSTADDR) ||
		    (cm->cmsg_level == SOL_IPV6 &&
		    cm->cmsg_type == IPV6_ORIGDSTADDR)) {
			size_t n = cm->cmsg_len - CMSG_LEN(0);

			if (n > sizeof(dst->ss))
				return -1;
			memset(dst, 0, sizeof(*dst));
			memcpy(&dst->ss, CMSG_DATA(cm), n);
			dst->len = (socklen_t)n;
			return 0;
		}
	}
	return -1;
}

/*
 * An IPv4 datagram on a dual-stack socket comes from ::ffff:a.b.c.d but
 * with an IPv4 original destination: speak IPv4 to both.
 */
static void
unmap_v4(struct sockname *peer, const struct sockname *dst)
{
	struct sockaddr_in6 s6;
	struct sockaddr_in *s4 = (void *)&peer->ss;

	if (peer->ss.ss_family != AF_INET6 || dst->ss.ss_family != AF_INET)
		return;
	memcpy(&s6, &peer->ss, sizeof(s6));
	if (!IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr))
		return;
	memset(peer, 0, sizeof(*peer));
	s4->sin_family = AF_INET;
	s4->sin_port = s6.sin6_port;
	memcpy(&s4->sin_addr, s6.sin6_addr.s6_addr + 12, 4);
	peer->len = sizeof(*s4);
}


static void session_client_ready(void *arg, int revents);
static const struct transport datagram;

/*
 * TPROXY mode: a transparent socket bound to the original destination and
 * connected to the client, so replies come from the address the client
 * sent to; the client's next datagrams arrive on it too.  Returns 0 or -1.
 */
static int
session_reply_socket(struct session *ss)
{
	char err[ERRLEN], why[ERRLEN + 64];
	int fd, one = 1;

	fd = socket(ss->dst.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1 || net_transparent(fd, ss->dst.ss.ss_family, err,
	    sizeof(err)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, (struct sockaddr *)&ss->dst.ss, ss->dst.len) == -1 ||
	    connect(fd, (struct sockaddr *)&ss->peer.ss, ss->peer.len) == -1 ||
	    loop_add(fd, POLLIN, session_client_ready, ss, &ss->cslot) == -1) {
		if (fd == -1 || errno != EPERM)
			snprintf(err, sizeof(err), "%s", strerror(errno));
		snprintf(why, sizeof(why), "reply socket: %s", err);
		if (fd != -1)
			close(fd);
		conn_fail(ss->c, why);
		return -1;
	}
	ss->cfd = fd;
	return 0;
}

/*
 * Returns 1 (the session failed, with the reason) when orig refuses the
 * original destination, before a reply socket is bound to that address.
 */
static int
session_refused(struct session *ss)
{
	struct sockname to;
	char err[ERRLEN];

	if (ss->r->target.type != A_ORIG || orig_target(&ss->dst, 1,
	    &ss->r->target, &to, err, sizeof(err)) == 0)
		return 0;
	conn_fail(ss->c, err);
	return 1;
}

/* A new session for a datagram from peer to dst; NULL if none can be. */
static struct session *
session_new(struct route *r, const struct sockname *peer,
    const struct sockname *dst)
{
	struct session *ss;
	struct source *src;
	struct conn *c;
	uint32_t h;

	if (!conn_room()) {
		drop_note(r, peer, "--max-conns sessions exist");
		return NULL;
	}
	if (opt.max_sessions > 0 && nsessions >= opt.max_sessions) {
		drop_note(r, peer, "--max-sessions UDP sessions exist");
		return NULL;
	}
	src = source_get(peer, 0);
	if (opt.max_per_source > 0 && src != NULL &&
	    src->n >= opt.max_per_source) {
		drop_note(r, peer, "--max-per-source UDP sessions from its "
		    "address exist");
		return NULL;
	}
	if ((src == NULL && (src = source_get(peer, 1)) == NULL) ||
	    (ss = calloc(1, sizeof(*ss))) == NULL) {
		drop_note(r, peer, "out of memory");
		return NULL;
	}
	ss->r = r;
	ss->peer = *peer;
	ss->dst = *dst;
	ss->upfd = ss->cfd = -1;
	ss->upslot = ss->cslot = -1;
	if ((ss->c = conn_new(r, peer, dst, &datagram, ss)) == NULL) {
		drop_note(r, peer, "out of memory");
		free(ss);
		src->n++;
		source_put(src);	/* frees it if it was new */
		return NULL;
	}
	ss->src = src;
	src->n++;
	nsessions++;
	h = name_hash(peer, dst);
	ss->hnext = table[h];
	table[h] = ss;
	if (r->listen.type == A_UDP_TPROXY && session_refused(ss))
		return NULL;
	if (r->listen.type == A_UDP_TPROXY && session_reply_socket(ss) == -1)
		return NULL;
	c = ss->c;
	conn_start(c);
	return conn_closed(c) ? NULL : ss;
}

/* The route's socket: new clients make sessions, datagrams go on. */
void
udp_listen_ready(struct route *r)
{
	struct sockname peer, dst;
	struct session *ss;
	int b, i, n, tp = r->listen.type == A_UDP_TPROXY;

	for (b = 0; b < UDP_BATCHES; b++) {
		batch_prepare();
		n = recvmmsg(r->lfd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			peer.len = msgs[i].msg_hdr.msg_namelen;
			if (peer.len > sizeof(peer.ss))
				peer.len = sizeof(peer.ss);
			memcpy(&peer.ss, &names[i], peer.len);
			if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
				drop_note(r, &peer, "truncated");
				continue;
			}
			dst = r->lname;
			if (tp && orig_dst(i, &dst) == -1) {
				drop_note(r, &peer, "no original destination");
				continue;
			}
			if (tp)
				unmap_v4(&peer, &dst);
			ss = session_find(r, &peer, &dst);
			if (ss == NULL && (ss = session_new(r, &peer, &dst)) ==
			    NULL)
				continue;
			conn_input(ss->c, C2S, slots[i], msgs[i].msg_len);
		}
		if (n < UDP_BATCH)
			break;
	}
	outq_flush();
}

static void
session_error(struct session *ss, int err)
{
	char why[ERRLEN], a[ADDRSTR];

	flowaddr_str(&conn_flow(ss->c)->server, a, sizeof(a));
	if (err == ECONNREFUSED)
		snprintf(why, sizeof(why), "upstream %s refused a datagram "
		    "(ICMP port unreachable)", a);
	else
		snprintf(why, sizeof(why), "upstream %s: %s", a,
		    strerror(err));
	ev_error(conn_flow(ss->c), why);	/* the session stays */
}

/* A session's upstream socket: replies go back to the client. */
static void
session_ready(void *arg, int revents)
{
	struct session *ss = arg;
	struct conn *c = ss->c;
	int b, i, n;

	(void)revents;
	for (b = 0; b < UDP_BATCHES && conn_open(c); b++) {
		batch_prepare();
		n = recvmmsg(ss->upfd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				session_error(ss, errno);
			break;
		}
		for (i = 0; i < n && conn_open(c); i++)
			if (!(msgs[i].msg_hdr.msg_flags & MSG_TRUNC))
				conn_input(c, S2C, slots[i], msgs[i].msg_len);
		if (n < UDP_BATCH)
			break;
	}
	outq_flush();
}

/* TPROXY mode: the client's later datagrams arrive on the reply socket. */
static void
session_client_ready(void *arg, int revents)
{
	struct session *ss = arg;
	struct conn *c = ss->c;
	int b, i, n;

	(void)revents;
	for (b = 0; b < UDP_BATCHES && !conn_closed(c); b++) {
		batch_prepare();
		n = recvmmsg(ss->cfd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			break;
		for (i = 0; i < n && !conn_closed(c); i++)
			if (!(msgs[i].msg_hdr.msg_flags & MSG_TRUNC))
				conn_input(c, C2S, slots[i], msgs[i].msg_len);
		if (n < UDP_BATCH)
			break;
	}
	outq_flush();
}

/* Sends one datagram toward a side; a full socket buffer drops it (UDP). */
static void
dgram_send(struct conn *c, void *tp, int to_server, const uint8_t *p,
    size_t n)
{
	struct session *ss = tp;
	ssize_t w;

	(void)c;
	if (to_server && ss->upfd < 0) {	/* before the upstream socket */
		if (buf_pending(&ss->first) == 0 &&
		    buf_append(&ss->first, p, n) == -1)
			drop_note(ss->r, &ss->peer, "out of memory");
		return;
	}
	if (to_server || ss->cfd >= 0) {	/* upstream, or a reply socket */
		int fd = to_server ? ss->upfd : ss->cfd;

		if (outq_add(ss, fd, p, n, NULL) == 0)
			return;
		outq_flush();
		w = send(fd, p, n, 0);
	} else {			/* to the client, from the route's socket */
		if (outq_add(ss, ss->r->lfd, p, n, &ss->peer) == 0)
			return;
		outq_flush();
		w = sendto(ss->r->lfd, p, n, 0,
		    (const struct sockaddr *)&ss->peer.ss, ss->peer.len);
	}
	if (w < 0 && errno != EAGAIN && errno != EINTR) {
		if (to_server)
			session_error(ss, errno);
		else
			drop_note(ss->r, &ss->peer, strerror(errno));
	}
}

/*
 * Takes the session's upstream socket (connected by net_connect()) and
 * sends what the chain produced before it existed.  Returns 1 (open at
 * once), or -1 (no memory; the socket is closed).
 */
static int
dgram_connected(struct conn *c, void *tp, int fd)
{
	struct session *ss = tp;

	if (loop_add(fd, POLLIN, session_ready, ss, &ss->upslot) == -1) {
		close(fd);
		return -1;
	}
	ss->upfd = fd;
	if (buf_pending(&ss->first) > 0) {	/* the first datagram */
		dgram_send(c, ss, 1, ss->first.data + ss->first.off,
		    buf_pending(&ss->first));
		buf_free(&ss->first);
	}
	return 1;
}

/* Datagrams have no end of stream and no back-pressure. */
static void
dgram_shut(struct conn *c, void *tp, int to_server)
{
	(void)c;
	(void)tp;
	(void)to_server;
}

static void
dgram_update(struct conn *c, void *tp)
{
	(void)c;
	(void)tp;
}

static void
dgram_opened(struct conn *c, void *tp)
{
	(void)c;
	(void)tp;
}

static int
dgram_room(struct conn *c, void *tp, enum dir d)
{
	(void)c;
	(void)tp;
	(void)d;
	return 1;
}

static void
dgram_close(struct conn *c, void *tp, int reset)
{
	struct session *ss = tp;

	(void)c;
	(void)reset;
	session_forget(ss);
	if (ss->src != NULL) {
		source_put(ss->src);
		ss->src = NULL;
		nsessions--;
	}
	if (ss->upfd >= 0) {
		loop_del(&ss->upslot);
		close(ss->upfd);
		ss->upfd = -1;
	}
	if (ss->cfd >= 0) {
		loop_del(&ss->cslot);
		close(ss->cfd);
		ss->cfd = -1;
	}
	buf_free(&ss->first);
}

static void
dgram_free(void *tp)
{
	free(tp);
}

static const struct transport datagram = {
	.sock_type = SOCK_DGRAM,
	.expired = "expired",
	.connected = dgram_connected,
	.opened = dgram_opened,
	.send = dgram_send,
	.shut = dgram_shut,
	.room = dgram_room,
	.update = dgram_update,
	.close = dgram_close,
	.free = dgram_free,
};
