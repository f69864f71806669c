/*
 * load.c - load generator and test servers for tests/bench/run.sh.
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -o load load.c -lpthread -lssl -lcrypto
 *        (or with -DLOAD_NO_TLS and without the OpenSSL libraries: no tls-* modes)
 *
 * Servers (run until SIGTERM/SIGINT or -L seconds):
 *   load echo -p PORT           TCP echo + UDP echo on 127.0.0.1:PORT (epoll)
 *   load sink -p PORT           TCP peer for bulk and connrate.  The first byte
 *                               a client sends picks the role: 's' discard
 *                               everything, 'o' send data only (source), 'd'
 *                               both, 'c' echo and close right after echoing
 *                               a '\n' (so the server closes first).
 *   load tls-serve -p PORT -C CERT -K KEY
 *                               TLS server, one thread per connection; the first
 *                               plaintext byte picks the role: 'c' as above
 *                               (echo up to '\n', close_notify, close), else
 *                               discard.  No session cache (full handshakes).
 * Clients (each bounded by a count and by wall time, -L, default 60 s):
 *   load bulk        -p P [-n STREAMS=1] [-d SECS=2] [-W WARM=0.5]
 *   load bulk-rev    -p P ...    same, data flows server -> client
 *   load bulk-duplex -p P ...    both directions at once on every stream
 *   load rr          -p P [-n 10000] [-s 64]
 *   load connrate    -p P [-w THREADS=8] [-d SECS=2] [-s 64]   (P: a sink server)
 *   load conc        -p P [-c 5000] [-k 8] [-t MS=3000] [-H HOLD=60]
 *   load udp-rr      -p P [-n 10000] [-s 64] [-t MS=200]
 *   load udp-burst   -p P [-n 100000] [-s 64]
 *   load tls-hs      -p P [-w THREADS=8] [-d SECS=2] [-s 64] [-n MAX] -A CAFILE [-N NAME=bench.test]
 *                    each cycle: connect, full handshake (no resumption, peer
 *                    verified against CAFILE and NAME), 'c' echo, server closes
 *   load tls-bulk    -p P [-n STREAMS=1] [-d SECS=2] [-W WARM=0.5] -A CAFILE [-N NAME]
 *                    client -> server over TLS (P: a tls-serve server or a proxy)
 * Any client but conc and udp-*: -x s:PORT or -x h:PORT goes through the
 *   explicit proxy at -p (SOCKS5 without authentication, or HTTP CONNECT) to
 *   127.0.0.1:PORT; the handshake is part of each connect (and of its time).
 * Helpers for the script:
 *   load mem PID      procs=N rss_kib=SUM pss_kib=SUM over PID and its descendants
 *   load pids PID     PID and its descendants, children before parents
 *
 * Every client prints one line "mode=... key=value ..." on stdout (conc prints a
 * "READY ..." line once its connections are set up, then the result line).
 * Exit status 0 when the measurement ran, 1 when it could not (no connection).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#ifndef LOAD_NO_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

/* ------------------------------------------------------------- options */
static const char *opt_addr = "127.0.0.1";
static int opt_port;
static long opt_n = -1;          /* count: streams, round trips, datagrams */
static long opt_c = 5000;        /* conc: connections */
static int opt_k = 8;            /* conc: at most this many in setup at once */
static int opt_w = 8;            /* connrate: threads */
static double opt_d = 2.0;       /* duration, seconds */
static double opt_warm = 0.5;    /* bulk: warm-up before the measured window */
static int opt_s = 64;           /* message size */
static int opt_t = -1;           /* timeout, ms */
static double opt_hold = 60;     /* conc: hold time */
static double opt_limit = -1;    /* overall wall-time limit, s */
static const char *opt_cert;     /* tls-serve: certificate (chain) file */
static const char *opt_key;      /* tls-serve: its key */
static const char *opt_ca;       /* tls clients: trusted certificates */
static const char *opt_name = "bench.test";   /* tls clients: SNI and expected host name */
static struct sockaddr_in target;
static char proxy_kind;           /* -x: 's' SOCKS5, 'h' HTTP CONNECT, 0 none */
static int proxy_dport;           /* -x: the port asked of the proxy */

static volatile sig_atomic_t got_signal;
static void on_signal(int s) { (void)s; got_signal = 1; }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* errno text without spaces, so the output stays key=value */
static const char *etext(int e)
{
    static __thread char b[96];
    snprintf(b, sizeof b, "%s", strerror(e));
    for (char *p = b; *p; p++)
        if (isspace((unsigned char)*p) || *p == '=') *p = '_';
    return b;
}

static void nofile_max(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur != r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &r);
    }
}

static void sock_timeout(int fd, int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static void nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void big_bufs(int fd, int bytes)
{
    /* root may exceed net.core.[rw]mem_max; otherwise take what we get */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

static int send_all(int fd, const void *buf, size_t len);
static int recv_all(int fd, void *buf, size_t len);

/* -x: the explicit proxy's handshake, one step at a time; 0 or -1 */
static int proxy_handshake(int fd)
{
    if (proxy_kind == 's') {
        unsigned char hello[3] = { 5, 1, 0 }, method[2], rep[10];
        unsigned char req[10] = { 5, 1, 0, 1, 127, 0, 0, 1,
            (unsigned char)(proxy_dport >> 8), (unsigned char)proxy_dport };
        if (send_all(fd, hello, sizeof hello) < 0 || recv_all(fd, method, 2) < 0 ||
            method[1] != 0 || send_all(fd, req, sizeof req) < 0 ||
            recv_all(fd, rep, sizeof rep) < 0)
            return -1;
        if (rep[1] != 0) { errno = ECONNREFUSED; return -1; }
        return 0;
    }
    char req[64], head[1024];
    size_t n = 0;
    int len = snprintf(req, sizeof req, "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", proxy_dport);
    if (send_all(fd, req, (size_t)len) < 0) return -1;
    while (n < sizeof head - 1) {      /* byte by byte: nothing past the head */
        if (recv_all(fd, head + n, 1) < 0) return -1;
        n++;
        if (n >= 4 && !memcmp(head + n - 4, "\r\n\r\n", 4)) break;
    }
    head[n] = '\0';
    if (strncmp(head, "HTTP/1.1 200", 12) != 0) { errno = ECONNREFUSED; return -1; }
    return 0;
}

/* blocking TCP connect to the target with a timeout; -errno on failure */
static int tcp_connect(int ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    sock_timeout(fd, ms);
    if (connect(fd, (struct sockaddr *)&target, sizeof target) < 0) {
        int e = errno == EINPROGRESS ? ETIMEDOUT : errno;
        close(fd);
        return -e;
    }
    if (proxy_kind && proxy_handshake(fd) < 0) {
        int e = errno ? errno : EPROTO;
        close(fd);
        return -e;
    }
    return fd;
}

static int send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int recv_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = recv(fd, p, len, 0);
        if (r == 0) { errno = ECONNRESET; return -1; }
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* percentile of a sorted array, nearest rank */
static double pctl(const double *v, long n, double p)
{
    if (n <= 0) return 0;
    long i = (long)(p / 100.0 * (double)n + 0.999999) - 1;
    if (i < 0) i = 0;
    if (i >= n) i = n - 1;
    return v[i];
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "load: out of memory\n"); exit(1); }
    return p;
}

/* ============================================================ servers */
enum { K_TCP_LISTEN, K_UDP, K_ECHO, K_SINK };

struct sconn {
    int fd, kind;
    int role;                 /* sink: 0 = no command yet, 's', 'o', 'd' */
    char *pend;               /* echo: bytes not yet sent back */
    size_t plen, poff;
};

