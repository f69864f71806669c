#!/usr/bin/env python3
"""relay_tool.py - peers for tests/relay.bats (TCP on 127.0.0.1 only).

Servers listen on 127.0.0.1, port 0, write the port to PORTFILE once they
listen, and print one line per connection on stdout (flushed).

  serve PORTFILE echo               echo to EOF; print "echo bytes=N sha256=H"
  serve PORTFILE swap N             send N random bytes while reading to EOF;
                                    print "recv=N sha256=H sent=N sha256=H"
  serve PORTFILE halfclose N [MS [WAIT]]  wait WAIT ms, read to EOF (sleeping
                                    MS ms between reads), then send N bytes
                                    and close (receive window: 32 KiB);
                                    print "recv=N sha256=H sent=N sha256=H"
  serve PORTFILE sendfirst N        send N bytes, shutdown(SHUT_WR), read to
                                    EOF; print "recv=N sha256=H sent=N sha256=H"
  serve PORTFILE reset              wait for bytes, then close with RST;
                                    print "reset-sent"
  serve PORTFILE expect-reset       read until EOF or error;
                                    print "reset bytes=N" or "eof bytes=N"
  serve PORTFILE source N [PROG]    send N bytes then close (progress: bytes
                                    sent so far, written to file PROG);
                                    print "sent=N" or "error=ERRNONAME sent=N"
  serve PORTFILE peer               send "peer HOST:PORT\\n" and close
  hold-port PORTFILE                bind a port without listening (refused)

Clients (exit 0 when they could run; the verdict is what they print):

  swap PORT N            send N random bytes while reading to EOF
                         -> "sent=N sha256=H recv=N sha256=H"
  halfclose PORT N       send N bytes, shutdown(SHUT_WR), read to EOF
                         -> "sent=N sha256=H recv=N sha256=H"
  recvfirst PORT N       read to EOF, then send N bytes and close
                         -> "sent=N sha256=H recv=N sha256=H"
  stall PORT FILE        connect, read nothing until FILE exists, then read
                         to EOF -> "recv=N"  (prints "connected" at once)
  expect-reset PORT      send "hello\\n", wait -> "reset ..." or "eof ..."
  reset PORT             send "hello\\n", wait 0.5 s, close with RST
  expect-close PORT [DATA]  connect, send DATA, wait until closed
                         -> "closed=eof|reset elapsed=SECONDS recv=N"
  echo PORT DATA         send DATA, shutdown(SHUT_WR), expect DATA back
                         -> "ok" or "bad"
  parallel PORT N        N connections at once through an echo peer, each
                         with its own payload -> "ok=K bad=B"
  many PORT N            N short echo exchanges, one after the other
                         -> "ok=K bad=B"
  sendclose PORT N       N times: connect, send, close at once -> "done=N"
  abort-read PORT N      N times: connect, read a little, close with unread
                         bytes -> "done=N"
  refused PORT N         N connections that the proxy must close
                         -> "closed=K open=O"
  hold PORT N [K]        open N connections (echo-check the first K), print
                         "held N", then report "closed=C" once all N have
                         been closed by the peer
"""

import hashlib
import os
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"
CHUNK = 256 * 1024


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def rand_block(n):
    return os.urandom(n)


def send_n(sock, n, h=None):
    """Send n pseudo-random bytes (a 1 MiB random block repeated, with a
    counter, so that no two MiB are equal); returns bytes sent."""
    block = bytearray(rand_block(1 << 20))
    sent = 0
    i = 0
    while sent < n:
        struct.pack_into("<Q", block, 0, i)
        i += 1
        part = memoryview(block)[: min(len(block), n - sent)]
        if h is not None:
            h.update(part)
        sock.sendall(part)
        sent += len(part)
    return sent


def recv_all(sock, h=None, slow_ms=0):
    buf = bytearray(CHUNK)
    total = 0
    while True:
        n = sock.recv_into(buf)
        if n == 0:
            return total
        if h is not None:
            h.update(memoryview(buf)[:n])
        total += n
        if slow_ms:
            time.sleep(slow_ms / 1000.0)


def rst_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def connect(port):
    s = socket.create_connection((HOST, int(port)), timeout=60)
    return s


def swap_io(sock, n):
    """Send n random bytes and read to EOF at the same time."""
    hs, hr = hashlib.sha256(), hashlib.sha256()
    res = {}

    def sender():
        try:
            res["sent"] = send_n(sock, n, hs)
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            res["serr"] = e

    t = threading.Thread(target=sender)
    t.start()
    got = recv_all(sock, hr)
    t.join()
    if "serr" in res:
        raise res["serr"]
    return res["sent"], hs.hexdigest(), got, hr.hexdigest()


# ------------------------------------------------------------------ servers


