#!/usr/bin/env python3
"""soak_tool.py - long-running checks for tests/soak.sh (make soak).

usage:
  soak_tool.py hold N SECS EVERY HOST PORT
      Opens N connections to an echo service at HOST:PORT (at most 64
      connecting at a time), then for SECS seconds sends one byte on every
      connection each EVERY seconds (a trickle) and reads it back.  Closes
      them all at the end.  Prints "opened=N rounds=R lost=L wrong=W" and
      exits 0 when every connection echoed every byte, 1 otherwise.

  soak_tool.py tcp MIB HOST PORT
      One connection to an echo service: sends MIB MiB of random bytes while
      reading what comes back, then shuts down its side and reads to EOF.
      Prints "sent=BYTES got=BYTES sha_sent=... sha_got=..." and exits 0 when
      both are the same length and hash.

  soak_tool.py udp MIB HOST PORT
      The same over UDP: datagrams of 1400 bytes with a sequence number (the
      benchmark's echo server reads up to 2 KiB), at most 32 unanswered at
      once so that no socket buffer overflows; a
      datagram not echoed within 2 s is sent again (counted as "resent").

Raises its own descriptor limit to the hard limit first.
"""
import hashlib
import os
import resource
import selectors
import socket
import struct
import sys
import time


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def connect_all(n, addr):
    """n connected sockets, at most 64 connecting at once."""
    done, pending = [], []
    sel = selectors.DefaultSelector()
    started = 0
    while len(done) < n:
        while started < n and len(pending) < 64:
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(addr)
            except BlockingIOError:
                pass
            sel.register(s, selectors.EVENT_WRITE)
            pending.append(s)
            started += 1
        for key, _ in sel.select(timeout=10):
            s = key.fileobj
            sel.unregister(s)
            pending.remove(s)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, "connect: " + os.strerror(err))
            done.append(s)
    sel.close()
    return done


def trickle_round(socks, byte):
    """Sends byte on every socket and reads it back from each; returns
    (lost, wrong)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.send(byte)
        sel.register(s, selectors.EVENT_READ)
    waiting, wrong = len(socks), 0
    deadline = time.monotonic() + 30
    while waiting and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            got = s.recv(16)
            sel.unregister(s)
            waiting -= 1
            if got != byte:
                wrong += 1
    sel.close()
    return waiting, wrong


def hold(n, secs, every, host, port):
    socks = connect_all(n, (host, port))
    rounds = lost = wrong = 0
    end = time.monotonic() + secs
    while True:
        byte = bytes([65 + rounds % 26])
        l, w = trickle_round(socks, byte)
        rounds += 1
        lost += l
        wrong += w
        if time.monotonic() >= end:
            break
        time.sleep(max(0.0, min(every, end - time.monotonic())))
    for s in socks:
        s.close()
    print(f"opened={len(socks)} rounds={rounds} lost={lost} wrong={wrong}")
    return 0 if lost == 0 and wrong == 0 and len(socks) == n else 1


def random_block():
    return os.urandom(1 << 20)


def tcp(mib, host, port):
    s = socket.create_connection((host, port))
    s.setblocking(False)
    block = random_block()
    total = mib << 20
    sent = got = 0
    hs, hg = hashlib.sha256(), hashlib.sha256()
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    view = memoryview(block)
    shut = False
    while True:
        events = sel.select(timeout=30)
        if not events:
            print("stalled for 30 s", file=sys.stderr)
            return 1
        for _, ev in events:
            if ev & selectors.EVENT_READ:
                try:
                    data = s.recv(1 << 18)
                except BlockingIOError:
                    data = None
                if data == b"":
                    sel.close()
                    s.close()
                    return report(sent, got, hs, hg)
                if data:
                    got += len(data)
                    hg.update(data)
            if ev & selectors.EVENT_WRITE and not shut:
                off = sent % len(block)
                chunk = view[off:off + min(len(block) - off, total - sent)]
                try:
                    k = s.send(chunk)
                except BlockingIOError:
                    k = 0
                hs.update(chunk[:k])
                sent += k
                if sent == total:
                    s.shutdown(socket.SHUT_WR)
                    shut = True
                    sel.modify(s, selectors.EVENT_READ)


def report(sent, got, hs, hg):
    a, b = hs.hexdigest(), hg.hexdigest()
    print(f"sent={sent} got={got} sha_sent={a} sha_got={b}")
    return 0 if sent == got and a == b else 1


def udp(mib, host, port):
    size, window = 1400, 32
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    s.settimeout(0.2)
    block = random_block()
    count = (mib << 20) // (size - 8)
    hs, hg = hashlib.sha256(), hashlib.sha256()
    nxt = 0          # next sequence number to send
    base = 0         # lowest unanswered
    answered = {}    # seq -> payload, for in-order hashing
    sent_at = {}
    resent = 0

    def payload(i):
        off = (i * (size - 8)) % (len(block) - size)
        return block[off:off + size - 8]

    while base < count:
        while nxt < count and nxt - base < window:
            s.send(struct.pack("!Q", nxt) + payload(nxt))
            sent_at[nxt] = time.monotonic()
            nxt += 1
        try:
            d = s.recv(65536)
            seq = struct.unpack("!Q", d[:8])[0]
            if base <= seq < nxt and seq not in answered:
                answered[seq] = d[8:]
        except socket.timeout:
            pass
        while base in answered:
            p = answered.pop(base)
            hs.update(payload(base))
            hg.update(p)
            sent_at.pop(base, None)
            base += 1
        now = time.monotonic()
        for seq, t in list(sent_at.items()):
            if now - t > 2 and seq not in answered:
                s.send(struct.pack("!Q", seq) + payload(seq))
                sent_at[seq] = now
                resent += 1
    n = count * (size - 8)
    a, b = hs.hexdigest(), hg.hexdigest()
    print(f"sent={n} got={n if a == b else 0} datagrams={count} "
          f"resent={resent} sha_sent={a} sha_got={b}")
    return 0 if a == b else 1


def main(argv):
    raise_nofile()
    if len(argv) == 7 and argv[1] == "hold":
        return hold(int(argv[2]), float(argv[3]), float(argv[4]), argv[5],
                    int(argv[6]))
    if len(argv) == 5 and argv[1] in ("tcp", "udp"):
        fn = tcp if argv[1] == "tcp" else udp
        return fn(int(argv[2]), argv[3], int(argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
