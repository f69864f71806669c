#!/usr/bin/env python3
"""fault_tool.py - peers for tests/faults.bats (the fault injection filters).

Times are milliseconds of CLOCK_MONOTONIC (time.monotonic()), the same clock
in every process, so a client's and a server's times can be compared.
"Pattern bytes" are the bytes i % 251 for i = 0, 1, 2, ...

  pattern N
      print the sha256 of the first N pattern bytes

  server PORTFILE LOG [--echo] [--send N]
      a TCP server on 127.0.0.1 (port 0); writes the port to PORTFILE once it
      listens, and serves every connection in its own thread, numbered from
      1 in accept order.  Appends to LOG, one line each:
        K accept T
        K recv T LEN           per chunk received
        K end eof|reset T bytes=N sha256=H    (all the bytes received)
      --echo    send every chunk back
      --send N  on accept, send N pattern bytes (then read as usual)

  conn HOST PORT [options]
      one TCP connection: connect (from --bind ADDR), send (--send TEXT with
      C escapes, or --send-n N pattern bytes, in one write) and shut down
      the sending side with --shut, all in a thread of its own, while
      reading until --expect N bytes came, or with --until-close until the
      peer closes (at most --timeout seconds, default 10); a reset met by
      either thread counts as closed=reset.  Prints one line:
        recv=N sha256=H closed=eof|reset|timeout|open start=T first=MS
        elapsed=MS
      start: when the bytes were sent (after connect); first: ms from start
      to the first byte received (-1 for none); elapsed: ms from start to
      the end of reading.  With --hold S, keeps the socket open S seconds
      more before closing.  With --tls-sni NAME, a TLS client (checking no
      certificate) asking for NAME; start is then after the handshake.
      Exit 0 unless connecting failed.

  lines HOST PORT COUNT [--gap MS] [--timeout S]
      send COUNT lines "line-001\\n"... one write each, --gap ms apart,
      reading all the while, until COUNT lines came back; prints the lines
      received, then on stderr "first=MS last=MS" (ms from the first send).
      Exit 1 if fewer came back within --timeout (default 10) seconds.

  flood HOST PORT SECONDS MAXBYTES
      send as fast as the peer takes them, for SECONDS or until MAXBYTES
      were sent, reading and discarding what comes back; then
      prints "sent=N recv=M" and closes.

  noread HOST PORT COUNT GAP_MS HOLD_S
      connect, send one byte COUNT times GAP_MS apart (TCP_NODELAY), never
      read; prints "sent=COUNT" and keeps the connection HOLD_S seconds.

  udp-rtt HOST PORT COUNT [--gap MS] [--timeout S]
      send COUNT datagrams "dgram-001"... --gap ms apart (default 0: each
      after the previous one's reply), reading replies all the while; prints
      one line per reply "NAME rtt=MS" in arrival order.  Exit 1 unless
      every datagram came back within --timeout (default 10) seconds.
"""
import argparse
import hashlib
import os
import select
import socket
import struct
import sys
import threading
import time


def now_ms():
    return time.monotonic() * 1000.0


def pattern(n):
    return bytes(i % 251 for i in range(n))


def unescape(s):
    return s.encode('latin-1').decode('unicode_escape').encode('latin-1')


# ------------------------------------------------------------------ server

def server(o):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', 0))
    ls.listen(128)
    lock = threading.Lock()
    open(o.log, 'a').close()

    def log(line):
        with lock:
            with open(o.log, 'a') as f:
                f.write(line + '\n')

    def handle(c, k):
        log('%d accept %.3f' % (k, now_ms()))
        h = hashlib.sha256()
        total = 0
        how = 'eof'
        try:
            if o.send:
                c.sendall(pattern(o.send))
            while True:
                d = c.recv(65536)
                if not d:
                    break
                log('%d recv %.3f %d' % (k, now_ms(), len(d)))
                h.update(d)
                total += len(d)
                if o.echo:
                    c.sendall(d)
            if o.echo:
                c.shutdown(socket.SHUT_WR)
        except (ConnectionResetError, BrokenPipeError):
            how = 'reset'
        except OSError as e:
            how = 'error:%s' % e.__class__.__name__
        log('%d end %s %.3f bytes=%d sha256=%s'
            % (k, how, now_ms(), total, h.hexdigest()))
        c.close()

    tmp = o.portfile + '.tmp'
    with open(tmp, 'w') as f:
        f.write('%d\n' % ls.getsockname()[1])
    os.rename(tmp, o.portfile)
    k = 0
    while True:
        c, _ = ls.accept()
        k += 1
        threading.Thread(target=handle, args=(c, k), daemon=True).start()