static int ep;
static char sbuf[256 * 1024];
static long long st_conns, st_bytes_in, st_bytes_out, st_dgrams;

static void s_mod(struct sconn *c, uint32_t ev)
{
    struct epoll_event e = { .events = ev, .data.ptr = c };
    (void)epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

static void s_close(struct sconn *c)
{
    (void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pend);
    free(c);
}

static void s_accept(struct sconn *l, int kind)
{
    for (int i = 0; i < 256; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE) fprintf(stderr, "load: accept: %s\n", strerror(errno));
            return;
        }
        nodelay(fd);
        struct sconn *c = calloc(1, sizeof *c);
        if (!c) { close(fd); continue; }
        c->fd = fd;
        c->kind = kind;
        struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) { close(fd); free(c); continue; }
        st_conns++;
    }
}

/* echo: read, write back; what cannot be written now waits in c->pend and
 * reading stops until it is gone (so a slow reader gets backpressure). */
static void echo_in(struct sconn *c)
{
    for (int i = 0; i < 8; i++) {
        ssize_t r = recv(c->fd, sbuf, sizeof sbuf, 0);
        if (r == 0) { s_close(c); return; }
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) s_close(c);
            return;
        }
        st_bytes_in += r;
        size_t off = 0;
        while (off < (size_t)r) {
            ssize_t w = send(c->fd, sbuf + off, (size_t)r - off, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                s_close(c);
                return;
            }
            off += (size_t)w;
        }
        st_bytes_out += (long long)off;
        if (off < (size_t)r) {
            c->plen = (size_t)r - off;
            c->poff = 0;
            c->pend = xmalloc(c->plen);
            memcpy(c->pend, sbuf + off, c->plen);
            s_mod(c, EPOLLOUT);
            return;
        }
        if ((size_t)r < sizeof sbuf) return;
    }
}

static void echo_out(struct sconn *c)
{
    while (c->poff < c->plen) {
        ssize_t w = send(c->fd, c->pend + c->poff, c->plen - c->poff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            s_close(c);
            return;
        }
        c->poff += (size_t)w;
        st_bytes_out += w;
    }
    free(c->pend);
    c->pend = NULL;
    c->plen = c->poff = 0;
    s_mod(c, EPOLLIN | EPOLLRDHUP);
}

static void udp_in(struct sconn *c)
{
    enum { B = 32 };
    static char data[B][2048];
    static struct mmsghdr m[B];
    static struct iovec iov[B];
    static struct sockaddr_in from[B];
    for (int round = 0; round < 32; round++) {
        for (int i = 0; i < B; i++) {
            iov[i].iov_base = data[i];
            iov[i].iov_len = sizeof data[i];
            memset(&m[i].msg_hdr, 0, sizeof m[i].msg_hdr);
            m[i].msg_hdr.msg_name = &from[i];
            m[i].msg_hdr.msg_namelen = sizeof from[i];
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(c->fd, m, B, MSG_DONTWAIT, NULL);
        if (n <= 0) return;
        st_dgrams += n;
        for (int i = 0; i < n; i++) iov[i].iov_len = m[i].msg_len;
        int done = 0;
        while (done < n) {
            int s = sendmmsg(c->fd, m + done, (unsigned)(n - done), MSG_DONTWAIT);
            if (s < 0 && errno == EINTR) continue;
            if (s <= 0) break;      /* datagrams: drop the rest */
            done += s;
        }
        if (n < B) return;
    }
}

/* sink/source: the first byte picks the role, everything read is discarded.
 * Both return -1 when the connection was closed (and freed). */
static int sink_in(struct sconn *c)
{
    for (int i = 0; i < 16; i++) {
        ssize_t r = recv(c->fd, sbuf, sizeof sbuf, 0);
        if (r == 0) { s_close(c); return -1; }
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) { s_close(c); return -1; }
            return 0;
        }
        st_bytes_in += r;
        if (!c->role) {
            c->role = strchr("odc", sbuf[0]) ? sbuf[0] : 's';
            if (c->role == 'o' || c->role == 'd') s_mod(c, EPOLLIN | EPOLLRDHUP | EPOLLOUT);
        }
        if (c->role == 'c') {
            /* a short message into an empty send buffer: it goes in one send */
            ssize_t w = send(c->fd, sbuf, (size_t)r, MSG_NOSIGNAL);
            if (w > 0) st_bytes_out += w;
            if (w != r || memchr(sbuf, '\n', (size_t)r)) { s_close(c); return -1; }
        }
        if ((size_t)r < sizeof sbuf) return 0;
    }
    return 0;
}

static int sink_out(struct sconn *c)
{
    for (int i = 0; i < 16; i++) {
        ssize_t w = send(c->fd, sbuf, sizeof sbuf, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) { s_close(c); return -1; }
            return 0;
        }
        st_bytes_out += w;
    }
    return 0;
}

static int serve(int echo)
{
    double life = opt_limit > 0 ? opt_limit : 3600;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    nofile_max();
    memset(sbuf, 'x', sizeof sbuf);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) { perror("load: epoll_create1"); return 1; }

    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) { perror("load: socket"); return 1; }
    (void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&target, sizeof target) < 0 || listen(lfd, 4096) < 0) {
        fprintf(stderr, "load: tcp %s:%d: %s\n", opt_addr, opt_port, strerror(errno));
        return 1;
    }
    struct sconn *lc = calloc(1, sizeof *lc);
    if (!lc) return 1;
    lc->fd = lfd;
    lc->kind = K_TCP_LISTEN;
    struct epoll_event e = { .events = EPOLLIN, .data.ptr = lc };
    (void)epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);

    if (echo) {
        int ufd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (ufd < 0) { perror("load: socket"); return 1; }
        big_bufs(ufd, 16 << 20);
        if (bind(ufd, (struct sockaddr *)&target, sizeof target) < 0) {
            fprintf(stderr, "load: udp %s:%d: %s\n", opt_addr, opt_port, strerror(errno));
            return 1;
        }
        struct sconn *uc = calloc(1, sizeof *uc);
        if (!uc) return 1;
        uc->fd = ufd;
        uc->kind = K_UDP;
        struct epoll_event ue = { .events = EPOLLIN, .data.ptr = uc };
        (void)epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &ue);
    }
    fprintf(stderr, "load: %s server on %s:%d\n", echo ? "echo (tcp+udp)" : "sink", opt_addr, opt_port);

    double end = now() + life;
    struct epoll_event evs[128];
    while (!got_signal && now() < end) {
        int n = epoll_wait(ep, evs, 128, 500);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("load: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct sconn *c = evs[i].data.ptr;
            uint32_t ev = evs[i].events;
            switch (c->kind) {
            case K_TCP_LISTEN: s_accept(c, echo ? K_ECHO : K_SINK); break;
            case K_UDP: udp_in(c); break;
            case K_ECHO:
                if (c->pend) { if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) echo_out(c); }
                else echo_in(c);
                break;
            case K_SINK:
                if ((ev & ~(uint32_t)EPOLLOUT) && sink_in(c) < 0) break;   /* closed */
                if ((ev & EPOLLOUT) && c->role && c->role != 's') (void)sink_out(c);
                break;
            }
        }
    }
    printf("mode=%s conns=%lld bytes_in=%lld bytes_out=%lld datagrams=%lld\n", echo ? "echo" : "sink",
           st_conns, st_bytes_in, st_bytes_out, st_dgrams);
    return 0;
}

