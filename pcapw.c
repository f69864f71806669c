/*
 * pcapw.c - a relayed connection written as packets that Wireshark and
 * tshark read.  The reference is Wireshark's own description of the
 * format (wiki.wireshark.org/Development/LibpcapFileFormat) and the
 * tcpdump.org list of link types.
 *
 * The file is the classic pcap format, in this machine's byte order (a
 * reader tells it from the magic number):
 *
 *   file header, 24 bytes:
 *     magic 0xa1b2c3d4 (microsecond timestamps), version 2.4,
 *     thiszone 0, sigfigs 0, snaplen 65535, network 101
 *   then one record per packet:
 *     ts_sec, ts_usec, incl_len, orig_len   (4 bytes each; incl = orig)
 *     the packet: IPv4 (20 bytes) or IPv6 (40), TCP (20; 28 with the
 *     MSS and window scale options on SYNs) or UDP (8), then the payload
 *
 * The link type is LINKTYPE_RAW (101): each packet begins with its IP
 * header and the reader takes the version from its first nibble, so IPv4
 * and IPv6 connections can share one file.  LINKTYPE_IPV4 (228) and
 * LINKTYPE_IPV6 (229) would need one file per family, and
 * LINKTYPE_ETHERNET (1) 14 more bytes a packet with made-up MAC addresses
 * that say nothing.
 *
 * Every checksum is correct: the IPv4 header's, and TCP's and UDP's over
 * their pseudo-header, so nothing is flagged when a user turns checksum
 * validation on (a zero UDP checksum would mean "none" over IPv4, but is
 * illegal over IPv6).  A payload is at most PCAPW_SPLIT bytes, so that an
 * IPv4 packet's length fits its 16-bit field and a record the snaplen;
 * longer chunks become several packets, never a truncated one.
 *
 * TCP: the client's SYN, the server's SYN-ACK and the client's ACK open
 * the conversation; each packet acknowledges everything the other side
 * sent so far.  The SYNs announce an MSS of 65495 (loopback's, more than
 * any payload here) and a window scale (shift 14) that makes the window
 * 1 GiB; a pure ACK follows when one side has sent 256 MiB that the other
 * has not acknowledged, so a one-way transfer never looks stuck on a full
 * window.  Checksum validation is off by default in Wireshark; with it
 * on, nothing is flagged either.
 */
#include <sys/time.h>

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "pcapw.h"

#define PCAP_MAGIC	0xa1b2c3d4u
#define LINKTYPE_RAW	101
#define SNAPLEN		65535

enum {				/* TCP flags, as on the wire */
	TH_FIN = 0x01,
	TH_SYN = 0x02,
	TH_RST = 0x04,
	TH_PSH = 0x08,
	TH_ACK = 0x10,
};

#define MSS		65495		/* loopback's: no packet is longer */
#define WSCALE		14		/* window 65535 << 14: 1 GiB */
#define ACK_EVERY	(256u << 20)	/* unacknowledged bytes before an ACK */

enum { CLIENT = 0, SERVER = 1 };

struct pcapw {
	pcapw_emit	*emit;
	void		*arg;
	uint8_t		 addr[2][16];	/* [CLIENT], [SERVER]: network order */
	uint8_t		 port[2][2];
	uint32_t	 seq[2];	/* the next sequence number of each side */
	uint32_t	 acked[2];	/* how far the other side acknowledged it */
	uint16_t	 ipid;
	uint8_t		 v6, udp;
	uint8_t		 fin[2], last_fin, ended;
};

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/*
 * The Internet checksum (RFC 1071) adds 16-bit words in one's complement;
 * the sum does not depend on byte order as long as the result is stored
 * in the order it was computed in, so bytes are added as native 32-bit
 * words and the result is stored with memcpy.  Every piece but the last
 * has an even length.  Returns the running sum.
 */
static uint64_t
csum_add(uint64_t acc, const uint8_t *p, size_t n)
{
	uint64_t q[4], c = 0;
	uint32_t a;
	uint16_t s;
	uint8_t last[2];
	int i;

	/*
	 * 64-bit words, their carries counted apart: a carry out of bit 63
	 * is worth 1 (2^64 is 1 modulo 2^16 - 1), as in the 16-bit sum
	 */
	for (; n >= 32; p += 32, n -= 32) {
		memcpy(q, p, 32);
		for (i = 0; i < 4; i++) {
			acc += q[i];
			c += acc < q[i];
		}
	}
	acc = (acc & 0xffffffff) + (acc >> 32) + c;
	for (; n >= 4; p += 4, n -= 4) {
		memcpy(&a, p, 4);
		acc += a;
	}
	if (n >= 2) {
		memcpy(&s, p, 2);
		acc += s;
		p += 2;
		n -= 2;
	}
	if (n == 1) {
		last[0] = p[0];
		last[1] = 0;
		memcpy(&s, last, 2);
		acc += s;
	}
	return acc;
}