# ------------------------------------------------------------------ clients

def connect(host, port, bind=None, timeout=10):
    s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET,
                      socket.SOCK_STREAM)
    if bind:
        s.bind((bind, 0))
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def conn(o):
    t_connect = now_ms()
    h = hashlib.sha256()
    total = 0
    first = -1.0
    how = 'open'
    start = t_connect
    s = None
    try:
        # a reset may come before connect(2) returns
        s = connect(o.host, o.port, o.bind, o.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if o.tls_sni:
            import ssl      # only here: it costs a tenth of a second to load
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname=o.tls_sni)
        start = now_ms()
        data = unescape(o.send) if o.send is not None else b''
        if o.send_n:
            data = pattern(o.send_n)
        err = []

        def sender():
            try:
                if data:
                    s.sendall(data)
                if o.shut:
                    s.shutdown(socket.SHUT_WR)
            except OSError as e:
                err.append(e)

        # sent in a thread while this one reads, so that an echo of many
        # bytes cannot fill both ways and stop both peers
        # (an SSL socket takes one thread at a time: it sends first)
        t = threading.Thread(target=sender, daemon=True)
        if o.tls_sni:
            sender()
        else:
            t.start()
        deadline = time.monotonic() + o.timeout
        while o.until_close or total < o.expect:
            left = deadline - time.monotonic()
            if left <= 0:
                how = 'timeout'
                break
            s.settimeout(left)
            try:
                d = s.recv(65536)
            except socket.timeout:
                how = 'timeout'
                break
            if not d:
                how = 'eof'
                break
            if first < 0:
                first = now_ms() - start
            h.update(d)
            total += len(d)
        if not o.tls_sni:
            t.join(1)
        # a reset that the sending thread met first is reported to it
        # alone: recv() then sees a plain end of file
        if err and isinstance(err[0], (ConnectionResetError,
                                       BrokenPipeError)):
            how = 'reset'
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        how = 'reset'
    except (ConnectionRefusedError, socket.timeout) as e:
        print('fault_tool: connect: %s' % e, file=sys.stderr)
        return 1
    end = now_ms()
    print('recv=%d sha256=%s closed=%s start=%.3f first=%.1f elapsed=%.1f'
          % (total, h.hexdigest(), how, start, first, end - start),
          flush=True)
    if s is not None and how in ('open', 'timeout') and o.hold:
        time.sleep(o.hold)
    if s is not None:
        s.close()
    return 0


def lines(o):
    s = connect(o.host, o.port)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    want = b''.join(b'line-%03d\n' % i for i in range(1, o.count + 1))
    got = bytearray()
    t0 = now_ms()
    deadline = time.monotonic() + o.timeout
    first = last = -1.0
    sent = 0
    next_send = time.monotonic()
    while got.count(b'\n') < o.count:
        if time.monotonic() > deadline:
            break
        if sent < o.count and time.monotonic() >= next_send:
            sent += 1
            s.sendall(b'line-%03d\n' % sent)
            next_send = time.monotonic() + o.gap / 1000.0
        wait = deadline - time.monotonic()
        if sent < o.count:
            wait = min(wait, max(0.0, next_send - time.monotonic()))
        r, _, _ = select.select([s], [], [], max(0.0, wait))
        if r:
            d = s.recv(65536)
            if not d:
                break
            if first < 0:
                first = now_ms() - t0
            last = now_ms() - t0
            got += d
    sys.stdout.write(got.decode('latin-1'))
    sys.stdout.flush()
    print('first=%.1f last=%.1f' % (first, last), file=sys.stderr)
    s.close()
    return 0 if bytes(got) == want else 1


