/*
 * socks5.h - the SOCKS version 5 messages a client sends (RFC 1928) and the
 * user/password sub-negotiation (RFC 1929), parsed; the replies, built.
 */
#ifndef SOCKS5_H
#define SOCKS5_H

#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

/* Wire values (RFC 1928, RFC 1929). */
enum {
	S5_VERSION = 5,
	S5_AUTH_VERSION = 1,
	S5_M_NONE = 0x00,
	S5_M_USERPASS = 0x02,
	S5_M_NOACCEPT = 0xff,
	S5_CMD_CONNECT = 1,
	S5_CMD_BIND = 2,
	S5_CMD_UDP = 3,
	S5_ATYP_V4 = 1,
	S5_ATYP_NAME = 3,
	S5_ATYP_V6 = 4,
};

/* Reply codes (REP). */
enum s5_rep {
	S5_OK = 0x00,
	S5_FAIL = 0x01,
	S5_NETUNREACH = 0x03,
	S5_HOSTUNREACH = 0x04,
	S5_REFUSED = 0x05,
	S5_BADCMD = 0x07,
	S5_BADATYP = 0x08,
};

#define S5_GREETING_MAX	(2 + 255)
#define S5_AUTH_MAX	(3 + 255 + 255)
#define S5_REQUEST_MAX	(4 + 1 + 255 + 2)
#define S5_REPLY_MAX	(4 + 16 + 2)

struct s5_req {
	size_t		 len;		/* the request's bytes */
	int		 cmd;
	int		 atyp;
	char		 host[256];	/* a name, or an address as text */
	uint16_t	 port;
	int		 rep;		/* malformed: the reply code it gets */
};

/*
 * Each parser returns 1 with the message's length in *len, 0 when p holds
 * only a beginning of it (need more), -1 when it is malformed (*bad says
 * why).  A wrong version is malformed at once.
 */
int	 s5_greeting(const uint8_t *p, size_t n, size_t *len,
	    unsigned *methods, const char **bad) __attribute__((nonnull));
int	 s5_auth(const uint8_t *p, size_t n, size_t *len, char user[256],
	    char pass[256], const char **bad) __attribute__((nonnull));
int	 s5_request(const uint8_t *p, size_t n, struct s5_req *r,
	    const char **bad) __attribute__((nonnull));
/* The reply with code rep and bound address bnd (NULL: 0.0.0.0:0). */
size_t	 s5_reply(uint8_t out[S5_REPLY_MAX], int rep,
	    const struct sockaddr *bnd) __attribute__((nonnull(1)));

#endif /* SOCKS5_H */