/* Folds the sum and stores its complement at p (2 bytes). */
static void
csum_put(uint8_t *p, uint64_t acc, int udp)
{
	uint16_t s;

	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	s = (uint16_t)~acc;
	if (udp && s == 0)		/* 0 would mean "no checksum" */
		s = 0xffff;
	memcpy(p, &s, 2);
}

void
pcapw_file_header(uint8_t h[PCAPW_FILEHDR])
{
	uint32_t v32;
	uint16_t v16;

	memset(h, 0, PCAPW_FILEHDR);
	v32 = PCAP_MAGIC;
	memcpy(h, &v32, 4);
	v16 = 2;			/* version 2.4 */
	memcpy(h + 4, &v16, 2);
	v16 = 4;
	memcpy(h + 6, &v16, 2);
	v32 = SNAPLEN;			/* thiszone, sigfigs: 0 */
	memcpy(h + 16, &v32, 4);
	v32 = LINKTYPE_RAW;
	memcpy(h + 20, &v32, 4);
}

/*
 * Writes the record header, the IP header and the TCP (or UDP) header of
 * a packet from side with n payload bytes into h; the TCP header uses
 * seq, ack and flags.  Returns the length written.
 */
static size_t
headers(const struct pcapw *w, int side, uint8_t *h, uint32_t seq,
    uint32_t ack, uint8_t flags, const uint8_t *p, size_t n)
{
	const uint8_t *src = w->addr[side], *dst = w->addr[!side];
	size_t alen = w->v6 ? 16 : 4, iph = w->v6 ? 40 : 20;
	size_t l4h = w->udp ? 8 : (flags & TH_SYN) ? 28 : 20;
	size_t l4len = l4h + n, caplen = iph + l4len;
	uint8_t *ip = h + 16, *l4 = ip + iph, pseudo[40];
	uint8_t proto = w->udp ? IPPROTO_UDP : IPPROTO_TCP;
	struct timeval tv;
	uint32_t v32;
	uint64_t acc;

	gettimeofday(&tv, NULL);
	v32 = (uint32_t)tv.tv_sec;
	memcpy(h, &v32, 4);
	v32 = (uint32_t)tv.tv_usec;
	memcpy(h + 4, &v32, 4);
	v32 = (uint32_t)caplen;
	memcpy(h + 8, &v32, 4);
	memcpy(h + 12, &v32, 4);

	memset(ip, 0, iph + l4h);
	if (w->v6) {
		ip[0] = 0x60;
		put16(ip + 4, (uint16_t)l4len);
		ip[6] = proto;
		ip[7] = 64;		/* hop limit */
		memcpy(ip + 8, src, 16);
		memcpy(ip + 24, dst, 16);
	} else {
		ip[0] = 0x45;
		put16(ip + 2, (uint16_t)caplen);
		put16(ip + 4, w->ipid);
		put16(ip + 6, 0x4000);	/* don't fragment */
		ip[8] = 64;		/* TTL */
		ip[9] = proto;
		memcpy(ip + 12, src, 4);
		memcpy(ip + 16, dst, 4);
		csum_put(ip + 10, csum_add(0, ip, 20), 0);
	}

	memcpy(l4, w->port[side], 2);
	memcpy(l4 + 2, w->port[!side], 2);
	if (w->udp)
		put16(l4 + 4, (uint16_t)l4len);
	else {
		put32(l4 + 4, seq);
		put32(l4 + 8, ack);
		l4[12] = (uint8_t)((l4h / 4) << 4);
		l4[13] = flags;
		put16(l4 + 14, 0xffff);	/* window */
		if (flags & TH_SYN) {	/* MSS, NOP, window scale */
			l4[20] = 2;
			l4[21] = 4;
			put16(l4 + 22, MSS);
			l4[24] = 1;
			l4[25] = 3;
			l4[26] = 3;
			l4[27] = WSCALE;
		}
	}

	/* the pseudo-header: addresses, protocol, length */
	memset(pseudo, 0, sizeof(pseudo));
	memcpy(pseudo, src, alen);
	memcpy(pseudo + alen, dst, alen);
	if (w->v6) {
		put32(pseudo + 32, (uint32_t)l4len);
		pseudo[39] = proto;
	} else {
		pseudo[9] = proto;
		put16(pseudo + 10, (uint16_t)l4len);
	}
	acc = csum_add(0, pseudo, w->v6 ? 40 : 12);
	acc = csum_add(acc, l4, l4h);
	acc = csum_add(acc, p, n);
	csum_put(l4 + (w->udp ? 6 : 16), acc, w->udp);
	return 16 + iph + l4h;
}

