/*
 * explicit.c - the handshake of the explicit proxy listeners, between the
 * accept and the choice of the upstream:
 *
 *   socks5-listen: greeting -> method (no authentication, or RFC 1929
 *                  user/password when auth= is set) -> [auth -> status] ->
 *                  CONNECT request; the reply waits for the upstream.
 *   http-listen:   one request head: CONNECT host:port (200 once the
 *                  upstream is reached), or an absolute-URI request that
 *                  is forwarded in origin form (httpproxy.c).
 *
 * The parsers are socks5.c and httpreq.c; this file keeps the step a
 * connection is at and turns each result into a reply.  Every message is
 * read into a bounded buffer: the stream transport peeks what came, and
 * takes out of the socket only the bytes of the messages consumed.
 */
#include <stdlib.h>
#include <string.h>

#include "explicit.h"
#include "httpreq.h"
#include "socks5.h"

#define S5_BUF		(S5_AUTH_MAX + 1)

enum xp_step {
	XS_GREETING,
	XS_AUTH,
	XS_REQUEST,
	XS_HEAD,
	XS_DONE,
};

struct xp {
	enum xp_step	 step;
	const char	*auth;		/* USER:PASS, or NULL */
	uint8_t		*buf;
	size_t		 len, cap;	/* of the message being read */
	char		 host[256];
	uint16_t	 port;
	struct httpreq	 req;		/* http-listen: the first request */
	int		 http;
};

static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";

struct xp *
xp_new(const struct addr *l)
{
	struct xp *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return NULL;
	x->http = l->type == A_HTTP_LISTEN;
	x->step = x->http ? XS_HEAD : XS_GREETING;
	x->cap = x->http ? HTTP_HEAD_MAX : S5_BUF;
	x->auth = l->auth[0] ? l->auth : NULL;
	if ((x->buf = malloc(x->cap)) == NULL) {
		free(x);
		return NULL;
	}
	return x;
}

void
xp_free(struct xp *x)
{
	if (x == NULL)
		return;
	free(x->buf);
	free(x);
}

uint8_t *
xp_room(struct xp *x, size_t *room)
{
	*room = x->cap - x->len;
	return x->buf + x->len;
}

const char *
xp_host(const struct xp *x)
{
	return x->host;
}

uint16_t
xp_port(const struct xp *x)
{
	return x->port;
}

int
xp_is_forward(const struct xp *x)
{
	return x->http && !x->req.connect;
}

static void
reply(struct xp_out *o, const void *p, size_t n)
{
	memcpy(o->reply, p, n);
	o->rlen = n;
}

static enum xp_rc
fail(struct xp_out *o, const char *why)
{
	o->why = why;
	return XP_FAIL;
}

/* Compares without stopping at the first difference. */
static int
same(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i;
	unsigned d = la != lb;

	for (i = 0; i < la; i++)
		d |= (unsigned)(a[i] ^ b[i % (lb ? lb : 1)]);
	return d == 0;
}

/* Returns 1 if user and pass are those of auth=USER:PASS. */
static int
auth_ok(const char *auth, const char *user, const char *pass)
{
	const char *colon = strchr(auth, ':');
	char u[256];
	size_t ul = (size_t)(colon - auth);

	if (ul >= sizeof(u))
		return 0;
	memcpy(u, auth, ul);
	u[ul] = '\0';
	return same(u, user) & same(colon + 1, pass);
}

/* A whole SOCKS message of len bytes is in x->buf. */
static enum xp_rc
socks_step(struct xp *x, size_t len, struct xp_out *o)
{
	static const uint8_t none[] = { S5_VERSION, S5_M_NONE },
	    userpass[] = { S5_VERSION, S5_M_USERPASS },
	    noaccept[] = { S5_VERSION, S5_M_NOACCEPT },
	    authok[] = { S5_AUTH_VERSION, 0 }, authbad[] = { S5_AUTH_VERSION, 1 };
	char user[256], pass[256];
	const char *bad = NULL;
	struct s5_req r;
	unsigned methods = 0;
	size_t l;

	switch (x->step) {
	case XS_GREETING:
		(void)s5_greeting(x->buf, len, &l, &methods, &bad);
		if (x->auth != NULL && (methods & 1u << S5_M_USERPASS)) {
			reply(o, userpass, sizeof(userpass));
			x->step = XS_AUTH;
		} else if (x->auth == NULL && (methods & 1u << S5_M_NONE)) {
			reply(o, none, sizeof(none));
			x->step = XS_REQUEST;
		} else {
			reply(o, noaccept, sizeof(noaccept));
			return fail(o, x->auth ? "SOCKS client offers no "
			    "user/password authentication" : "SOCKS client "
			    "offers no method without authentication");
		}
		return XP_NEXT;
	case XS_AUTH:
		(void)s5_auth(x->buf, len, &l, user, pass, &bad);
		if (!auth_ok(x->auth, user, pass)) {
			reply(o, authbad, sizeof(authbad));
			return fail(o, "wrong SOCKS user name or password");
		}
		reply(o, authok, sizeof(authok));
		x->step = XS_REQUEST;
		return XP_NEXT;
	default:
		(void)s5_request(x->buf, len, &r, &bad);
		if (r.cmd != S5_CMD_CONNECT) {
			o->rlen = s5_reply(o->reply, S5_BADCMD, NULL);
			return fail(o, r.cmd == S5_CMD_BIND ? "SOCKS BIND is "
			    "not supported" : r.cmd == S5_CMD_UDP ? "SOCKS UDP "
			    "ASSOCIATE is not supported" : "unknown SOCKS "
			    "command");
		}
		memcpy(x->host, r.host, sizeof(x->host));
		x->port = r.port;
		x->step = XS_DONE;
		return XP_DEST;
	}
}

