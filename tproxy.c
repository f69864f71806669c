/*
 * tproxy - a transparent TCP proxy to see and change what passes.
 *
 * main: options, routes, start-up, signals and the poll loop.  Everything
 * is set up (parsed, then bound) before any traffic is handled: a bad
 * argument anywhere means exit status 2 and nothing listens.
 */
#include <sys/resource.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec.h"
#include "stdpipe.h"
#include "tproxy.h"

static volatile sig_atomic_t	 quit_sig, stats_sig;

static const char usage_text[] =
"usage: tproxy [OPTION]... LISTEN TARGET [FILTER]... [+ LISTEN TARGET [FILTER]...]...\n"
"\n"
"Listen on LISTEN, connect each client to TARGET, and pass the bytes both ways\n"
"through the FILTERs, in order.  A lone '+' starts another route.\n"
"\n"
"Options:\n"
"  -h, --help               print this help and exit\n"
"  -V, --version            print the version and exit\n"
"  -q, --quiet              print nothing on stderr unless something goes wrong\n"
"  -v, --verbose            print connection events on stderr (repeatable)\n"
"      --json               observations as JSON objects, one per line\n"
"      --idle-timeout=SECS  close a connection idle for SECS seconds\n"
"      --max-conns=N        at most N connections or UDP sessions at once\n"
"      --max-per-source=N   at most N UDP sessions from one client address\n"
"                           (default: half of --max-sessions)\n"
"      --max-sessions=N     at most N UDP sessions at once (default: a quarter\n"
"                           of the open-file limit, at most 16384)\n"
"      --udp-timeout=SECS   end a UDP session idle for SECS seconds (default 60)\n"
"      --user=NAME          drop privileges to NAME after binding, keeping\n"
"                           only the capabilities the routes need (spoof and\n"
"                           udp-tproxy: CAP_NET_ADMIN; udp-tproxy and bind= a\n"
"                           port below 1024: CAP_NET_BIND_SERVICE)\n"
"      --print-rules        print the nft and ip rules the routes need, exit\n"
"      --control=PATH       take commands on a Unix socket at PATH: show stats,\n"
"                           show conns, kill, add/del/enable/disable filter,\n"
"                           inspect's decisions (CONTROL SOCKET in tproxy(1))\n"
"      --ca-cert=FILE --ca-key=FILE\n"
"                           the CA that signs forged certificates (default:\n"
"                           one made once in $XDG_STATE_HOME/tproxy)\n"
"\n"
"LISTEN:  tcp-listen:[HOST:]PORT (tcp-l)   udp-listen:[HOST:]PORT (udp-l)\n"
"         tcp-tproxy:[HOST:]PORT   udp-tproxy:[HOST:]PORT   unix-listen:PATH\n"
"         socks5-listen:[HOST:]PORT   http-listen:[HOST:]PORT   stdio (-)\n"
"TARGET:  tcp:HOST:PORT   udp:HOST:PORT   unix:PATH   orig[:HOST]   echo\n"
"         exec:COMMAND\n"
"Address options (after commas): reuseaddr, reuseport, backlog=N,\n"
"         ipv6only=0|1, bind=HOST[:PORT], spoof, port-map=FROM:TO[;FROM:TO],\n"
"         allow-loopback, tls, tls=auto, starttls, detect=MS, cert=FILE,\n"
"         key=FILE, passthrough=REGEX, keylog=FILE, verify=0|1,\n"
"         proxy-protocol[,proxy-from=CIDR[;CIDR]] (listen),\n"
"         proxy-protocol=v1|v2 (target), auth=USER:PASS (socks5).\n"
"         HOST defaults to 127.0.0.1 (0.0.0.0 for *-tproxy); IPv6 as [::1].\n"
"\n"
"FILTER:\n";

static const char usage_tail[] =
"Filter keys: dir=c2s|s2c|both  src=CIDR  dst=CIDR  dport=N  sni=REGEX\n"
"\n"
"Observations go to stdout, diagnostics to stderr.  Exit status: 0 after\n"
"SIGINT/SIGTERM, 1 on a runtime failure, 2 on a usage error.\n"
"See tproxy(1).\n";

static void
on_signal(int sig)
{
	if (sig == SIGUSR1)
		stats_sig = 1;
	else
		quit_sig = sig;
}

static void
signals_setup(sigset_t *waitmask)
{
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	/* signals arrive only inside ppoll(), so none is missed */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, waitmask);
	sigdelset(waitmask, SIGINT);
	sigdelset(waitmask, SIGTERM);
	sigdelset(waitmask, SIGUSR1);
}

/*
 * Takes a pending SIGINT/SIGTERM.  ppoll() delivers them only when it
 * sleeps: under constant load it returns at once with the signal blocked
 * again, so the loop also looks for one every few turns.
 */