/* One TCP segment from side: acknowledges all the other side sent. */
static void
segment(struct pcapw *w, int side, uint8_t flags, const uint8_t *p, size_t n)
{
	uint8_t h[PCAPW_HDRMAX];
	size_t hl;

	hl = headers(w, side, h, w->seq[side], (flags & TH_ACK) ?
	    w->seq[!side] : 0, flags, p, n);
	w->ipid++;
	w->emit(w->arg, h, hl, p, n);
	w->seq[side] += (uint32_t)n + ((flags & (TH_SYN | TH_FIN)) ? 1 : 0);
	if (flags & TH_ACK)
		w->acked[!side] = w->seq[!side];
}

/*
 * Takes one end's address and port; ends that are not IP (Unix sockets)
 * get stand-ins.  Returns 1 for an IPv6 address, 0 for IPv4.
 */
static int
end_addr(struct pcapw *w, int side, const struct sockaddr *sa, uint64_t seed)
{
	const struct sockaddr_in *s4 = (const void *)sa;
	const struct sockaddr_in6 *s6 = (const void *)sa;

	memset(w->addr[side], 0, 16);
	if (sa->sa_family == AF_INET) {
		memcpy(w->addr[side], &s4->sin_addr, 4);
		memcpy(w->port[side], &s4->sin_port, 2);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(w->addr[side], &s6->sin6_addr, 16);
		memcpy(w->port[side], &s6->sin6_port, 2);
		if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			return 1;
		memmove(w->addr[side], w->addr[side] + 12, 4);
		memset(w->addr[side] + 4, 0, 12);
	} else {
		/* the client 127.0.0.2 on a port from the id, the server 127.0.0.1:0 */
		w->addr[side][0] = 127;
		w->addr[side][3] = side == CLIENT ? 2 : 1;
		put16(w->port[side], side == CLIENT ?
		    (uint16_t)(1024 + seed % 64512) : 0);
	}
	return 0;
}

struct pcapw *
pcapw_new(const struct sockaddr *client, const struct sockaddr *dst, int udp,
    uint64_t seed, pcapw_emit *emit, void *arg)
{
	const struct sockaddr *sa[2] = { client, dst };
	struct pcapw *w;
	int side, v4[2];

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->emit = emit;
	w->arg = arg;
	w->udp = udp != 0;
	for (side = CLIENT; side <= SERVER; side++)
		v4[side] = !end_addr(w, side, sa[side], seed);
	w->v6 = !v4[CLIENT] || !v4[SERVER];
	/* one end IPv4, the other IPv6: the IPv4 one as ::ffff:a.b.c.d */
	for (side = CLIENT; side <= SERVER && w->v6; side++)
		if (v4[side]) {
			memmove(w->addr[side] + 12, w->addr[side], 4);
			memset(w->addr[side], 0, 10);
			w->addr[side][10] = w->addr[side][11] = 0xff;
		}
	w->seq[CLIENT] = (uint32_t)(seed * 2654435761u) ^ 0x10000000u;
	w->seq[SERVER] = (uint32_t)(seed * 2246822519u) ^ 0x70000000u;
	return w;
}

void
pcapw_begin(struct pcapw *w)
{
	if (w->udp)
		return;
	segment(w, CLIENT, TH_SYN, NULL, 0);
	segment(w, SERVER, TH_SYN | TH_ACK, NULL, 0);
	segment(w, CLIENT, TH_ACK, NULL, 0);
}

void
pcapw_data(struct pcapw *w, int from_server, const uint8_t *p, size_t n)
{
	int side = from_server ? SERVER : CLIENT;
	uint8_t h[PCAPW_HDRMAX];
	size_t k, hl;

	for (; n > 0; p += k, n -= k) {
		k = n > PCAPW_SPLIT ? PCAPW_SPLIT : n;
		if (w->udp) {
			hl = headers(w, side, h, 0, 0, 0, p, k);
			w->ipid++;
			w->emit(w->arg, h, hl, p, k);
			continue;
		}
		segment(w, side, TH_PSH | TH_ACK, p, k);
		if (w->seq[side] - w->acked[side] >= ACK_EVERY)
			segment(w, !side, TH_ACK, NULL, 0);
	}
}

void
pcapw_fin(struct pcapw *w, int from_server)
{
	int side = from_server ? SERVER : CLIENT;

	if (w->udp || w->ended || w->fin[side])
		return;
	segment(w, side, TH_FIN | TH_ACK, NULL, 0);
	w->fin[side] = 1;
	w->last_fin = (uint8_t)side;
}

void
pcapw_end(struct pcapw *w, int reset)
{
	if (w->udp || w->ended)
		return;
	if (reset && !(w->fin[CLIENT] && w->fin[SERVER])) {
		segment(w, w->fin[CLIENT] ? SERVER : CLIENT, TH_RST | TH_ACK,
		    NULL, 0);
		w->ended = 1;
		return;
	}
	pcapw_fin(w, 0);
	pcapw_fin(w, 1);
	segment(w, !w->last_fin, TH_ACK, NULL, 0);
	w->ended = 1;
}

void
pcapw_free(struct pcapw *w)
{
	free(w);
}