/* ================================================================ bulk */
struct bstream {
    int fd;
    pthread_t tx, rx;
    int has_tx, has_rx;
    long long sent, rcvd;       /* updated with __atomic by the stream's threads */
    int err;
    void *ssl;                  /* tls-bulk: the stream's SSL */
};

static volatile int bulk_stop;
static char bulk_buf[128 * 1024];

static void *bulk_tx(void *arg)
{
    struct bstream *s = arg;
    /* hard cap of 1 TiB keeps the loop bounded in count, the stop flag in time */
    while (!__atomic_load_n(&bulk_stop, __ATOMIC_RELAXED) && s->sent < (1LL << 40)) {
        ssize_t w = send(s->fd, bulk_buf, sizeof bulk_buf, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            if (!s->err) s->err = errno;
            break;
        }
        __atomic_add_fetch(&s->sent, w, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *bulk_rx(void *arg)
{
    struct bstream *s = arg;
    char *buf = xmalloc(256 * 1024);
    while (!__atomic_load_n(&bulk_stop, __ATOMIC_RELAXED) && s->rcvd < (1LL << 40)) {
        ssize_t r = recv(s->fd, buf, 256 * 1024, 0);
        if (r == 0) { if (!s->err) s->err = ECONNRESET; break; }
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            if (!s->err) s->err = errno;
            break;
        }
        __atomic_add_fetch(&s->rcvd, r, __ATOMIC_RELAXED);
    }
    free(buf);
    return NULL;
}

static void bulk_totals(struct bstream *s, long n, long long *tx, long long *rx)
{
    *tx = *rx = 0;
    for (long i = 0; i < n; i++) {
        *tx += __atomic_load_n(&s[i].sent, __ATOMIC_RELAXED);
        *rx += __atomic_load_n(&s[i].rcvd, __ATOMIC_RELAXED);
    }
}

/* Rates come from the byte counters sampled at the start and at the end of a
 * window that begins after WARM seconds, when the socket buffers on the path are
 * full: in that steady state what the sender hands to the kernel is what the
 * receiver gets.  Received bytes (s2c) are counted at the receiver itself. */
static int mode_bulk(char role)
{
    long n = opt_n < 0 ? 1 : opt_n;
    if (n < 1 || n > 64) { fprintf(stderr, "load: bulk: 1..64 streams\n"); return 2; }
    if (opt_d + opt_warm + 5 > opt_limit) opt_d = opt_limit - opt_warm - 5;
    if (opt_d < 0.1) opt_d = 0.1;
    const char *mname = role == 's' ? "bulk" : role == 'o' ? "bulk-rev" : "bulk-duplex";
    memset(bulk_buf, 'b', sizeof bulk_buf);
    struct bstream *s = calloc((size_t)n, sizeof *s);
    if (!s) return 1;
    for (long i = 0; i < n; i++) {
        int fd = tcp_connect(3000);
        if (fd < 0 || send_all(fd, &role, 1) < 0) {
            printf("mode=%s error=connect:%s\n", mname, etext(fd < 0 ? -fd : errno));
            return 1;
        }
        sock_timeout(fd, 200);      /* threads notice the stop flag within 0.2 s */
        s[i].fd = fd;
    }
    for (long i = 0; i < n; i++) {
        if (role != 'o') s[i].has_tx = pthread_create(&s[i].tx, NULL, bulk_tx, &s[i]) == 0;
        if (role != 's') s[i].has_rx = pthread_create(&s[i].rx, NULL, bulk_rx, &s[i]) == 0;
    }
    usleep((useconds_t)(opt_warm * 1e6));
    long long tx0, rx0, tx1, rx1;
    double t0 = now();
    bulk_totals(s, n, &tx0, &rx0);
    usleep((useconds_t)(opt_d * 1e6));
    double t1 = now();
    bulk_totals(s, n, &tx1, &rx1);
    __atomic_store_n(&bulk_stop, 1, __ATOMIC_RELAXED);
    int err = 0;
    for (long i = 0; i < n; i++) {
        if (s[i].has_tx) pthread_join(s[i].tx, NULL);
        if (s[i].has_rx) pthread_join(s[i].rx, NULL);
        if (!err) err = s[i].err;
        close(s[i].fd);
    }
    double el = t1 - t0;
    double c2s = (double)(tx1 - tx0) * 8 / el / 1e9, s2c = (double)(rx1 - rx0) * 8 / el / 1e9;
    printf("mode=%s streams=%ld secs=%.2f gbps=%.3f c2s_gbps=%.3f s2c_gbps=%.3f c2s_mb=%.0f s2c_mb=%.0f err=%s\n",
           mname, n, el, c2s + s2c, c2s, s2c, (double)(tx1 - tx0) / 1e6, (double)(rx1 - rx0) / 1e6,
           err ? etext(err) : "none");
    return 0;
}

/* ================================================================== rr */
static int mode_rr(void)
{
    long n = opt_n < 0 ? 10000 : opt_n;
    if (n < 1) n = 1;
    if (opt_s < 16) opt_s = 16;
    int fd = tcp_connect(3000);
    if (fd < 0) { printf("mode=rr error=connect:%s\n", etext(-fd)); return 1; }
    nodelay(fd);
    char *out = xmalloc((size_t)opt_s), *in = xmalloc((size_t)opt_s);
    double *lat = xmalloc(sizeof(double) * (size_t)n);
    memset(out, 'r', (size_t)opt_s);
    double deadline = now() + opt_limit;
    for (int i = 0; i < 100; i++) {    /* warm-up, not counted */
        if (send_all(fd, out, (size_t)opt_s) < 0 || recv_all(fd, in, (size_t)opt_s) < 0) {
            printf("mode=rr error=warmup:%s\n", etext(errno));
            return 1;
        }
    }
    long done = 0, bad = 0;
    int err = 0;
    double t0 = now(), t = t0;
    for (long i = 0; i < n && t < deadline; i++) {
        memcpy(out, &i, sizeof i);
        double a = now();
        if (send_all(fd, out, (size_t)opt_s) < 0 || recv_all(fd, in, (size_t)opt_s) < 0) { err = errno; break; }
        t = now();
        if (memcmp(in, out, (size_t)opt_s)) bad++;
        lat[done++] = (t - a) * 1e6;
    }
    double el = now() - t0;
    close(fd);
    qsort(lat, (size_t)done, sizeof *lat, dcmp);
    double sum = 0;
    for (long i = 0; i < done; i++) sum += lat[i];
    printf("mode=rr n=%ld p50_us=%.1f p99_us=%.1f mean_us=%.1f max_us=%.1f rt_per_s=%.0f mismatches=%ld err=%s\n",
           done, pctl(lat, done, 50), pctl(lat, done, 99), done ? sum / (double)done : 0,
           done ? lat[done - 1] : 0, el > 0 ? (double)done / el : 0, bad, err ? etext(err) : "none");
    return done ? 0 : 1;
}

/* ============================================================ connrate */
struct crw {
    pthread_t th;
    double end;
    long ok, f_conn, f_io, f_data;
    int first_err;
    double *lat;
    long nlat, cap;
};

/* One cycle: connect, send S bytes ('c', letters, '\n'), read the S-byte echo,
 * read the EOF of the server, close.  The sink server's role 'c' closes first,
 * so TIME_WAIT stays on the server side of each hop; were the client to close
 * first, every hop's connect() would run out of ephemeral ports (28k here,
 * reusable only after 1-2 s with tcp_tw_reuse) at ~14k connections/s. */
static void *cr_thread(void *arg)
{
    struct crw *w = arg;
    char *out = xmalloc((size_t)opt_s), *in = xmalloc((size_t)opt_s + 1);
    for (int i = 0; i < opt_s; i++) out[i] = (char)('a' + i % 26);
    out[0] = 'c';
    out[opt_s - 1] = '\n';
    for (long it = 0; it < 10000000L; it++) {
        double a = now();
        if (a >= w->end) break;
        int fd = tcp_connect(2000);
        if (fd < 0) {
            w->f_conn++;
            if (!w->first_err) w->first_err = -fd;
            usleep(1000);
            continue;
        }
        ssize_t eof = -1;
        if (send_all(fd, out, (size_t)opt_s) < 0 || recv_all(fd, in, (size_t)opt_s) < 0 ||
            (eof = recv(fd, in + opt_s, 1, 0)) != 0) {
            w->f_io++;
            if (!w->first_err) w->first_err = eof > 0 ? EPROTO : errno;
            close(fd);
            usleep(1000);
            continue;
        }
        close(fd);
        if (memcmp(in, out, (size_t)opt_s)) { w->f_data++; continue; }
        w->ok++;
        if (w->nlat < w->cap) w->lat[w->nlat++] = (now() - a) * 1e6;
    }
    free(out);
    free(in);
    return NULL;
}

static int mode_connrate(void)
{
    int nw = opt_w < 1 ? 1 : opt_w > 128 ? 128 : opt_w;
    if (opt_s < 16) opt_s = 16;
    if (opt_d > opt_limit - 5) opt_d = opt_limit - 5;
    struct crw *w = calloc((size_t)nw, sizeof *w);
    if (!w) return 1;
    double t0 = now();
    for (int i = 0; i < nw; i++) {
        w[i].end = t0 + opt_d;
        w[i].cap = 500000;
        w[i].lat = xmalloc(sizeof(double) * (size_t)w[i].cap);
        if (pthread_create(&w[i].th, NULL, cr_thread, &w[i])) { nw = i; break; }
    }
    long ok = 0, fc = 0, fio = 0, fd = 0, nl = 0;
    int ferr = 0;
    for (int i = 0; i < nw; i++) {
        pthread_join(w[i].th, NULL);
        ok += w[i].ok; fc += w[i].f_conn; fio += w[i].f_io; fd += w[i].f_data; nl += w[i].nlat;
        if (!ferr) ferr = w[i].first_err;
    }
    double el = now() - t0;
    double *all = xmalloc(sizeof(double) * (size_t)nl);
    long k = 0;
    for (int i = 0; i < nw; i++) {
        memcpy(all + k, w[i].lat, sizeof(double) * (size_t)w[i].nlat);
        k += w[i].nlat;
    }
    qsort(all, (size_t)nl, sizeof *all, dcmp);
    printf("mode=connrate threads=%d secs=%.2f conns=%ld conn_per_s=%.0f failures=%ld fail_connect=%ld "
           "fail_io=%ld fail_data=%ld p50_us=%.0f p99_us=%.0f first_err=%s\n",
           nw, el, ok, (double)ok / el, fc + fio + fd, fc, fio, fd, pctl(all, nl, 50), pctl(all, nl, 99),
           ferr ? etext(ferr) : "none");
    return ok ? 0 : 1;
}

/* ================================================================ conc */
enum { C_IDLE, C_CONNECTING, C_ECHO, C_OK, C_FAILED };

static int mode_conc(void)
{
    long C = opt_c < 1 ? 1 : opt_c;
    int K = opt_k < 1 ? 1 : opt_k;
    double tmo = (opt_t < 0 ? 3000 : opt_t) / 1000.0;
    nofile_max();
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGUSR1, on_signal);
    int *fd = xmalloc(sizeof(int) * (size_t)C);
    unsigned char *st = calloc((size_t)C, 1);
    double *t_start = xmalloc(sizeof(double) * (size_t)C);
    long *setup = xmalloc(sizeof(long) * (size_t)K);
    if (!st) return 1;
    int nset = 0;
    long next = 0, ok = 0, f_conn = 0, f_echo = 0, f_tmo = 0, streak = 0;
    int ferr = 0, gave_up = 0;
    int cep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event evs[64];
    double t0 = now(), limit = t0 + opt_limit;
    for (long i = 0; i < C; i++) fd[i] = -1;

#define FAIL(i, ctr, e) do {                                            \
        st[i] = C_FAILED; ctr++; streak++; if (!ferr) ferr = (e);       \
        if (fd[i] >= 0) { close(fd[i]); fd[i] = -1; }                   \
    } while (0)

    /* A connection counts once connected AND its 1-byte echo came back.  Setup
     * stops after 32 failures in a row (the proxy is out of fds or refuses). */
    while (!got_signal && now() < limit) {
        while (!gave_up && next < C && nset < K) {
            long i = next++;
            int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (s < 0) { FAIL(i, f_conn, errno); if (streak >= 32) gave_up = 1; continue; }
            fd[i] = s;
            if (connect(s, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS) {
                FAIL(i, f_conn, errno);
                if (streak >= 32) gave_up = 1;
                continue;
            }
            st[i] = C_CONNECTING;
            t_start[i] = now();
            setup[nset++] = i;
            struct epoll_event e = { .events = EPOLLOUT, .data.u64 = (uint64_t)i };
            (void)epoll_ctl(cep, EPOLL_CTL_ADD, s, &e);
        }
        if (nset == 0) break;
        int n = epoll_wait(cep, evs, 64, 20);
        for (int j = 0; j < n; j++) {
            long i = (long)evs[j].data.u64;
            if (st[i] == C_CONNECTING) {
                int e = 0;
                socklen_t el = sizeof e;
                (void)getsockopt(fd[i], SOL_SOCKET, SO_ERROR, &e, &el);
                char b = (char)('A' + i % 26);
                if (e) { FAIL(i, f_conn, e); continue; }
                if (send(fd[i], &b, 1, MSG_NOSIGNAL) != 1) { FAIL(i, f_echo, errno); continue; }
                st[i] = C_ECHO;
                struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)i };
                (void)epoll_ctl(cep, EPOLL_CTL_MOD, fd[i], &ev);
            } else if (st[i] == C_ECHO) {
                char b;
                ssize_t r = recv(fd[i], &b, 1, MSG_DONTWAIT);
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                if (r == 1 && b == (char)('A' + i % 26)) {
                    st[i] = C_OK;
                    ok++;
                    streak = 0;
                    (void)epoll_ctl(cep, EPOLL_CTL_DEL, fd[i], NULL);
                } else {
                    FAIL(i, f_echo, r == 0 ? ECONNRESET : r < 0 ? errno : EPROTO);
                }
            }
        }
        double t = now();
        int m = 0;
        for (int j = 0; j < nset; j++) {
            long i = setup[j];
            if (st[i] != C_CONNECTING && st[i] != C_ECHO) continue;
            if (t - t_start[i] > tmo) { FAIL(i, f_tmo, ETIMEDOUT); continue; }
            setup[m++] = i;
        }
        nset = m;
        if (streak >= 32) gave_up = 1;
    }
    for (int j = 0; j < nset; j++)
        if (st[setup[j]] == C_CONNECTING || st[setup[j]] == C_ECHO) FAIL(setup[j], f_tmo, ETIMEDOUT);
    double setup_s = now() - t0;
    printf("READY ok=%ld failed=%ld setup_s=%.2f\n", ok, C - ok, setup_s);
    fflush(stdout);

    double hold_end = now() + opt_hold;
    if (hold_end > limit) hold_end = limit;
    while (!got_signal && now() < hold_end) usleep(10000);

    long alive = 0;
    for (long i = 0; i < C; i++) {
        if (st[i] != C_OK) continue;
        char b;
        ssize_t r = recv(fd[i], &b, 1, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) alive++;
    }
    for (long i = 0; i < C; i++)
        if (fd[i] >= 0) close(fd[i]);
    printf("mode=conc conns=%ld ok=%ld failed=%ld fail_connect=%ld fail_echo=%ld fail_timeout=%ld "
           "not_tried=%ld setup_s=%.2f alive_at_end=%ld first_err=%s\n",
           C, ok, C - ok, f_conn, f_echo, f_tmo, C - next, setup_s, alive, ferr ? etext(ferr) : "none");
    return 0;
