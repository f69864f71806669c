#!/usr/bin/env python3
"""tpx_client.py - the client of tests/transparent.bats.

usage:
  tpx_client.py tcp [--msg TEXT] [--timeout S] HOST:PORT
      Connects, prints "client=LOCAL" (its own address and port), sends
      TEXT and a newline, half-closes, and prints everything it receives
      until the server closes.  Exits 1 if the connection fails, or the
      server sends nothing or does not close within S seconds (default 5).

  tpx_client.py udp [--msg TEXT] [--timeout S] HOST:PORT...
      From one unconnected socket, sends TEXT as one datagram to every
      HOST:PORT, prints "client=LOCAL", then one line per reply:
      "from=ADDRESS PAYLOAD", the address being the one recvfrom() reports.
      Exits 1 unless a reply came for every destination within S seconds.

  tpx_client.py refused [--count N] [--timeout S] HOST:PORT
      N times (default 1000): connects and expects the connection to be
      closed (FIN or RST, or refused) at once, without a byte.  Prints
      "closed=N data=N open=N max_ms=M" and exits 0 only if all N were
      closed within S seconds (default 2) without data; it gives up at the
      first connection that sends data or stays open.

  tpx_client.py udp-noreply [--count N] [--timeout S] HOST:PORT
      Sends one datagram from each of N (default 1000) fresh sockets, 100
      sockets open at a time, and listens S seconds (default 1) after each
      hundred for replies.  Prints "sent=N replies=K" and exits 0 only if no
      reply came.

Addresses are HOST:PORT, IPv6 as [HOST]:PORT, on input and output.
"""
import argparse
import select
import socket
import sys
import time


def parse(s):
    host, _, port = s.rpartition(':')
    if host.startswith('['):
        return socket.AF_INET6, (host[1:-1], int(port))
    return socket.AF_INET, (host, int(port))


def fmt(sa):
    host, port = sa[0], sa[1]
    if ':' in host:
        return '[%s]:%d' % (host, port)
    return '%s:%d' % (host, port)


def die(msg):
    print('tpx_client: ' + msg, file=sys.stderr)
    sys.exit(1)


def do_tcp(o):
    fam, dest = parse(o.dest[0])
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(o.timeout)
    try:
        s.connect(dest)
    except OSError as e:
        die('connect %s: %s' % (o.dest[0], e))
    print('client=%s' % fmt(s.getsockname()), flush=True)
    got = b''
    deadline = time.monotonic() + o.timeout
    try:
        s.sendall(o.msg.encode() + b'\n')
        s.shutdown(socket.SHUT_WR)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            s.settimeout(left)
            b = s.recv(65536)
            if not b:
                break
            got += b
    except socket.timeout:
        sys.stdout.write(got.decode('latin-1'))
        die('no close from the server within %g s' % o.timeout)
    except OSError as e:
        sys.stdout.write(got.decode('latin-1'))
        die('%s: %s' % (o.dest[0], e))
    sys.stdout.write(got.decode('latin-1'))
    if not got:
        die('the server closed without a byte')


def do_udp(o):
    dests = [parse(d) for d in o.dest]
    fam = dests[0][0]
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind(('::' if fam == socket.AF_INET6 else '0.0.0.0', 0))
    for _, d in dests:
        s.sendto(o.msg.encode(), d)
    # the local address actually used: connect a probe the same way
    probe = socket.socket(fam, socket.SOCK_DGRAM)
    probe.connect(dests[0][1])
    print('client=%s:%d' % (fmt(probe.getsockname()).rpartition(':')[0],
                            s.getsockname()[1]), flush=True)
    probe.close()
    want = len(dests)
    got = 0
    deadline = time.monotonic() + o.timeout
    while got < want:
        left = deadline - time.monotonic()
        if left <= 0:
            die('%d of %d replies within %g s' % (got, want, o.timeout))
        r, _, _ = select.select([s], [], [], left)
        if not r:
            continue
        data, peer = s.recvfrom(65535)
        print('from=%s %s' % (fmt(peer), data.decode('latin-1').rstrip('\n')),
              flush=True)
        got += 1


def do_refused(o):
    fam, dest = parse(o.dest[0])
    closed = data = still_open = 0
    max_ms = 0.0
    for _ in range(o.count):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(o.timeout)
        t0 = time.monotonic()
        try:
            s.connect(dest)
            b = s.recv(1)
            if b:
                data += 1
            else:
                closed += 1
        except socket.timeout:
            still_open += 1
            print('connection %d still open after %g s: giving up'
                  % (closed + data + still_open, o.timeout), file=sys.stderr)
            break
        except OSError:
            closed += 1             # refused or reset: closed all the same
        max_ms = max(max_ms, (time.monotonic() - t0) * 1000)
        s.close()
        if data:
            break
    print('closed=%d data=%d open=%d max_ms=%d' % (closed, data, still_open,
                                                   max_ms))
    if closed != o.count:
        sys.exit(1)


def do_udp_noreply(o):
    fam, dest = parse(o.dest[0])
    sent = replies = 0
    while sent < o.count:
        socks = []
        for _ in range(min(100, o.count - sent)):
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.sendto(o.msg.encode(), dest)
            socks.append(s)
            sent += 1
        deadline = time.monotonic() + o.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select(socks, [], [], left)
            for s in r:
                s.recvfrom(65535)
                replies += 1
        for s in socks:
            s.close()
    print('sent=%d replies=%d' % (sent, replies))
    if replies:
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('mode', choices=['tcp', 'udp', 'refused', 'udp-noreply'])
    ap.add_argument('dest', nargs='+')
    ap.add_argument('--msg', default='hello')
    ap.add_argument('--timeout', type=float)
    ap.add_argument('--count', type=int, default=1000)
    o = ap.parse_args()
    if o.timeout is None:
        o.timeout = {'refused': 2.0, 'udp-noreply': 1.0}.get(o.mode, 5.0)
    {'tcp': do_tcp, 'udp': do_udp, 'refused': do_refused,
     'udp-noreply': do_udp_noreply}[o.mode](o)


if __name__ == '__main__':
    main()