def serve(argv):
    portfile, mode, args = argv[0], argv[1], argv[2:]
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if mode == "halfclose":
        # a small window, so that tproxy holds bytes when the client's EOF
        # comes
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    ls.bind((HOST, 0))
    ls.listen(4096)
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(tmp, portfile)
    lock = threading.Lock()

    def say(line):
        with lock:
            out(line)

    def handle(c, peer):
        c.settimeout(120)
        try:
            if mode == "echo":
                h = hashlib.sha256()
                buf = bytearray(CHUNK)
                total = 0
                try:
                    while True:
                        n = c.recv_into(buf)
                        if n == 0:
                            break
                        h.update(memoryview(buf)[:n])
                        total += n
                        c.sendall(memoryview(buf)[:n])
                    c.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                say("echo bytes=%d sha256=%s" % (total, h.hexdigest()))
            elif mode == "swap":
                s, hs, r, hr = swap_io(c, int(args[0]))
                say("recv=%d sha256=%s sent=%d sha256=%s" % (r, hr, s, hs))
            elif mode == "halfclose":
                slow = int(args[1]) if len(args) > 1 else 0
                if len(args) > 2:
                    time.sleep(int(args[2]) / 1000.0)
                hr, hs = hashlib.sha256(), hashlib.sha256()
                r = recv_all(c, hr, slow)
                s = send_n(c, int(args[0]), hs)
                say("recv=%d sha256=%s sent=%d sha256=%s"
                    % (r, hr.hexdigest(), s, hs.hexdigest()))
            elif mode == "sendfirst":
                hr, hs = hashlib.sha256(), hashlib.sha256()
                s = send_n(c, int(args[0]), hs)
                c.shutdown(socket.SHUT_WR)
                r = recv_all(c, hr)
                say("recv=%d sha256=%s sent=%d sha256=%s"
                    % (r, hr.hexdigest(), s, hs.hexdigest()))
            elif mode == "reset":
                c.recv(100)
                rst_close(c)
                say("reset-sent")
                return
            elif mode == "expect-reset":
                total = 0
                try:
                    while True:
                        d = c.recv(CHUNK)
                        if not d:
                            say("eof bytes=%d" % total)
                            break
                        total += len(d)
                except ConnectionResetError:
                    say("reset bytes=%d" % total)
            elif mode == "source":
                n = int(args[0])
                prog = args[1] if len(args) > 1 else None
                block = rand_block(CHUNK)
                sent = 0
                last = 0
                try:
                    while sent < n:
                        part = block[: min(CHUNK, n - sent)]
                        c.sendall(part)
                        sent += len(part)
                        if prog and sent - last >= (1 << 20):
                            last = sent
                            with open(prog + ".tmp", "w") as f:
                                f.write("%d\n" % sent)
                            os.rename(prog + ".tmp", prog)
                    say("sent=%d" % sent)
                except OSError as e:
                    name = type(e).__name__
                    say("error=%s sent=%d" % (name, sent))
            elif mode == "peer":
                c.sendall(("peer %s:%d\n" % peer[:2]).encode())
            else:
                say("unknown mode " + mode)
        except Exception as e:  # report, never hang the test
            say("error=%s" % e)
        finally:
            try:
                c.close()
            except OSError:
                pass

    while True:
        c, peer = ls.accept()
        threading.Thread(target=handle, args=(c, peer), daemon=True).start()


def hold_port(argv):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    with open(argv[0] + ".tmp", "w") as f:
        f.write("%d\n" % s.getsockname()[1])
    os.rename(argv[0] + ".tmp", argv[0])
    while True:
        time.sleep(3600)


# ------------------------------------------------------------------ clients


def c_swap(port, n):
    s = connect(port)
    sn, hs, rn, hr = swap_io(s, int(n))
    out("sent=%d sha256=%s recv=%d sha256=%s" % (sn, hs, rn, hr))


def c_halfclose(port, n):
    s = connect(port)
    hs, hr = hashlib.sha256(), hashlib.sha256()
    sn = send_n(s, int(n), hs)
    s.shutdown(socket.SHUT_WR)
    rn = recv_all(s, hr)
    out("sent=%d sha256=%s recv=%d sha256=%s"
        % (sn, hs.hexdigest(), rn, hr.hexdigest()))


def c_recvfirst(port, n):
    s = connect(port)
    hs, hr = hashlib.sha256(), hashlib.sha256()
    rn = recv_all(s, hr)
    sn = send_n(s, int(n), hs)
    s.close()
    out("sent=%d sha256=%s recv=%d sha256=%s"
        % (sn, hs.hexdigest(), rn, hr.hexdigest()))


def c_stall(port, flag):
    s = connect(port)
    s.settimeout(120)
    out("connected")
    while not os.path.exists(flag):
        time.sleep(0.05)
    out("recv=%d" % recv_all(s))


def c_expect_reset(port):
    s = connect(port)
    s.settimeout(30)
    s.sendall(b"hello\n")
    total = 0
    try:
        while True:
            d = s.recv(CHUNK)
            if not d:
                out("eof bytes=%d" % total)
                return
            total += len(d)
    except ConnectionResetError:
        out("reset bytes=%d" % total)