#undef FAIL
}

/* ================================================================= udp */
static int udp_open(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    big_bufs(fd, 16 << 20);
    if (connect(fd, (struct sockaddr *)&target, sizeof target) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* send datagram number seq, wait up to ms for its echo: 1 got it, 0 not */
static int udp_once(int fd, char *out, char *in, uint32_t seq, int ms, long *refused)
{
    memcpy(out, &seq, sizeof seq);
    if (send(fd, out, (size_t)opt_s, 0) < 0 && errno == ECONNREFUSED) (*refused)++;
    double end = now() + ms / 1000.0;
    for (int guard = 0; guard < 10000; guard++) {
        int left = (int)((end - now()) * 1000 + 0.5);
        if (left <= 0) return 0;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, left);
        if (r <= 0) { if (r < 0 && errno == EINTR) continue; return 0; }
        ssize_t got = recv(fd, in, (size_t)opt_s, MSG_DONTWAIT);
        if (got < 0) { if (errno == ECONNREFUSED) (*refused)++; continue; }
        uint32_t s;
        memcpy(&s, in, sizeof s);
        if (got == opt_s && s == seq) return 1;   /* else a late echo of an older one */
    }
    return 0;
}

static int mode_udp_rr(void)
{
    long n = opt_n < 0 ? 10000 : opt_n;
    int ms = opt_t < 0 ? 200 : opt_t;
    if (opt_s < 8 || opt_s > 1400) opt_s = 64;
    int fd = udp_open();
    if (fd < 0) { printf("mode=udp-rr error=socket:%s\n", etext(-fd)); return 1; }
    char *out = xmalloc((size_t)opt_s), *in = xmalloc((size_t)opt_s);
    memset(out, 'u', (size_t)opt_s);
    double *lat = xmalloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    long refused = 0, lost = 0, done = 0, warm_ok = 0;
    uint32_t seq = 0;
    for (int i = 0; i < 20; i++) warm_ok += udp_once(fd, out, in, ++seq, 500, &refused);
    if (!warm_ok) { printf("mode=udp-rr error=no_echo refused=%ld\n", refused); return 1; }
    double deadline = now() + opt_limit, t0 = now();
    for (long i = 0; i < n && now() < deadline; i++) {
        double a = now();
        if (udp_once(fd, out, in, ++seq, ms, &refused)) lat[done++] = (now() - a) * 1e6;
        else lost++;
    }
    double el = now() - t0;
    qsort(lat, (size_t)done, sizeof *lat, dcmp);
    printf("mode=udp-rr n=%ld p50_us=%.1f p99_us=%.1f rt_per_s=%.0f lost=%ld refused=%ld\n", done,
           pctl(lat, done, 50), pctl(lat, done, 99), el > 0 ? (double)done / el : 0, lost, refused);
    return 0;
}

/* One thread sends the datagrams as fast as it can and, after every 16, drains
 * whatever echoes have arrived (so the sender is paced only by its own work).
 * After the last one it keeps draining until 300 ms pass without an echo. */
static long burst_drain(int fd, char *buf, size_t cap, double *t_last)
{
    long n = 0;
    for (int i = 0; i < 100000; i++) {
        ssize_t got = recv(fd, buf, cap, MSG_DONTWAIT);
        if (got < 0) break;
        if (got == opt_s && buf[4] == 'B') n++;   /* warm-up echoes are not 'B' */
    }
    if (n) *t_last = now();
    return n;
}

static int mode_udp_burst(void)
{
    long n = opt_n < 0 ? 100000 : opt_n;
    if (opt_s < 8 || opt_s > 1400) opt_s = 64;
    int fd = udp_open();
    if (fd < 0) { printf("mode=udp-burst error=socket:%s\n", etext(-fd)); return 1; }
    char *out = xmalloc((size_t)opt_s), in[2048];
    memset(out, 'w', (size_t)opt_s);
    long refused = 0, warm_ok = 0;
    uint32_t seq = 0;
    for (int i = 0; i < 10; i++) warm_ok += udp_once(fd, out, in, ++seq, 500, &refused);
    if (!warm_ok) { printf("mode=udp-burst error=no_echo refused=%ld\n", refused); return 1; }
    memset(out, 'B', (size_t)opt_s);
    double t0 = now(), t_last = t0, deadline = t0 + opt_limit / 2;
    long sent = 0, send_err = 0, rcvd = 0;
    for (long i = 0; i < n; i++) {
        if ((i & 15) == 15) {
            rcvd += burst_drain(fd, in, sizeof in, &t_last);
            if (now() > deadline) break;
        }
        uint32_t s = (uint32_t)i;
        memcpy(out, &s, sizeof s);
        if (send(fd, out, (size_t)opt_s, 0) < 0) { send_err++; continue; }
        sent++;
    }
    double t_sent = now();
    for (int i = 0; i < 100000 && now() < t0 + opt_limit; i++) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, 300);
        if (r == 0) break;                  /* 300 ms of silence */
        if (r < 0) { if (errno == EINTR) continue; break; }
        rcvd += burst_drain(fd, in, sizeof in, &t_last);
    }
    double span = t_last - t0;
    printf("mode=udp-burst sent=%ld echoed=%ld loss_pct=%.2f sent_per_s=%.0f echo_per_s=%.0f send_errors=%ld\n",
           sent, rcvd, sent ? 100.0 * (double)(sent - rcvd) / (double)sent : 0,
           (double)sent / (t_sent - t0), span > 0 ? (double)rcvd / span : 0, send_err);
    return 0;
}

