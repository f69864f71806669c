/*
 * pcapw.h - packets for a pcap file, made up for a connection that tproxy
 * relays: a pcap file header, and per connection the IPv4 or IPv6 and TCP
 * or UDP headers in front of the bytes that passed, with a TCP
 * conversation (handshake, sequence and acknowledgement numbers, FIN or
 * RST) around them.  Where the records go is the caller's business.
 */
#ifndef PCAPW_H
#define PCAPW_H

#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#define PCAPW_FILEHDR	24		/* the pcap file header */
#define PCAPW_HDRMAX	(16 + 40 + 28)	/* record + IPv6 + TCP with options */
#define PCAPW_SPLIT	65000		/* most payload bytes in one packet */

/*
 * One record: hdr[0..hl) (the record header and the packet's headers) then
 * p[0..n), the payload.  The callback writes it whole or not at all.
 */
typedef void	pcapw_emit(void *arg, const uint8_t *hdr, size_t hl,
		    const uint8_t *p, size_t n);

struct pcapw;

/* Fills h with the file header (microsecond timestamps, LINKTYPE_RAW). */
void	 pcapw_file_header(uint8_t h[PCAPW_FILEHDR]) __attribute__((nonnull));
/*
 * A connection between client and dst (IPv4 or IPv6; any other family is
 * given stand-in loopback addresses), TCP unless udp; seed (the connection
 * id) picks the initial sequence numbers.  Returns NULL when out of memory.
 */
struct pcapw *pcapw_new(const struct sockaddr *client,
	    const struct sockaddr *dst, int udp, uint64_t seed,
	    pcapw_emit *emit, void *arg) __attribute__((nonnull(1, 2, 5)));
/* TCP: the three-way handshake.  Nothing for UDP. */
void	 pcapw_begin(struct pcapw *w) __attribute__((nonnull));
/* Bytes from the client (from_server 0) or the server, split as needed. */
void	 pcapw_data(struct pcapw *w, int from_server, const uint8_t *p,
	    size_t n) __attribute__((nonnull(1)));
/* TCP: that side's FIN (once).  Nothing for UDP. */
void	 pcapw_fin(struct pcapw *w, int from_server) __attribute__((nonnull));
/*
 * TCP: the end.  Reset: one RST (from a side whose stream was still open,
 * the client's if both were).  Otherwise the FINs not sent yet and the
 * last ACK.  Nothing for UDP.
 */
void	 pcapw_end(struct pcapw *w, int reset) __attribute__((nonnull));
void	 pcapw_free(struct pcapw *w);

#endif /* PCAPW_H */