def c_reset(port):
    s = connect(port)
    s.sendall(b"hello\n")
    time.sleep(0.5)
    rst_close(s)
    out("reset-sent")


def c_expect_close(port, data=""):
    t0 = time.monotonic()
    total = 0
    how = "eof"
    try:
        # the reset may come before connect(2) returns
        s = connect(port)
        s.settimeout(30)
        if data:
            s.sendall(data.encode())
        while True:
            d = s.recv(CHUNK)
            if not d:
                break
            total += len(d)
    except (ConnectionResetError, BrokenPipeError):
        how = "reset"
    except socket.timeout:
        how = "timeout"
    out("closed=%s elapsed=%.3f recv=%d" % (how, time.monotonic() - t0, total))


def echo_once(port, payload):
    s = connect(port)
    try:
        s.settimeout(60)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            d = s.recv(CHUNK)
            if not d:
                break
            got += d
        return bytes(got) == payload
    finally:
        s.close()


def c_echo(port, data):
    out("ok" if echo_once(port, data.encode()) else "bad")


def c_parallel(port, n):
    n = int(n)
    ok = [False] * n
    socks = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        try:
            s = connect(port)
            socks[i] = s
            s.settimeout(60)
        except OSError:
            barrier.abort()
            return
        try:
            barrier.wait()  # every connection is open before any sends
        except threading.BrokenBarrierError:
            pass
        try:
            payload = (("conn %d " % i) * 50).encode() + os.urandom(1000 + i)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            got = bytearray()
            while True:
                d = s.recv(CHUNK)
                if not d:
                    break
                got += d
            ok[i] = bytes(got) == payload
        except OSError:
            pass
        finally:
            s.close()

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    good = sum(ok)
    out("ok=%d bad=%d" % (good, n - good))


def c_many(port, n):
    good = 0
    n = int(n)
    for i in range(n):
        try:
            good += echo_once(port, b"short %d\n" % i)
        except OSError:
            pass
    out("ok=%d bad=%d" % (good, n - good))


def c_sendclose(port, n):
    for i in range(int(n)):
        s = connect(port)
        s.sendall(b"sent-and-closed %d\n" % i)
        s.close()
    out("done=%s" % n)


def c_abort_read(port, n):
    for i in range(int(n)):
        s = connect(port)
        s.settimeout(30)
        try:
            s.recv(1000)
        except OSError:
            pass
        s.close()  # unread bytes: the kernel answers with RST
    out("done=%s" % n)


def c_refused(port, n):
    n = int(n)
    closed = 0
    batch = 50
    i = 0
    while i < n:
        socks = []
        for j in range(min(batch, n - i)):
            try:
                s = connect(port)
                s.settimeout(10)
                if (i + j) % 2:
                    s.sendall(b"x")
                socks.append(s)
            except OSError:
                closed += 1
        for s in socks:
            try:
                if not s.recv(100):
                    closed += 1
            except (ConnectionResetError, BrokenPipeError):
                closed += 1
            except OSError:
                pass
            s.close()
        i += batch
    out("closed=%d open=%d" % (closed, n - closed))


def c_hold(port, n, k=0):
    n, k = int(n), int(k)
    socks = []
    gone = 0
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect((HOST, int(port)))
        except (ConnectionResetError, BrokenPipeError):
            gone += 1  # closed by the peer before connect(2) returned
            s.close()
            continue
        socks.append(s)
        if i < k:
            s.sendall(b"held %d\n" % i)
            want = b"held %d\n" % i
            got = b""
            while len(got) < len(want):
                d = s.recv(100)
                if not d:
                    break
                got += d
            if got != want:
                out("echo-failed %d" % i)
                sys.exit(1)
    out("held %d" % n)
    for s in socks:
        s.settimeout(None)
    closed = gone
    for s in socks:
        try:
            while s.recv(CHUNK):
                pass
        except OSError:
            pass
        closed += 1
    out("closed=%d" % closed)


def main():
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        sys.exit(2)
    cmd, argv = sys.argv[1], sys.argv[2:]
    table = {
        "serve": lambda: serve(argv),
        "hold-port": lambda: hold_port(argv),
        "swap": lambda: c_swap(*argv),
        "halfclose": lambda: c_halfclose(*argv),
        "recvfirst": lambda: c_recvfirst(*argv),
        "stall": lambda: c_stall(*argv),
        "expect-reset": lambda: c_expect_reset(*argv),
        "reset": lambda: c_reset(*argv),
        "expect-close": lambda: c_expect_close(*argv),
        "echo": lambda: c_echo(*argv),
        "parallel": lambda: c_parallel(*argv),
        "many": lambda: c_many(*argv),
        "sendclose": lambda: c_sendclose(*argv),
        "abort-read": lambda: c_abort_read(*argv),
        "refused": lambda: c_refused(*argv),
        "hold": lambda: c_hold(*argv),
    }
    if cmd not in table:
        sys.stderr.write(__doc__)
        sys.exit(2)
    table[cmd]()


if __name__ == "__main__":
    main()