/* ================================================================= tls */
#ifndef LOAD_NO_TLS
/* The TLS server (tls-serve) runs one thread per connection with blocking
 * OpenSSL I/O; the first byte of plaintext picks the role as in the sink
 * server: 'c' echo everything up to a '\n', then close_notify and close (the
 * server closes first, see connrate), anything else discard until EOF.  No
 * session cache on either side, so every handshake is a full one; the server
 * still sends OpenSSL's default two TLS 1.3 tickets (the client drops them),
 * like most servers.  Without them the server sends nothing after the
 * client's Finished, its ACK is delayed (40 ms), and a proxy that writes
 * Finished and the request separately without TCP_NODELAY (sslsplit) waits
 * that long on every connection. */
static SSL_CTX *tls_sctx;
static int tls_nthreads;                        /* __atomic */
static long long tls_acc, tls_hs_ok, tls_hs_fail, tls_in; /* __atomic */

/* OpenSSL's or the system's reason for the last failure, without spaces */
static const char *tls_err(SSL *ssl, int ret)
{
    static __thread char b[200];
    int se = ssl ? SSL_get_error(ssl, ret) : SSL_ERROR_SSL;
    int e = errno;
    unsigned long q = ERR_peek_error();
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (vr != X509_V_OK) snprintf(b, sizeof b, "verify:%s", X509_verify_cert_error_string(vr));
    else if (q) ERR_error_string_n(q, b, sizeof b);
    else if (se == SSL_ERROR_SYSCALL) snprintf(b, sizeof b, "syscall:%s", e ? strerror(e) : "eof");
    else snprintf(b, sizeof b, "ssl_error_%d", se);
    ERR_clear_error();
    for (char *p = b; *p; p++)
        if (isspace((unsigned char)*p) || *p == '=') *p = '_';
    return b;
}

