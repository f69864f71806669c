/*
 * transparent.c - TPROXY mode: the original destination of a connection,
 * the guard against connecting to ourselves, privileges kept after
 * start-up (with --user, or from file capabilities), and the firewall
 * rules a route needs (--print-rules).
 *
 * Where the original destination comes from:
 *   tcp-tproxy, udp-tproxy  the local address of the accepted socket (or of
 *                           the datagram, IP_RECVORIGDSTADDR): an nftables
 *                           or iptables TPROXY rule delivered it unchanged;
 *   tcp-listen + orig       SO_ORIGINAL_DST (IP6T_SO_ORIGINAL_DST), for
 *                           connections diverted by NAT (redirect, dnat).
 */
#include <sys/capability.h>
#include <sys/prctl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"
#include "out.h"
#include "route.h"
#include "transparent.h"

static void
set_port(struct sockname *sn, uint16_t port)
{
	struct sockaddr_in *s4 = (void *)&sn->ss;
	struct sockaddr_in6 *s6 = (void *)&sn->ss;

	if (sn->ss.ss_family == AF_INET)
		s4->sin_port = htons(port);
	else if (sn->ss.ss_family == AF_INET6)
		s6->sin6_port = htons(port);
}

/* Fills dst from SO_ORIGINAL_DST; returns 0 or -1 with a reason. */
int
orig_lookup(int fd, const struct sockname *local, struct sockname *dst,
    char *err, size_t errlen)
{
	const struct sockaddr_in6 *l6 = (const void *)&local->ss;
	int family = local->ss.ss_family;

	/* an IPv4 client on a dual-stack listener: IPv4 conntrack */
	if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&l6->sin6_addr))
		family = AF_INET;
	if (net_original_dst(fd, family, dst) == 0)
		return 0;
	snprintf(err, errlen, "no original destination (%s): was the "
	    "connection diverted by an nft redirect or dnat rule?",
	    strerror(errno));
	return -1;
}

/* Returns 1 if sn is the address of one of our own listeners. */
static int
is_own_listener(const struct sockname *sn, int udp)
{
	size_t i;

	for (i = 0; i < nroutes; i++) {
		const struct route *r = &routes[i];

		if (addr_is_udp(r->listen.type) != udp ||
		    r->listen.type == A_UNIX_LISTEN ||
		    sockname_port(&r->lname) != sockname_port(sn))
			continue;
		if (net_is_local(sn))
			return 1;
	}
	return 0;
}

/*
 * The upstream address for an orig target: the original destination with
 * port-map applied (with orig:HOST, that port on HOST).  Returns 0, or -1
 * with a reason when HOST does not resolve, when it would be one of our
 * own listeners (a loop), or when the original destination is a loopback
 * address without allow-loopback: no packet routed through a gateway is
 * addressed to one, so such a destination is a client reaching for this
 * machine's own loopback services (a packet to 127.0.0.1 behind a redirect
 * rule, or through a TPROXY rule where route_localnet is set).  orig:HOST
 * names its host itself: the check is for addresses the packet gave.
 */
int
orig_target(const struct sockname *dst, int udp, const struct addr *t,
    struct sockname *to, char *err, size_t errlen)
{
	char a[ADDRSTR];
	int i;

	*to = *dst;
	for (i = 0; i < t->nportmap; i++)
		if (sockname_port(to) == t->portmap[i][0]) {
			set_port(to, t->portmap[i][1]);
			break;
		}
	if (t->host[0] != '\0' && net_resolve(t->host, sockname_port(to), 0,
	    to, err, errlen) == -1)
		return -1;
	if (is_own_listener(to, udp)) {
		sockname_str(to, a, sizeof(a));
		snprintf(err, errlen, "refused: the original destination %s "
		    "is tproxy's own listener (connected directly, not "
		    "diverted?)", a);
		return -1;
	}
	if (!t->allow_loopback && t->host[0] == '\0' &&
	    sockname_is_loopback(dst)) {
		sockname_str(dst, a, sizeof(a));
		snprintf(err, errlen, "refused: the original destination %s "
		    "is a loopback address, which no packet through a gateway "
		    "is sent to (orig,allow-loopback allows it)", a);
		return -1;
	}
	return 0;
}

/* Returns 1 if host names this machine's loopback (127.0.0.0/8, ::1). */
static int
host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return strcmp(host, "localhost") == 0;
}

/* Returns 1 if a route needs CAP_NET_ADMIN after start-up. */
static int
needs_netadmin(void)
{
	size_t i;

	for (i = 0; i < nroutes; i++) {
		const struct route *r = &routes[i];

		if (r->target.spoof || r->listen.type == A_UDP_TPROXY)
			return 1;
	}
	return 0;
}