def flood(o):
    s = connect(o.host, o.port)
    s.setblocking(False)
    block = os.urandom(65536)
    sent = recv = 0
    end = time.monotonic() + o.seconds
    while time.monotonic() < end and sent < o.maxbytes:
        r, w, _ = select.select([s], [s], [], max(0.0, end - time.monotonic()))
        if r:
            try:
                d = s.recv(65536)
            except BlockingIOError:
                d = None
            if d == b'':
                break
            if d:
                recv += len(d)
        if w:
            try:
                sent += s.send(block[:min(len(block), o.maxbytes - sent)])
            except BlockingIOError:
                pass
    print('sent=%d recv=%d' % (sent, recv), flush=True)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.close()
    return 0


def noread(o):
    s = connect(o.host, o.port)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(o.count):
        s.sendall(b'x')
        time.sleep(o.gap / 1000.0)
    print('sent=%d' % o.count, flush=True)
    time.sleep(o.hold)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.close()
    return 0


def udp_rtt(o):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((o.host, o.port))
    sent_at = {}
    done = []
    deadline = time.monotonic() + o.timeout
    n = 0
    next_send = time.monotonic()
    while len(done) < o.count and time.monotonic() < deadline:
        if n < o.count and time.monotonic() >= next_send and \
                (o.gap > 0 or len(done) == n):
            n += 1
            name = b'dgram-%03d' % n
            sent_at[name] = now_ms()
            s.send(name)
            next_send = time.monotonic() + o.gap / 1000.0
        wait = deadline - time.monotonic()
        if n < o.count and o.gap > 0:
            wait = min(wait, max(0.0, next_send - time.monotonic()))
        r, _, _ = select.select([s], [], [], max(0.0, wait))
        if r:
            try:
                d = s.recv(65536)
            except ConnectionRefusedError:
                continue
            if d in sent_at:
                done.append(d)
                print('%s rtt=%.1f' % (d.decode(), now_ms() - sent_at[d]),
                      flush=True)
    if len(done) < o.count:
        print('fault_tool: %d of %d replies' % (len(done), o.count),
              file=sys.stderr)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('pattern')
    p.add_argument('n', type=int)
    p = sub.add_parser('server')
    p.add_argument('portfile')
    p.add_argument('log')
    p.add_argument('--echo', action='store_true')
    p.add_argument('--send', type=int, default=0)
    p = sub.add_parser('conn')
    p.add_argument('host')
    p.add_argument('port', type=int)
    p.add_argument('--bind')
    p.add_argument('--send')
    p.add_argument('--send-n', type=int, default=0)
    p.add_argument('--shut', action='store_true')
    p.add_argument('--expect', type=int, default=0)
    p.add_argument('--until-close', action='store_true')
    p.add_argument('--timeout', type=float, default=10)
    p.add_argument('--hold', type=float, default=0)
    p.add_argument('--tls-sni')
    p = sub.add_parser('lines')
    p.add_argument('host')
    p.add_argument('port', type=int)
    p.add_argument('count', type=int)
    p.add_argument('--gap', type=float, default=0)
    p.add_argument('--timeout', type=float, default=10)
    p = sub.add_parser('flood')
    p.add_argument('host')
    p.add_argument('port', type=int)
    p.add_argument('seconds', type=float)
    p.add_argument('maxbytes', type=int)
    p = sub.add_parser('noread')
    p.add_argument('host')
    p.add_argument('port', type=int)
    p.add_argument('count', type=int)
    p.add_argument('gap', type=float)
    p.add_argument('hold', type=float)
    p = sub.add_parser('udp-rtt')
    p.add_argument('host')
    p.add_argument('port', type=int)
    p.add_argument('count', type=int)
    p.add_argument('--gap', type=float, default=0)
    p.add_argument('--timeout', type=float, default=10)
    o = ap.parse_args()
    if o.cmd == 'pattern':
        print(hashlib.sha256(pattern(o.n)).hexdigest())
        return 0
    if o.cmd == 'server':
        server(o)
        return 0
    return {'conn': conn, 'lines': lines, 'flood': flood, 'noread': noread,
            'udp-rtt': udp_rtt}[o.cmd](o)


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