static void *tls_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *buf = xmalloc(64 * 1024), *line = xmalloc(64 * 1024);
    size_t llen = 0;
    char role = 0;
    sock_timeout(fd, 10000);
    SSL *ssl = SSL_new(tls_sctx);
    if (ssl && SSL_set_fd(ssl, fd) == 1 && SSL_accept(ssl) == 1) {
        __atomic_add_fetch(&tls_hs_ok, 1, __ATOMIC_RELAXED);
        /* bounded by 1 TiB, by the signal, and by the client's EOF or the 10 s timeout */
        for (long long got = 0; got < (1LL << 40) && !got_signal;) {
            int r = SSL_read(ssl, buf, 64 * 1024);
            if (r <= 0) break;
            got += r;
            __atomic_add_fetch(&tls_in, r, __ATOMIC_RELAXED);
            if (!role) role = buf[0] == 'c' ? 'c' : 's';
            if (role != 'c') continue;
            size_t n = (size_t)r < 64 * 1024 - llen ? (size_t)r : 64 * 1024 - llen;
            memcpy(line + llen, buf, n);
            llen += n;
            if (memchr(buf, '\n', (size_t)r) || llen == 64 * 1024) {
                if (SSL_write(ssl, line, (int)llen) == (int)llen) (void)SSL_shutdown(ssl);
                break;
            }
        }
        /* answer the client's close_notify with ours ('c' sent it already) */
        if (role != 'c' && (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN)) (void)SSL_shutdown(ssl);
    } else {
        __atomic_add_fetch(&tls_hs_fail, 1, __ATOMIC_RELAXED);
    }
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
    free(buf);
    free(line);
    __atomic_sub_fetch(&tls_nthreads, 1, __ATOMIC_RELAXED);
    return NULL;
}

static int mode_tls_serve(void)
{
    double life = opt_limit > 0 ? opt_limit : 3600;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    nofile_max();
    if (!opt_cert || !opt_key) { fprintf(stderr, "load: tls-serve needs -C CERT -K KEY\n"); return 2; }
    tls_sctx = SSL_CTX_new(TLS_server_method());
    if (!tls_sctx || SSL_CTX_use_certificate_chain_file(tls_sctx, opt_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(tls_sctx, opt_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(tls_sctx) != 1) {
        fprintf(stderr, "load: tls-serve: %s\n", tls_err(NULL, 0));
        return 1;
    }
    SSL_CTX_set_session_cache_mode(tls_sctx, SSL_SESS_CACHE_OFF);

    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) { perror("load: socket"); return 1; }
    (void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&target, sizeof target) < 0 || listen(lfd, 4096) < 0) {
        fprintf(stderr, "load: tcp %s:%d: %s\n", opt_addr, opt_port, strerror(errno));
        return 1;
    }
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    fprintf(stderr, "load: tls server on %s:%d\n", opt_addr, opt_port);
    double end = now() + life;
    long refused = 0;
    while (!got_signal && now() < end) {
        struct pollfd p = { .fd = lfd, .events = POLLIN };
        if (poll(&p, 1, 500) <= 0) continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        nodelay(fd);
        pthread_t th;
        /* at most 1000 connections at once: a runaway client cannot exhaust the machine */
        if (__atomic_add_fetch(&tls_nthreads, 1, __ATOMIC_RELAXED) > 1000 ||
            pthread_create(&th, &at, tls_conn, (void *)(intptr_t)fd)) {
            __atomic_sub_fetch(&tls_nthreads, 1, __ATOMIC_RELAXED);
            close(fd);
            refused++;
            continue;
        }
        tls_acc++;
    }
    /* let running connections notice the signal (their reads time out in 10 s at most) */
    for (int i = 0; i < 110 && __atomic_load_n(&tls_nthreads, __ATOMIC_RELAXED) > 0; i++) usleep(100000);
    printf("mode=tls-serve conns=%lld handshakes=%lld handshake_failures=%lld refused=%ld bytes_in=%lld\n",
           tls_acc, tls_hs_ok, tls_hs_fail, refused, tls_in);
    return 0;
}

/* client side: full handshakes only (no session cache), the peer verified
 * against -A (the upstream's CA and the proxies' CA) and -N as host name */
static SSL_CTX *tls_cctx;