/* Parses the message so far: 1 whole (*len), 0 need more, -1 (o). */
static int
socks_parse(struct xp *x, size_t n, size_t *len, struct xp_out *o)
{
	struct s5_req r;
	char user[256], pass[256];
	const char *bad = "malformed SOCKS message";
	unsigned methods;
	int rc;

	memset(&r, 0, sizeof(r));
	switch (x->step) {
	case XS_GREETING:
		rc = s5_greeting(x->buf, n, len, &methods, &bad);
		break;
	case XS_AUTH:
		rc = s5_auth(x->buf, n, len, user, pass, &bad);
		if (rc == -1)
			reply(o, "\x01\x01", 2);
		break;
	default:
		rc = s5_request(x->buf, n, &r, &bad);
		*len = r.len;
		/* a wrong version is closed at once, anything else answered */
		if (rc == -1 && !(n >= 1 && x->buf[0] != S5_VERSION))
			o->rlen = s5_reply(o->reply, r.rep, NULL);
		break;
	}
	if (rc == -1)
		o->why = bad;
	return rc;
}

enum xp_rc
xp_feed(struct xp *x, size_t n, size_t *take, struct xp_out *o)
{
	const char *bad = NULL;
	size_t have = x->len + n, len = 0;
	int rc;

	o->rlen = 0;
	o->why = NULL;
	o->drain = 0;
	*take = n;
	if (!x->http) {
		if ((rc = socks_parse(x, have, &len, o)) == -1)
			return XP_FAIL;
	} else if ((rc = httpreq_parse(x->buf, have, &x->req, &bad)) == -1) {
		o->rlen = hp_response((char *)o->reply, sizeof(o->reply),
		    x->req.status, bad);
		o->drain = 1;
		return fail(o, bad);
	} else
		len = x->req.len;
	if (rc == 0) {
		x->len = have;
		if (x->len == x->cap)
			return fail(o, "proxy request too long");
		return XP_MORE;
	}
	*take = len - x->len;
	if (!x->http) {
		x->len = 0;
		return socks_step(x, len, o);
	}
	memcpy(x->host, x->req.host, sizeof(x->host));
	x->port = x->req.port;
	x->step = XS_DONE;
	return XP_DEST;
}

void
xp_release(struct xp *x)
{
	free(x->buf);
	x->buf = NULL;
	x->len = x->cap = 0;
}

struct hp *
xp_forward(struct xp *x, uint8_t **head, size_t *len)
{
	struct hp *h;

	*head = NULL;
	*len = 0;
	if (!xp_is_forward(x))
		return NULL;
	if ((*head = malloc(x->req.len + 1)) == NULL)
		return NULL;
	if ((h = hp_new(&x->req)) == NULL) {
		free(*head);
		*head = NULL;
		return NULL;
	}
	*len = httpreq_origin(x->buf, &x->req, *head);
	return h;
}

/* The SOCKS reply code for a failure's reason. */
static int
s5_code(const char *why)
{
	if (strstr(why, "refused") != NULL)
		return S5_REFUSED;
	if (strstr(why, "unreachable") != NULL || strstr(why, "No route") !=
	    NULL || strstr(why, "resolve") != NULL || strstr(why, "timeout") !=
	    NULL || strstr(why, "timed out") != NULL)
		return S5_HOSTUNREACH;
	return S5_FAIL;
}

size_t
xp_result(const struct xp *x, const char *why, const struct sockname *bnd,
    uint8_t *out, size_t len)
{
	if (!x->http) {
		if (len < S5_REPLY_MAX)
			return 0;
		return s5_reply(out, why ? s5_code(why) : S5_OK,
		    bnd->len > 0 ? &bnd->ss.sa : NULL);
	}
	if (why != NULL)
		return hp_response((char *)out, len, 502, why);
	if (xp_is_forward(x))
		return 0;		/* the upstream's response answers */
	if (len < sizeof(established))
		return 0;
	memcpy(out, established, sizeof(established) - 1);
	return sizeof(established) - 1;
}