static void
signals_take(void)
{
	struct timespec zero = { 0, 0 };
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	while ((sig = sigtimedwait(&set, NULL, &zero)) > 0)
		on_signal(sig);
}

/* Raises the fd soft limit to the hard limit: 2 fds per connection. */
static void
nofile_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

#define SESSIONS_MAX	16384	/* the default cap, whatever the fd limit */

/*
 * The UDP caps not given: a session takes a descriptor (two with
 * udp-tproxy), a TCP connection two, so sessions get at most a quarter of
 * the open-file limit, and at most SESSIONS_MAX (a few KiB of memory
 * each); whatever clients send from however many ports, half the
 * descriptors stay for TCP routes and the rest.  One client address gets
 * at most half of that, so one client alone cannot take them all.
 */
static void
udp_caps(void)
{
	struct rlimit rl;
	long fds = 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		fds = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 4 *
		    SESSIONS_MAX ? 4 * SESSIONS_MAX : (long)rl.rlim_cur;
	if (opt.max_sessions < 0)
		opt.max_sessions = fds / 4 > 0 ? fds / 4 : 1;
	if (opt.max_per_source < 0)
		opt.max_per_source = opt.max_sessions > 1 ?
		    opt.max_sessions / 2 : opt.max_sessions;
}

static void
listener_ready(void *arg, int revents)
{
	struct route *r = arg;

	(void)revents;
	if (addr_is_udp(r->listen.type))
		udp_listen_ready(r);
	else
		accept_ready(r);
}

/* Loads certificates and keys of TLS routes; exits 1 on a failure. */
static void
routes_tls(void)
{
	char err[ERRLEN];
	size_t i;

	for (i = 0; i < nroutes; i++)
		if (tls_route_init(&routes[i], err, sizeof(err)) == -1) {
			diag_err("tproxy: %s: %s", routes[i].lspec, err);
			exit(1);
		}
}

/* Binds every route; exits 1 on the first failure (nothing listens). */
static void
routes_bind(void)
{
	char err[ERRLEN];
	size_t i;

	for (i = 0; i < nroutes; i++) {
		if (routes[i].listen.type == A_STDIO)
			continue;	/* stdio.c's, no socket */
		routes[i].lfd = net_listen(&routes[i].listen,
		    &routes[i].lname, err, sizeof(err));
		if (routes[i].lfd == -1) {
			diag_err("tproxy: %s: %s", routes[i].lspec, err);
			exit(1);
		}
	}
	for (i = 0; i < nroutes; i++) {
		if (routes[i].lfd < 0)
			continue;
		if (loop_add(routes[i].lfd, POLLIN, listener_ready, &routes[i],
		    &routes[i].lslot) == -1) {
			diag_err("tproxy: out of memory");
			exit(1);
		}
	}
}

/* Says where each route listens, once privileges are what they will be. */
static void
routes_announce(void)
{
	size_t i;

	for (i = 0; i < nroutes; i++)
		ev_listen(&routes[i]);
}

static void
routes_free(void)
{
	size_t i;

	tapsets_free();
	for (i = 0; i < nroutes; i++) {
		struct route *r = &routes[i];

		if (r->lfd >= 0) {
			close(r->lfd);
			if (r->listen.type == A_UNIX_LISTEN)
				unlink(r->listen.path);
		}
		tls_route_free(r);
		addr_free(&r->listen);
		addr_free(&r->target);
	}
	free(routes);
	routes = NULL;
	nroutes = 0;
}

/* Looks the --user up before binding, so a typo is a usage error. */
static struct passwd *
user_lookup(void)
{
	struct passwd *pw;

	if (opt.user == NULL)
		return NULL;
	if ((pw = getpwnam(opt.user)) == NULL)
		usage_error("--user: no such user '%s'", opt.user);
	return pw;
}

static long
opt_number(const char *name, const char *v, long long lo, long long hi)
{
	long long n;

	if (num_parse(v, lo, hi, &n) == -1)
		usage_error("--%s: bad value '%s' (expected %lld..%lld)", name,
		    v, lo, hi);
	return (long)n;
}

enum { O_JSON = 256, O_USER, O_IDLE, O_MAXC, O_MAXS, O_MAXSRC, O_UDPT,
    O_RULES, O_CACERT, O_CAKEY, O_CONTROL };

