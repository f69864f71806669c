#!/usr/bin/env python3
"""tpx_server.py - the server of tests/transparent.bats: it tells every peer
which address it came from.

usage:
  tpx_server.py [--tcp PORT]... [--udp PORT]... [--addr HOST]...
                [--ready FILE] [--log FILE]

Binds every --tcp and --udp port on every --addr (default 0.0.0.0 and ::;
an IPv6 socket is IPv6-only, so the addresses seen are never v4-mapped),
writes "ready" to --ready once all are bound, and serves until killed:

  TCP  on accept, sends "peer=CLIENT local=SERVER\\n" (the accepted socket's
       peer and local addresses), then echoes what the client sends until
       it half-closes, then closes.
  UDP  answers each datagram from the address it was sent to with
       "peer=CLIENT local=SERVER data=PAYLOAD\\n".

Addresses are written HOST:PORT, IPv6 as [HOST]:PORT.  --log FILE gets
"tcp peer=... local=..." or "udp peer=... local=... data=..." per connection
or datagram.
"""
import argparse
import select
import socket
import sys


def fmt(sa):
    host, port = sa[0], sa[1]
    if ':' in host:
        return '[%s]:%d' % (host, port)
    return '%s:%d' % (host, port)


def bind(family, kind, host, port):
    s = socket.socket(family, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port))
    if kind == socket.SOCK_STREAM:
        s.listen(128)
    s.setblocking(False)
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--tcp', type=int, action='append', default=[])
    ap.add_argument('--udp', type=int, action='append', default=[])
    ap.add_argument('--addr', action='append', default=[])
    ap.add_argument('--ready')
    ap.add_argument('--log')
    o = ap.parse_args()
    addrs = o.addr or ['0.0.0.0', '::']
    log = open(o.log, 'a', buffering=1) if o.log else None

    listeners, udps = [], []
    for a in addrs:
        fam = socket.AF_INET6 if ':' in a else socket.AF_INET
        for p in o.tcp:
            listeners.append(bind(fam, socket.SOCK_STREAM, a, p))
        for p in o.udp:
            udps.append(bind(fam, socket.SOCK_DGRAM, a, p))
    if o.ready:
        with open(o.ready, 'w') as f:
            f.write('ready\n')

    conns = {}      # socket -> bytes waiting to be sent
    halfclosed = set()
    while True:
        rl = listeners + udps + [c for c in conns if c not in halfclosed]
        wl = [c for c, b in conns.items() if b]
        r, w, _ = select.select(rl, wl, [], 1.0)
        for s in r:
            if s in listeners:
                try:
                    c, _ = s.accept()
                except OSError:
                    continue
                c.setblocking(False)
                line = 'peer=%s local=%s' % (fmt(c.getpeername()),
                                             fmt(c.getsockname()))
                if log:
                    log.write('tcp %s\n' % line)
                conns[c] = (line + '\n').encode()
            elif s in udps:
                try:
                    data, peer = s.recvfrom(65535)
                except OSError:
                    continue
                line = 'peer=%s local=%s data=%s' % (
                    fmt(peer), fmt(s.getsockname()),
                    data.decode('latin-1').strip())
                if log:
                    log.write('udp %s\n' % line)
                try:
                    s.sendto((line + '\n').encode('latin-1'), peer)
                except OSError:
                    pass
            else:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b''
                    conns[s] = b''
                if data:
                    conns[s] += data
                else:
                    halfclosed.add(s)
        for s in w:
            if s not in conns:
                continue
            try:
                n = s.send(conns[s])
                conns[s] = conns[s][n:]
            except OSError:
                conns[s] = b''
                halfclosed.add(s)
        for s in [c for c in halfclosed if not conns.get(c)]:
            halfclosed.discard(s)
            conns.pop(s, None)
            s.close()


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
