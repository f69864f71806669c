#!/usr/bin/env python3
"""udp_tool.py - a UDP server and client for tests/udp.bats.

usage:
  udp_tool.py server [options] PORTFILE
      Binds UDP on --host (default 127.0.0.1; ::1 for IPv6) port --port
      (default 0: a free one), writes the bound port to PORTFILE once bound,
      and answers every datagram until killed:
        --echo        send the datagram back to its sender
        --tag TEXT    with --echo, prefix the reply with TEXT
        --peer        send the datagram back prefixed with "peer=HOST:PORT "
                      (the client address seen; IPv6 as [HOST])
        --log FILE    append one line per datagram received:
                      "LENGTH SHA256 ESCAPED-BYTES(first 64)"

  udp_tool.py client [options] HOST PORT [MSG]...
      Sends each MSG (C escapes allowed: \\n \\r \\t \\\\ \\xHH) as one
      datagram, --repeat times over, --gap ms apart, reading replies all the
      while; then waits until --expect replies have come (at most --timeout
      seconds; without --expect, all of --timeout), then --linger seconds
      more, and prints one line per reply, escaped as MSG.
        --bind PORT       send from this local port (0: any)
        --portfile FILE   write the local port used to FILE
        --size N          instead of MSGs, send one datagram of N random
                          bytes; print "sent LEN SHA256" and, per reply,
                          "got LEN SHA256"
        --from-addr       prefix each reply line with "HOST:PORT " of the
                          address the reply came from
        --sockets N       be N clients at once: N sockets (--bind and
                          --portfile concern the first), socket I sending
                          each MSG with "#I" appended; --expect counts per
                          socket, and each reply line starts with "I "
      Exits 0 once done; 1 if fewer than --expect replies came.
"""
import argparse
import hashlib
import os
import select
import socket
import sys
import time


def unescape(s):
    return s.encode('latin-1').decode('unicode_escape').encode('latin-1')


def escape(b):
    out = []
    for ch in b:
        if ch == 0x5c:
            out.append('\\\\')
        elif 0x20 <= ch < 0x7f:
            out.append(chr(ch))
        elif ch == 0x0a:
            out.append('\\n')
        elif ch == 0x0d:
            out.append('\\r')
        elif ch == 0x09:
            out.append('\\t')
        else:
            out.append('\\x%02x' % ch)
    return ''.join(out)


def family(host):
    return socket.AF_INET6 if ':' in host else socket.AF_INET


def server(args):
    s = socket.socket(family(args.host), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((args.host, args.port))
    tmp = args.portfile + '.tmp'
    with open(tmp, 'w') as f:
        f.write('%d\n' % s.getsockname()[1])
    os.rename(tmp, args.portfile)
    while True:
        data, peer = s.recvfrom(65536)
        if args.log:
            with open(args.log, 'a') as f:
                f.write('%d %s %s\n' % (len(data),
                                        hashlib.sha256(data).hexdigest(),
                                        escape(data[:64])))
        if args.peer:
            fmt = 'peer=[%s]:%d ' if ':' in peer[0] else 'peer=%s:%d '
            s.sendto((fmt % (peer[0], peer[1])).encode() + data, peer)
        elif args.echo:
            s.sendto(unescape(args.tag) + data if args.tag else data, peer)


def client(args):
    fam = family(args.host)
    socks = []
    for i in range(args.sockets):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind(('::' if fam == socket.AF_INET6 else '0.0.0.0',
                args.bind if i == 0 else 0))
        socks.append(s)
    if args.portfile:
        with open(args.portfile, 'w') as f:
            f.write('%d\n' % socks[0].getsockname()[1])
    dest = (args.host, args.port)
    if args.size is not None:
        msgs = [os.urandom(args.size)]
        print('sent %d %s' % (args.size, hashlib.sha256(msgs[0]).hexdigest()),
              flush=True)
    else:
        msgs = [unescape(m) for m in args.msgs]
    need = args.expect * len(socks)
    replies = []

    def receive(wait, need=None):
        end = time.monotonic() + wait
        while need is None or len(replies) < need:
            left = end - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select(socks, [], [], left)
            if not r:
                return
            for s in r:
                try:
                    data, peer = s.recvfrom(65536)
                except ConnectionRefusedError:
                    continue
                replies.append((socks.index(s), data, peer))

    for _ in range(args.repeat):
        for m in msgs:
            for i, s in enumerate(socks):
                s.sendto(m + (b'#%d' % i if len(socks) > 1 else b''), dest)
            receive(args.gap / 1000.0)
    if need:
        receive(args.timeout, need)
    else:
        receive(args.timeout)
    receive(args.linger)
    for i, data, peer in replies:
        prefix = '%d ' % i if len(socks) > 1 else ''
        if args.from_addr:
            host = peer[0]
            prefix += ('[%s]:%d ' if ':' in host else '%s:%d ') % (host,
                                                                 peer[1])
        if args.size is not None:
            print('%sgot %d %s' % (prefix, len(data),
                                   hashlib.sha256(data).hexdigest()))
        else:
            print(prefix + escape(data))
    sys.stdout.flush()
    if len(replies) < need:
        print('udp_tool: %d of %d replies' % (len(replies), need),
              file=sys.stderr)
        return 1
    return 0


def main():
    p = argparse.ArgumentParser(description='UDP test server and client')
    sub = p.add_subparsers(dest='cmd', required=True)
    sv = sub.add_parser('server')
    sv.add_argument('--host', default='127.0.0.1')
    sv.add_argument('--port', type=int, default=0)
    sv.add_argument('--echo', action='store_true')
    sv.add_argument('--tag')
    sv.add_argument('--peer', action='store_true')
    sv.add_argument('--log')
    sv.add_argument('portfile')
    cl = sub.add_parser('client')
    cl.add_argument('--bind', type=int, default=0)
    cl.add_argument('--portfile')
    cl.add_argument('--repeat', type=int, default=1)
    cl.add_argument('--gap', type=float, default=0)
    cl.add_argument('--expect', type=int, default=0)
    cl.add_argument('--timeout', type=float, default=5)
    cl.add_argument('--linger', type=float, default=0)
    cl.add_argument('--size', type=int)
    cl.add_argument('--from-addr', action='store_true')
    cl.add_argument('--sockets', type=int, default=1)
    cl.add_argument('host')
    cl.add_argument('port', type=int)
    cl.add_argument('msgs', nargs='*')
    args = p.parse_args()
    if args.cmd == 'server':
        server(args)
        return 0
    return client(args)


if __name__ == '__main__':
    sys.exit(main())