static int
have_netadmin(void)
{
	cap_t caps = cap_get_proc();
	cap_flag_value_t v = CAP_CLEAR;

	if (caps == NULL)
		return 0;
	(void)cap_get_flag(caps, CAP_NET_ADMIN, CAP_EFFECTIVE, &v);
	cap_free(caps);
	return v == CAP_SET;
}

/* Exits 1 when a route will need CAP_NET_ADMIN that we do not have. */
static void
priv_check(void)
{
	if (needs_netadmin() && !have_netadmin()) {
		diag_err("tproxy: spoof and udp-tproxy need CAP_NET_ADMIN "
		    "(IP_TRANSPARENT) while running: run as root, or: setcap "
		    "cap_net_admin,cap_net_bind_service+ep tproxy");
		exit(1);
	}
}

/*
 * Returns 1 if a route binds a port below 1024 after start-up: udp-tproxy's
 * reply sockets (bound to the original destination, DNS's 53 say), or a
 * target's bind=HOST:PORT.
 */
static int
needs_bind_service(void)
{
	size_t i;

	for (i = 0; i < nroutes; i++) {
		const struct addr *t = &routes[i].target;

		if (routes[i].listen.type == A_UDP_TPROXY ||
		    (t->has_bind && t->bind_port > 0 && t->bind_port < 1024))
			return 1;
	}
	return 0;
}

/*
 * The capabilities the routes need after start-up, in keep[]: none, or
 * CAP_NET_ADMIN, CAP_NET_BIND_SERVICE or both.  Returns how many.
 */
static int
caps_needed(cap_value_t keep[2])
{
	int n = 0;

	if (needs_netadmin())
		keep[n++] = CAP_NET_ADMIN;
	if (needs_bind_service())
		keep[n++] = CAP_NET_BIND_SERVICE;
	return n;
}

/*
 * Drops from the capability bounding set every capability but keep[0..n),
 * so none can come back (through a file capability, say).  Needs
 * CAP_SETPCAP.  Returns 0 or -1.
 */
static int
bound_drop(const cap_value_t *keep, int n)
{
	cap_value_t v;
	int i, kept;

	for (v = 0; v <= CAP_LAST_CAP; v++) {
		for (kept = 0, i = 0; i < n; i++)
			if (keep[i] == v)
				kept = 1;
		if (!kept && CAP_IS_SUPPORTED(v) && cap_drop_bound(v) == -1)
			return -1;
	}
	return 0;
}

/*
 * Makes keep[0..n) the whole permitted and effective sets; nothing
 * inheritable, and so nothing ambient.  Returns 0 or -1.
 */
static int
caps_set(const cap_value_t *keep, int n)
{
	cap_t caps;
	int rc = -1;

	if ((caps = cap_init()) == NULL)
		return -1;
	if (n == 0 || (cap_set_flag(caps, CAP_PERMITTED, n, keep, CAP_SET) ==
	    0 && cap_set_flag(caps, CAP_EFFECTIVE, n, keep, CAP_SET) == 0))
		rc = cap_set_proc(caps);
	cap_free(caps);
	return rc;
}

/*
 * Switches to the user (after binding) and keeps only the capabilities
 * that the routes need after start-up (caps_needed()), in the bounding set
 * too; sets no_new_privs.  Exits 1 on failure.
 */
void
priv_drop(const struct passwd *pw)
{
	cap_value_t keep[2];
	int n = caps_needed(keep);

	if (n > 0 && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == -1)
		goto fail;
	if (bound_drop(keep, n) == -1)
		goto fail;
	if (setgroups(0, NULL) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1)
		goto fail;
	if (caps_set(keep, n) == -1)
		goto fail;
	if (n > 0)
		(void)prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	/* nothing we exec or become can gain privileges again */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		goto fail;
	return;
fail:
	diag_err("tproxy: --user=%s: cannot drop privileges: %s", pw->pw_name,
	    strerror(errno));
	exit(1);
}

/*
 * Without --user, after binding.  As root: says so, once (not with -q).
 * Otherwise a binary given file capabilities (setcap) keeps, of those it
 * has, only the ones the routes still need (caps_needed()), in its
 * permitted and effective sets, and in the bounding set too when it holds
 * CAP_SETPCAP; no_new_privs is set.  Exits 1 when a route needs
 * CAP_NET_ADMIN that we lack, or when the capabilities cannot be changed.
 */