static int tls_client_ctx(void)
{
    tls_cctx = SSL_CTX_new(TLS_client_method());
    if (!tls_cctx) return -1;
    SSL_CTX_set_session_cache_mode(tls_cctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(tls_cctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(tls_cctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (opt_ca) {
        if (SSL_CTX_load_verify_locations(tls_cctx, opt_ca, NULL) != 1) return -1;
        SSL_CTX_set_verify(tls_cctx, SSL_VERIFY_PEER, NULL);
    }
    return 0;
}

/* what the first successful handshake saw: protocol, cipher, group, and the
 * certificate (issuer CN, key, SHA-256), so that run.sh can tell a forged
 * certificate from the upstream's */
static pthread_mutex_t tls_info_mu = PTHREAD_MUTEX_INITIALIZER;
static char tls_info[640] = "proto=na";

static void word(char *s)
{
    for (; *s; s++)
        if (isspace((unsigned char)*s) || *s == '=') *s = '_';
}

static void tls_note(SSL *ssl)
{
    static int done;
    pthread_mutex_lock(&tls_info_mu);
    if (!done) {
        X509 *x = SSL_get1_peer_certificate(ssl);
        char cn[128] = "none", hex[65] = "none", group[64] = "na", key[64] = "na";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        if (x) {
            if (X509_NAME_get_text_by_NID(X509_get_issuer_name(x), NID_commonName, cn, sizeof cn) < 0)
                snprintf(cn, sizeof cn, "none");
            if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1)
                for (unsigned int i = 0; i < mdlen && i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
            EVP_PKEY *k = X509_get0_pubkey(x);
            if (k) snprintf(key, sizeof key, "%s-%d", OBJ_nid2sn(EVP_PKEY_get_base_id(k)), EVP_PKEY_get_bits(k));
            X509_free(x);
        }
        int g = SSL_get_negotiated_group(ssl);
        if (g) snprintf(group, sizeof group, "%s", OBJ_nid2sn(g & ~TLSEXT_nid_unknown));
        word(cn);
        word(group);
        word(key);
        snprintf(tls_info, sizeof tls_info, "proto=%s cipher=%s group=%s cert_key=%s issuer_cn=%s cert_sha256=%s",
                 SSL_get_version(ssl), SSL_get_cipher_name(ssl), group, key, cn, hex);
        done = 1;
    }
    pthread_mutex_unlock(&tls_info_mu);
}

/* TCP connect and TLS handshake; NULL with *kind = 'c' (connect) or 't' (TLS) */
static SSL *tls_open(int ms, int *kind, const char **why)
{
    ERR_clear_error();
    int fd = tcp_connect(ms);
    if (fd < 0) { *kind = 'c'; *why = etext(-fd); return NULL; }
    nodelay(fd);
    SSL *ssl = SSL_new(tls_cctx);
    if (!ssl) { close(fd); *kind = 't'; *why = tls_err(NULL, 0); return NULL; }
    (void)SSL_set_fd(ssl, fd);
    (void)SSL_set_tlsext_host_name(ssl, opt_name);
    (void)SSL_set1_host(ssl, opt_name);
    int r = SSL_connect(ssl);
    if (r != 1) {
        *kind = 't';
        *why = tls_err(ssl, r);
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    tls_note(ssl);
    return ssl;
}

/* send our close_notify (the peer's is not waited for), close.  Whatever
 * the peer sent and nobody read (tls-bulk never reads: the proxy's tickets) is
 * drained first, or close() would answer with a reset. */
static void tls_close(SSL *ssl)
{
    int fd = SSL_get_fd(ssl);
    char b[4096];
    (void)SSL_shutdown(ssl);
    ERR_clear_error();
    SSL_free(ssl);
    for (int i = 0; i < 64 && recv(fd, b, sizeof b, MSG_DONTWAIT) > 0; i++) {}
    close(fd);
}

struct hsw {
    pthread_t th;
    double end;
    long max, ok, f_conn, f_tls, f_io, f_data, clean;
    char ferr[200];
    double *lat;
    long nlat, cap;
};

/* One cycle: connect, full handshake, send S bytes ('c', letters, '\n'), read
 * the S-byte echo, read the end (close_notify or a bare EOF: both count, the
 * clean ones are reported), send close_notify, close. */
static void *hs_thread(void *arg)
{
    struct hsw *w = arg;
    char *out = xmalloc((size_t)opt_s), *in = xmalloc((size_t)opt_s + 1);
    for (int i = 0; i < opt_s; i++) out[i] = (char)('a' + i % 26);
    out[0] = 'c';
    out[opt_s - 1] = '\n';
    for (long it = 0; it < 10000000L && w->ok < w->max; it++) {
        double a = now();
        if (a >= w->end) break;
        int kind = 0;
        const char *why = NULL;
        SSL *ssl = tls_open(2000, &kind, &why);
        if (!ssl) {
            if (kind == 'c') w->f_conn++; else w->f_tls++;
            if (!w->ferr[0]) snprintf(w->ferr, sizeof w->ferr, "%s:%s", kind == 'c' ? "connect" : "tls", why);
            usleep(1000);
            continue;
        }
        int r = SSL_write(ssl, out, opt_s), got = 0, bad = 0;
        if (r != opt_s) bad = 1;
        for (int i = 0; !bad && got < opt_s && i < 1000; i++) {
            r = SSL_read(ssl, in + got, opt_s - got);
            if (r <= 0) bad = 1;
            else got += r;
        }
        if (!bad) {
            r = SSL_read(ssl, in + opt_s, 1);
            if (r > 0) bad = 2;
            else if (SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN) w->clean++;
        }
        if (bad) {
            w->f_io++;
            if (!w->ferr[0]) snprintf(w->ferr, sizeof w->ferr, "io:%s", bad == 2 ? "extra_data" : tls_err(ssl, r));
            tls_close(ssl);
            usleep(1000);
            continue;
        }
        ERR_clear_error();      /* a bare EOF leaves an "unexpected eof" in the queue */
        tls_close(ssl);
        if (memcmp(in, out, (size_t)opt_s)) { w->f_data++; continue; }
        w->ok++;
        if (w->nlat < w->cap) w->lat[w->nlat++] = (now() - a) * 1e6;
    }
    free(out);
    free(in);
    return NULL;
}

static int mode_tls_hs(void)
{
    int nw = opt_w < 1 ? 1 : opt_w > 128 ? 128 : opt_w;
    if (opt_s < 16) opt_s = 16;
    if (opt_d > opt_limit - 5) opt_d = opt_limit - 5;
    if (tls_client_ctx() < 0) { printf("mode=tls-hs error=ctx:%s\n", tls_err(NULL, 0)); return 1; }
    /* -n N: stop after N handshakes in all (N < threads: fewer threads) */
    long max = opt_n > 0 ? opt_n : 1L << 40;
    if (opt_n > 0 && opt_n < nw) nw = (int)opt_n;
    struct hsw *w = calloc((size_t)nw, sizeof *w);
    if (!w) return 1;
    double t0 = now();
    for (int i = 0; i < nw; i++) {
        w[i].end = t0 + opt_d;
        w[i].max = max == 1L << 40 ? max : max / nw + (i < max % nw);
        w[i].cap = 200000;
        w[i].lat = xmalloc(sizeof(double) * (size_t)w[i].cap);
        if (pthread_create(&w[i].th, NULL, hs_thread, &w[i])) { nw = i; break; }
    }
    long ok = 0, fc = 0, ft = 0, fio = 0, fd = 0, nl = 0, clean = 0;
    const char *ferr = "none";
    for (int i = 0; i < nw; i++) {
        pthread_join(w[i].th, NULL);
        ok += w[i].ok; fc += w[i].f_conn; ft += w[i].f_tls; fio += w[i].f_io; fd += w[i].f_data;
        nl += w[i].nlat; clean += w[i].clean;
        if (!strcmp(ferr, "none") && w[i].ferr[0]) ferr = w[i].ferr;
    }
    double el = now() - t0;
    double *all = xmalloc(sizeof(double) * (size_t)(nl ? nl : 1));
    long k = 0;
    for (int i = 0; i < nw; i++) {
        memcpy(all + k, w[i].lat, sizeof(double) * (size_t)w[i].nlat);
        k += w[i].nlat;
    }
    qsort(all, (size_t)nl, sizeof *all, dcmp);
    printf("mode=tls-hs threads=%d secs=%.2f handshakes=%ld hs_per_s=%.0f failures=%ld fail_connect=%ld "
           "fail_tls=%ld fail_io=%ld fail_data=%ld close_notify=%ld p50_us=%.0f p99_us=%.0f %s first_err=%s\n",
           nw, el, ok, (double)ok / el, fc + ft + fio + fd, fc, ft, fio, fd, clean, pctl(all, nl, 50),
           pctl(all, nl, 99), tls_info, ferr);
    return ok ? 0 : 1;
}

/* bulk over TLS, client -> server ('s': the server discards), counted like
 * mode_bulk: bytes SSL_write accepted in a window after the warm-up */
static void *tls_tx(void *arg)
{
    struct bstream *s = arg;
    while (!__atomic_load_n(&bulk_stop, __ATOMIC_RELAXED) && s->sent < (1LL << 40)) {
        int w = SSL_write(s->ssl, bulk_buf, (int)sizeof bulk_buf);
        if (w <= 0) {
            int e = SSL_get_error(s->ssl, w);
            if (e == SSL_ERROR_WANT_WRITE || (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EINTR))) {
                ERR_clear_error();
                continue;   /* the 0.2 s send timeout: look at the stop flag, then retry */
            }
            if (!s->err) s->err = EPIPE;
            ERR_clear_error();
            break;
        }
        __atomic_add_fetch(&s->sent, w, __ATOMIC_RELAXED);
    }
    return NULL;
}

static int mode_tls_bulk(void)
{
    long n = opt_n < 0 ? 1 : opt_n;
    if (n < 1 || n > 64) { fprintf(stderr, "load: tls-bulk: 1..64 streams\n"); return 2; }
    if (opt_d + opt_warm + 5 > opt_limit) opt_d = opt_limit - opt_warm - 5;
    if (opt_d < 0.1) opt_d = 0.1;
    if (tls_client_ctx() < 0) { printf("mode=tls-bulk error=ctx:%s\n", tls_err(NULL, 0)); return 1; }
    memset(bulk_buf, 'b', sizeof bulk_buf);
    struct bstream *s = calloc((size_t)n, sizeof *s);
    if (!s) return 1;
    for (long i = 0; i < n; i++) {
        int kind = 0;
        const char *why = NULL;
        SSL *ssl = tls_open(3000, &kind, &why);
        if (!ssl || SSL_write(ssl, "s", 1) != 1) {
            printf("mode=tls-bulk error=%s:%s\n", !ssl && kind == 'c' ? "connect" : "tls", ssl ? tls_err(ssl, 0) : why);
            return 1;
        }
        sock_timeout(SSL_get_fd(ssl), 200);
        s[i].ssl = ssl;
    }
    for (long i = 0; i < n; i++) s[i].has_tx = pthread_create(&s[i].tx, NULL, tls_tx, &s[i]) == 0;
    usleep((useconds_t)(opt_warm * 1e6));
    long long tx0, rx0, tx1, rx1;
    double t0 = now();
    bulk_totals(s, n, &tx0, &rx0);
    usleep((useconds_t)(opt_d * 1e6));
    double t1 = now();
    bulk_totals(s, n, &tx1, &rx1);
    __atomic_store_n(&bulk_stop, 1, __ATOMIC_RELAXED);
    int err = 0;
    for (long i = 0; i < n; i++) {
        if (s[i].has_tx) pthread_join(s[i].tx, NULL);
        if (!err) err = s[i].err;
        tls_close(s[i].ssl);
    }
    double el = t1 - t0;
    printf("mode=tls-bulk streams=%ld secs=%.2f gbps=%.3f c2s_mb=%.0f %s err=%s\n", n, el,
           (double)(tx1 - tx0) * 8 / el / 1e9, (double)(tx1 - tx0) / 1e6, tls_info, err ? etext(err) : "none");
    return 0;
}
#endif /* LOAD_NO_TLS */

/* =========================================================== /proc helpers */
struct pinfo { int pid, ppid; };

static struct pinfo *plist;
static int pcount;

static void proc_scan(void)
{
    DIR *d = opendir("/proc");
    if (!d) return;
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!isdigit((unsigned char)de->d_name[0])) continue;
        char path[64], buf[512];
        int pid = atoi(de->d_name);
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *rp = strrchr(buf, ')');
        char state;
        int ppid;
        if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2 || state == 'Z') continue;
        if (pcount == cap) {
            cap = cap ? cap * 2 : 1024;
            plist = realloc(plist, sizeof *plist * (size_t)cap);
            if (!plist) exit(1);
        }
        plist[pcount].pid = pid;
        plist[pcount].ppid = ppid;
        pcount++;
    }
    closedir(d);
}

