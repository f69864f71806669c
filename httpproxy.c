/*
 * httpproxy.c - the client's stream of an http-listen connection that
 * forwards absolute-URI requests (GET http://host/path HTTP/1.1).  A small
 * state machine follows the requests' framing: a head is gathered (at most
 * HTTP_HEAD_MAX bytes), parsed by httpreq.c and sent on in origin form;
 * then its body, as many bytes as Content-Length says, or chunk by chunk
 * up to the last chunk and its trailer; then the next head.  A request for
 * another host:port than the connection's first is refused (400): the
 * upstream is chosen once per connection.
 *
 *   chunked-body = *chunk last-chunk trailer EOL
 *   chunk        = chunk-size [ext] EOL data EOL
 *   last-chunk   = 1*"0" [ext] EOL
 *   trailer      = *( field-line EOL )
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpproxy.h"
#include "parse.h"

#define SIZE_LINE_MAX	4096		/* chunk-size and extensions */
#define TRAILER_MAX	HTTP_HEAD_MAX

enum hp_state {
	HP_HEAD,			/* gathering a request head */
	HP_BODY,			/* left: bytes of a Content-Length body */
	HP_CSIZE,			/* a chunk-size line */
	HP_CDATA,			/* left: chunk data and its EOL */
	HP_TRAILER,			/* trailer lines, up to an empty one */
};

struct hp {
	enum hp_state	 state;
	char		 host[256];
	uint16_t	 port;
	uint64_t	 left;
	uint64_t	 csize;		/* the chunk-size being read */
	size_t		 linelen;	/* bytes of the current line */
	size_t		 total;		/* of the size line or the trailer */
	int		 digits;	/* hex digits of the size seen */
	int		 ext;		/* in a chunk extension */
	uint8_t		*head;		/* HP_HEAD: the head so far */
	size_t		 headlen;
};

/* After a head: where its body takes the state. */
static void
body_start(struct hp *h, const struct httpreq *r)
{
	h->left = r->clen;
	h->linelen = h->total = 0;
	h->csize = 0;
	h->digits = h->ext = 0;
	if (r->chunked)
		h->state = HP_CSIZE;
	else
		h->state = r->clen > 0 ? HP_BODY : HP_HEAD;
}

struct hp *
hp_new(const struct httpreq *r)
{
	struct hp *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	memcpy(h->host, r->host, sizeof(h->host));
	h->port = r->port;
	body_start(h, r);
	return h;
}

void
hp_free(struct hp *h)
{
	if (h == NULL)
		return;
	free(h->head);
	free(h);
}

size_t
hp_response(char *out, size_t len, int status, const char *why)
{
	const char *text = status == 400 ? "Bad Request" : status == 431 ?
	    "Request Header Fields Too Large" : status == 502 ? "Bad Gateway" :
	    "Error";
	int n;

	n = snprintf(out, len, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n", status,
	    text, strlen(why) + 1, why);
	return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}

/*
 * Takes head bytes from p; returns how many, or -1 (refused).  A whole
 * head goes upstream rewritten.
 */
static ssize_t
head_take(struct hp *h, const uint8_t *p, size_t n, hp_emit emit, void *arg,
    int *status, const char **why)
{
	struct httpreq r;
	size_t take = n, before = h->headlen;
	uint8_t *out;
	int rc;

	if (take > HTTP_HEAD_MAX - h->headlen)
		take = HTTP_HEAD_MAX - h->headlen;
	if (h->head == NULL && (h->head = malloc(HTTP_HEAD_MAX + 1)) == NULL) {
		*why = "out of memory";
		*status = 0;
		return -1;
	}
	memcpy(h->head + h->headlen, p, take);
	h->headlen += take;
	rc = httpreq_parse(h->head, h->headlen, &r, why);
	if (rc == 0)
		return (ssize_t)take;
	if (rc == -1) {
		*status = r.status;
		return -1;
	}
	if (r.connect || strcmp(r.host, h->host) != 0 || r.port != h->port) {
		*why = r.connect ? "CONNECT after a forwarded request" :
		    "a request for another host:port than the connection's "
		    "first";
		*status = 400;
		return -1;
	}
	if ((out = malloc(r.len + 1)) == NULL) {
		*why = "out of memory";
		*status = 0;
		return -1;
	}
	emit(arg, out, httpreq_origin(h->head, &r, out));
	free(out);
	free(h->head);
	h->head = NULL;
	h->headlen = 0;
	body_start(h, &r);
	return (ssize_t)(r.len - before);
}

/* One byte of a chunk-size line; returns 0, or -1 (why). */
static int
size_byte(struct hp *h, uint8_t ch, const char **why)
{
	int v;

	if (++h->total > SIZE_LINE_MAX) {
		*why = "chunk-size line too long";
		return -1;
	}
	if (ch == '\n') {
		if (h->digits == 0) {
			*why = "bad chunk size";
			return -1;
		}
		h->left = h->csize;
		h->total = h->linelen = 0;
		h->state = h->csize == 0 ? HP_TRAILER : HP_CDATA;
		if (h->csize > 0)
			h->left += 2;		/* the data's EOL */
		h->csize = 0;
		h->digits = h->ext = 0;
		return 0;
	}
	if (h->ext || ch == '\r')
		return 0;
	if (ch == ';' || ch == ' ' || ch == '\t') {
		h->ext = 1;
		return 0;
	}
	if ((v = hexval(ch)) == -1 || h->csize >> 59 != 0) {
		*why = "bad chunk size";
		return -1;
	}
	h->csize = h->csize << 4 | (uint64_t)v;
	h->digits = 1;
	return 0;
}

/* One byte of the trailer; returns 0, or -1 (why). */
static int
trailer_byte(struct hp *h, uint8_t ch, const char **why)
{
	if (++h->total > TRAILER_MAX) {
		*why = "chunked trailer too long";
		return -1;
	}
	if (ch == '\n') {
		if (h->linelen == 0) {
			h->state = HP_HEAD;
			h->total = 0;
		}
		h->linelen = 0;
	} else if (ch != '\r')
		h->linelen++;
	return 0;
}

int
hp_feed(struct hp *h, const uint8_t *p, size_t n, hp_emit emit, void *arg,
    int *status, const char **why)
{
	size_t i, k = 0;
	ssize_t t;

	while (n > 0) {
		switch (h->state) {
		case HP_HEAD:
			if ((t = head_take(h, p, n, emit, arg, status, why)) ==
			    -1)
				return -1;
			p += t;
			n -= (size_t)t;
			continue;
		case HP_BODY:
		case HP_CDATA:
			k = h->left < n ? (size_t)h->left : n;
			h->left -= k;
			if (h->left == 0)
				h->state = h->state == HP_BODY ? HP_HEAD :
				    HP_CSIZE;
			break;
		case HP_CSIZE:
		case HP_TRAILER:
			for (i = 0; i < n && (h->state == HP_CSIZE ||
			    h->state == HP_TRAILER); i++)
				if ((h->state == HP_CSIZE ? size_byte(h, p[i],
				    why) : trailer_byte(h, p[i], why)) == -1) {
					*status = 400;
					return -1;
				}
			k = i;
			break;
		}
		emit(arg, p, k);
		p += k;
		n -= k;
	}
	return 0;
}