void
priv_limit(void)
{
	cap_value_t need[2], keep[2];
	cap_flag_value_t v;
	cap_t cur;
	int i, n, nkeep = 0, setpcap = 0;

	priv_check();
	if (geteuid() == 0) {
		diag("tproxy: running as root: --user=NAME would drop root "
		    "after binding and keep only the capabilities the routes "
		    "need");
		return;
	}
	if ((cur = cap_get_proc()) == NULL)
		goto fail;
	n = caps_needed(need);
	for (i = 0; i < n; i++)
		if (cap_get_flag(cur, need[i], CAP_PERMITTED, &v) == 0 &&
		    v == CAP_SET)
			keep[nkeep++] = need[i];
	if (cap_get_flag(cur, CAP_SETPCAP, CAP_EFFECTIVE, &v) == 0 &&
	    v == CAP_SET)
		setpcap = 1;
	cap_free(cur);
	if (setpcap && bound_drop(keep, nkeep) == -1)
		goto fail;
	if (caps_set(keep, nkeep) == -1)
		goto fail;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		goto fail;
	return;
fail:
	diag_err("tproxy: cannot drop the capabilities no route needs: %s",
	    strerror(errno));
	exit(1);
}

static int
family_of(const struct route *r)
{
	unsigned char a[16];

	return inet_pton(AF_INET6, r->listen.host, a) == 1 ? AF_INET6 :
	    AF_INET;
}

/*
 * Prints the nftables and policy-routing commands the routes need, for a
 * user to read and run.  Diverted ports are an example (80, 53): change
 * them to the ones to intercept.
 */
void
print_rules(void)
{
	size_t i;
	int tproxy = 0, nat = 0, fam4 = 0, fam6 = 0, spoof_local = 0;

	printf("# nftables and policy routing for these routes "
	    "(run as root; the diverted ports are examples)\n");
	for (i = 0; i < nroutes; i++)
		if (addr_is_tproxy(routes[i].listen.type))
			tproxy = 1;
	if (tproxy) {
		printf("nft add table inet tproxy_divert\n");
		printf("nft 'add chain inet tproxy_divert prerouting { type filter "
		    "hook prerouting priority mangle; policy accept; }'\n");
		printf("nft 'add rule inet tproxy_divert prerouting meta l4proto "
		    "{ tcp, udp } socket transparent 1 meta mark set 1 "
		    "accept'\n");
	}
	for (i = 0; i < nroutes; i++) {
		const struct route *r = &routes[i];
		const char *proto = addr_is_udp(r->listen.type) ? "udp" : "tcp";
		int v6 = family_of(r) == AF_INET6;
		int dport = addr_is_udp(r->listen.type) ? 53 : 80;

		if (addr_is_tproxy(r->listen.type)) {
			printf("# route %d: %s %s -> %s port %u\n", r->id,
			    r->lspec, proto, v6 ? "ip6" : "ip", r->listen.port);
			printf("nft 'add rule inet tproxy_divert prerouting meta "
			    "l4proto %s th dport %d tproxy %s to :%u meta "
			    "mark set 1 accept'\n", proto, dport, v6 ? "ip6" :
			    "ip", r->listen.port);
			if (v6)
				fam6 = 1;
			else
				fam4 = 1;
		} else if (r->target.type == A_ORIG &&
		    !r->listen.proxy_protocol) {
			if (!nat)
				printf("nft add table inet tproxy_nat\nnft 'add "
				    "chain inet tproxy_nat prerouting { type nat "
				    "hook prerouting priority dstnat; }'\n");
			nat = 1;
			printf("# route %d: %s, original destination from "
			    "SO_ORIGINAL_DST\n", r->id, r->lspec);
			printf("nft 'add rule inet tproxy_nat prerouting %s "
			    "dport %d redirect to :%u'\n", proto, dport,
			    r->listen.port);
		}
	}
	if (fam4) {
		printf("ip rule add fwmark 1 lookup 100\n");
		printf("ip route add local 0.0.0.0/0 dev lo table 100\n");
		printf("sysctl -w net.ipv4.ip_forward=1 "
		    "net.ipv4.conf.all.rp_filter=0\n");
	}
	if (fam6) {
		printf("ip link set lo up\n");
		printf("ip -6 rule add fwmark 1 lookup 100\n");
		printf("ip -6 route add local ::/0 dev lo table 100\n");
		printf("sysctl -w net.ipv6.conf.all.forwarding=1\n");
	}
	for (i = 0; i < nroutes; i++)
		if (routes[i].target.spoof &&
		    host_is_loopback(routes[i].target.host))
			spoof_local = (int)i + 1;
	if (spoof_local) {
		/* go-mmproxy's recipe: replies from a local service to a
		   spoofed client address are delivered back to us */
		printf("# route %d: spoofed connections to a local service; "
		    "its replies must come back to tproxy\n", spoof_local);
		printf("ip rule add from 127.0.0.1/8 iif lo table 123\n");
		printf("ip route add local 0.0.0.0/0 dev lo table 123\n");
		printf("ip -6 rule add from ::1/128 iif lo table 123\n");
		printf("ip -6 route add local ::/0 dev lo table 123\n");
	}
	if (!tproxy && !nat && !spoof_local)
		printf("# no route needs rules: SERVER mode only\n");
}