/* root and its descendants in breadth-first order; returns the count */
static int proc_tree(int root, int *out)
{
    int n = 0;
    for (int i = 0; i < pcount; i++)
        if (plist[i].pid == root) { out[n++] = root; break; }
    for (int h = 0; h < n; h++)
        for (int i = 0; i < pcount && n < pcount; i++)
            if (plist[i].ppid == out[h]) out[n++] = plist[i].pid;
    return n;
}

static long kib_field(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    size_t kl = strlen(key);
    long v = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl)) { v = atol(line + kl); break; }
    fclose(f);
    return v;
}

static int helper(const char *what, int pid)
{
    if (pid <= 1) { fprintf(stderr, "load: bad pid\n"); return 2; }
    proc_scan();
    int *t = xmalloc(sizeof(int) * (size_t)(pcount + 1));
    int n = proc_tree(pid, t);
    if (!strcmp(what, "pids")) {
        for (int i = n - 1; i >= 0; i--) printf("%d\n", t[i]);
        return n ? 0 : 1;
    }
    long rss = 0, pss = 0;
    for (int i = 0; i < n; i++) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/status", t[i]);
        rss += kib_field(p, "VmRSS:");
        snprintf(p, sizeof p, "/proc/%d/smaps_rollup", t[i]);
        pss += kib_field(p, "Pss:");
    }
    printf("procs=%d rss_kib=%ld pss_kib=%ld\n", n, rss, pss);
    return n ? 0 : 1;
}

/* ================================================================ main */
static void usage(void)
{
    fprintf(stderr,
            "usage: load MODE -p PORT [-a ADDR] [-n N] [-c C] [-k K] [-w W] [-d SECS] [-W WARM]\n"
            "            [-s SIZE] [-t MS] [-H HOLD] [-L LIMIT] [-C CERT] [-K KEY] [-A CAFILE] [-N NAME]\n"
            "modes: echo sink bulk bulk-rev bulk-duplex rr connrate conc udp-rr udp-burst\n"
            "       tls-serve tls-hs tls-bulk (unless built with -DLOAD_NO_TLS)\n"
            "       load mem PID | load pids PID\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) { usage(); return 2; }
    const char *mode = argv[1];
    if (!strcmp(mode, "mem") || !strcmp(mode, "pids")) {
        if (argc != 3) { usage(); return 2; }
        return helper(mode, atoi(argv[2]));
    }
    int o;
    optind = 2;
    while ((o = getopt(argc, argv, "a:p:n:c:k:w:d:W:s:t:H:L:C:K:A:N:x:")) != -1) {
        switch (o) {
        case 'a': opt_addr = optarg; break;
        case 'p': opt_port = atoi(optarg); break;
        case 'n': opt_n = atol(optarg); break;
        case 'c': opt_c = atol(optarg); break;
        case 'k': opt_k = atoi(optarg); break;
        case 'w': opt_w = atoi(optarg); break;
        case 'd': opt_d = atof(optarg); break;
        case 'W': opt_warm = atof(optarg); break;
        case 's': opt_s = atoi(optarg); break;
        case 't': opt_t = atoi(optarg); break;
        case 'H': opt_hold = atof(optarg); break;
        case 'L': opt_limit = atof(optarg); break;
        case 'C': opt_cert = optarg; break;
        case 'K': opt_key = optarg; break;
        case 'A': opt_ca = optarg; break;
        case 'N': opt_name = optarg; break;
        case 'x':
            if ((optarg[0] != 's' && optarg[0] != 'h') || optarg[1] != ':') { usage(); return 2; }
            proxy_kind = optarg[0];
            proxy_dport = atoi(optarg + 2);
            break;
        default: usage(); return 2;
        }
    }
    if (opt_port <= 0 || opt_port > 65535) { fprintf(stderr, "load: need -p PORT\n"); return 2; }
    if (opt_s < 1 || opt_s > 1 << 20) opt_s = 64;
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)opt_port);
    if (inet_pton(AF_INET, opt_addr, &target.sin_addr) != 1) { fprintf(stderr, "load: bad address\n"); return 2; }
    signal(SIGPIPE, SIG_IGN);

    if (!strcmp(mode, "echo")) return serve(1);
    if (!strcmp(mode, "sink")) return serve(0);
#ifndef LOAD_NO_TLS
    if (!strcmp(mode, "tls-serve")) return mode_tls_serve();
#endif
    if (opt_limit <= 0) opt_limit = 60;
    if (!strcmp(mode, "bulk")) return mode_bulk('s');
    if (!strcmp(mode, "bulk-rev")) return mode_bulk('o');
    if (!strcmp(mode, "bulk-duplex")) return mode_bulk('d');
    if (!strcmp(mode, "rr")) return mode_rr();
    if (!strcmp(mode, "connrate")) return mode_connrate();
    if (!strcmp(mode, "conc")) return mode_conc();
    if (!strcmp(mode, "udp-rr")) return mode_udp_rr();
    if (!strcmp(mode, "udp-burst")) return mode_udp_burst();
#ifndef LOAD_NO_TLS
    if (!strcmp(mode, "tls-hs")) return mode_tls_hs();
    if (!strcmp(mode, "tls-bulk")) return mode_tls_bulk();
#endif
    usage();
    return 2;
}