static void
options_parse(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "json", no_argument, NULL, O_JSON },
		{ "user", required_argument, NULL, O_USER },
		{ "idle-timeout", required_argument, NULL, O_IDLE },
		{ "max-conns", required_argument, NULL, O_MAXC },
		{ "max-sessions", required_argument, NULL, O_MAXS },
		{ "max-per-source", required_argument, NULL, O_MAXSRC },
		{ "udp-timeout", required_argument, NULL, O_UDPT },
		{ "print-rules", no_argument, NULL, O_RULES },
		{ "ca-cert", required_argument, NULL, O_CACERT },
		{ "ca-key", required_argument, NULL, O_CAKEY },
		{ "control", required_argument, NULL, O_CONTROL },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+hVqv", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			fputs(usage_text, stdout);
			filters_help(stdout);
			fputs(usage_tail, stdout);
			exit(0);
		case 'V':
			printf("tproxy %s\n", TPROXY_VERSION);
			exit(0);
		case 'q':
			opt.verbose = -1;
			break;
		case 'v':
			opt.verbose = opt.verbose < 0 ? 1 : opt.verbose + 1;
			break;
		case O_JSON:
			opt.json = 1;
			break;
		case O_USER:
			if (*optarg == '\0')
				usage_error("--user: empty user name");
			opt.user = optarg;
			break;
		case O_IDLE:
			opt.idle_timeout = opt_number("idle-timeout", optarg, 0,
			    86400 * 365);
			break;
		case O_MAXC:
			opt.max_conns = opt_number("max-conns", optarg, 0,
			    1000000);
			break;
		case O_MAXS:
			opt.max_sessions = opt_number("max-sessions", optarg, 0,
			    1000000);
			break;
		case O_MAXSRC:
			opt.max_per_source = opt_number("max-per-source",
			    optarg, 0, 1000000);
			break;
		case O_RULES:
			opt.print_rules = 1;
			break;
		case O_UDPT:
			opt.udp_timeout = opt_number("udp-timeout", optarg, 1,
			    86400 * 365);
			break;
		case O_CACERT:
			opt.ca_cert = optarg;
			break;
		case O_CAKEY:
			opt.ca_key = optarg;
			break;
		case O_CONTROL:
			if (*optarg == '\0')
				usage_error("--control: empty path");
			opt.control = optarg;
			break;
		default:
			if (optopt >= 256 || optopt == 0)
				usage_error("unknown option '%s'",
				    argv[optind - 1]);
			else if (strchr("hVqv", optopt) == NULL)
				usage_error("unknown option '-%c'", optopt);
			else
				usage_error("option '%s' needs a value",
				    argv[optind - 1]);
		}
	}
}

int
main(int argc, char **argv)
{
	sigset_t waitmask;
	struct passwd *pw;
	unsigned long turn;
	uint64_t nconn, nbytes[2];
	int done;

	setvbuf(stdout, NULL, _IOFBF, 64 * 1024);
	options_parse(argc, argv);
	if ((opt.ca_cert == NULL) != (opt.ca_key == NULL))
		usage_error("--ca-cert and --ca-key go together");
	routes_parse(argc - optind, argv + optind);
	tapsets_init();
	if (opt.print_rules) {
		print_rules();
		return 0;
	}
	pw = user_lookup();
	signals_setup(&waitmask);
	nofile_raise();
	udp_caps();
	routes_tls();
	routes_bind();
	if (opt.control != NULL)
		control_open(opt.control, pw ? pw->pw_uid : (uid_t)-1,
		    pw ? pw->pw_gid : (gid_t)-1);
	if (!stdio_in_use())
		prompt_init();	/* with stdio, standard input is data */
	if (pw != NULL)
		priv_drop(pw);
	else
		priv_limit();
	routes_announce();
	out_on_drain(conn_update_all);
	out_flush();
	stdio_start();

	for (turn = 1; !quit_sig && !stdio_done(); turn++) {
		if (loop_run_once(&waitmask) == -1 && errno != EINTR) {
			diag_err("tproxy: poll: %s", strerror(errno));
			break;
		}
		conn_reap();
		out_flush();
		if (turn % 64 == 0)
			signals_take();
		if (stats_sig) {
			stats_sig = 0;
			control_stats_stderr();
		}
	}
	prompt_close();
	done = stdio_done();
	conn_close_all(quit_sig ? "shutdown" : done ? "closed" : "poll failed");
	conn_reap();
	exec_end();
	stdio_end();
	control_close();
	held_free_all();
	out_close(200);
	conn_stats(&nconn, nbytes);
	if (quit_sig)
		diag("tproxy: exiting on %s: %llu connections, %llu bytes "
		    "c2s, %llu bytes s2c", quit_sig == SIGINT ? "SIGINT" :
		    "SIGTERM", (unsigned long long)nconn,
		    (unsigned long long)nbytes[C2S],
		    (unsigned long long)nbytes[S2C]);
	routes_free();
	tls_cleanup();
	loop_free();
	return quit_sig || done ? 0 : 1;
}
