#!/usr/bin/env python3
"""limits_tool.py - the clients of tests/limits.bats: many peers at once,
each doing little, to see what they cost tproxy.

usage:
  limits_tool.py udp HOST PORT N [--src ADDR] [--hold S] [--expect K]
      N UDP sockets bound to ADDR (default 127.0.0.1), each on a port of its
      own, send one datagram each ("pI" from socket I) to HOST:PORT; then
      they all stay open for S seconds (default 3), reading replies.  Prints
      "sent=N", then, once done, "replies=R" (datagrams that came back).
      With --expect K it exits as soon as K replies came.

  limits_tool.py hello PORT N [--hold S]
      N TCP connections to 127.0.0.1:PORT, each sending 48 KiB of a TLS
      ClientHello that announces 60,000 bytes, then waiting; prints
      "sent=N" once all are sent, then stays S seconds (default 5).

  limits_tool.py tlsecho PORT SPLIT GOFILE
      A TLS client (no certificate check) to 127.0.0.1:PORT that sends the
      first SPLIT bytes of its ClientHello, prints "partial", waits until
      GOFILE exists, sends the rest, finishes the handshake, sends "ping"
      and prints "echo=" and what came back.

  limits_tool.py idle PORT N SIZE [--hold S]
      N TCP connections to 127.0.0.1:PORT, one after the other, each sending
      SIZE bytes once and reading SIZE bytes back (an echo route); then all
      stay open and idle for S seconds (default 5).  Prints "idle=N" once
      every connection is idle.
"""
import argparse
import os
import select
import socket
import ssl
import struct
import sys
import time


def udp(a):
    socks = []
    for i in range(a.n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((a.src, 0))
        s.setblocking(False)
        s.sendto(b"p%d" % i, (a.host, a.port))
        socks.append(s)
    print("sent=%d" % a.n, flush=True)
    replies = 0
    poller = select.poll()
    byfd = {}
    for s in socks:
        poller.register(s, select.POLLIN)
        byfd[s.fileno()] = s
    end = time.monotonic() + a.hold
    while time.monotonic() < end:
        if a.expect is not None and replies >= a.expect:
            break
        for fd, _ in poller.poll(100):
            s = byfd[fd]
            try:
                while s.recv(65536) is not None:
                    replies += 1
            except BlockingIOError:
                pass
    print("replies=%d" % replies, flush=True)


def record(body):
    return b"\x16\x03\x01" + struct.pack(">H", len(body)) + body


def hello(a):
    total = 60000
    msg = bytes([1]) + total.to_bytes(3, "big") + bytes(total)
    # 48 KiB of it in records of 16 KiB; the rest completes it
    first = msg[:3 * 16384]
    rest = msg[3 * 16384:]
    data = b"".join(record(first[i:i + 16384])
                    for i in range(0, len(first), 16384))
    socks = []
    for _ in range(a.n):
        s = socket.create_connection(("127.0.0.1", a.port))
        s.sendall(data)
        socks.append(s)
    print("sent=%d" % a.n, flush=True)
    time.sleep(a.hold)


def tlsecho(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    t = ctx.wrap_bio(inc, outg, server_hostname="example.test")
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)

    def step(fn, *args):
        while True:
            try:
                r = fn(*args)
                if outg.pending:
                    s.sendall(outg.read())
                return r
            except ssl.SSLWantReadError:
                if outg.pending:
                    s.sendall(outg.read())
                b = s.recv(65536)
                if not b:
                    raise EOFError("closed by tproxy")
                inc.write(b)

    try:
        t.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outg.read()
    s.sendall(hello[:a.split])
    print("partial", flush=True)
    while not os.path.exists(a.gofile):
        time.sleep(0.05)
    s.sendall(hello[a.split:])
    step(t.do_handshake)
    step(t.write, b"ping")
    print("echo=%s" % step(t.read, 100).decode(), flush=True)


def idle(a):
    data = (b"abcdefghijklmnopqrstuvwxyz0123456789\n" * (a.size // 37 + 1))
    data = data[:a.size]
    socks = []
    for _ in range(a.n):
        s = socket.create_connection(("127.0.0.1", a.port))
        s.sendall(data)
        got = 0
        while got < len(data):
            b = s.recv(65536)
            if not b:
                sys.exit("connection closed after %d bytes" % got)
            got += len(b)
        socks.append(s)
    print("idle=%d" % a.n, flush=True)
    time.sleep(a.hold)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("udp")
    u.add_argument("host")
    u.add_argument("port", type=int)
    u.add_argument("n", type=int)
    u.add_argument("--src", default="127.0.0.1")
    u.add_argument("--hold", type=float, default=3)
    u.add_argument("--expect", type=int)
    h = sub.add_parser("hello")
    h.add_argument("port", type=int)
    h.add_argument("n", type=int)
    h.add_argument("--hold", type=float, default=5)
    e = sub.add_parser("tlsecho")
    e.add_argument("port", type=int)
    e.add_argument("split", type=int)
    e.add_argument("gofile")
    i = sub.add_parser("idle")
    i.add_argument("port", type=int)
    i.add_argument("n", type=int)
    i.add_argument("size", type=int)
    i.add_argument("--hold", type=float, default=5)
    a = p.parse_args()
    {"udp": udp, "hello": hello, "tlsecho": tlsecho, "idle": idle}[a.cmd](a)


if __name__ == "__main__":
    main()
