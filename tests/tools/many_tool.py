#!/usr/bin/env python3
"""many_tool.py - many TCP connections at once, for tests/scale.bats.

usage:
  many_tool.py hold N HOST PORT READY GO
      Opens N connections to HOST:PORT (at most 64 connecting at a time),
      writes "held N" to the file READY, waits until the file GO exists,
      then sends one line on every connection and checks that the same line
      comes back on each (an echo).  Prints "echoed=K" and exits 0 when all
      N did, 1 otherwise (with the reason on stderr).

  many_tool.py conns N HOST PORT
      N connections one after the other: each sends a line, reads it back
      and closes.  Prints "ok=K" and exits 0 when all N did.

Raises its own descriptor limit to the hard limit first.
"""
import os
import resource
import selectors
import socket
import sys
import time


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def open_all(n, addr):
    socks, pending = [], []
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(addr)
        except BlockingIOError:
            pass
        pending.append(s)
        if len(pending) == 64 or i == n - 1:
            sel = selectors.DefaultSelector()
            for p in pending:
                sel.register(p, selectors.EVENT_WRITE)
            left, deadline = len(pending), time.monotonic() + 20
            while left > 0:
                ev = sel.select(max(0, deadline - time.monotonic()))
                if not ev:
                    raise TimeoutError('connect timed out')
                for key, _ in ev:
                    err = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    sel.unregister(key.fileobj)
                    left -= 1
            sel.close()
            socks.extend(pending)
            pending = []
    return socks


def echo_all(socks):
    sel = selectors.DefaultSelector()
    want = {}
    for i, s in enumerate(socks):
        line = b'line %d\n' % i
        s.setblocking(True)
        s.sendall(line)
        s.setblocking(False)
        want[s] = [line, b'']
        sel.register(s, selectors.EVENT_READ)
    done, deadline = 0, time.monotonic() + 30
    while done < len(socks):
        ev = sel.select(max(0, deadline - time.monotonic()))
        if not ev:
            break
        for key, _ in ev:
            s = key.fileobj
            data = s.recv(4096)
            if not data:
                raise EOFError('a connection closed before its echo')
            w = want[s]
            w[1] += data
            if len(w[1]) >= len(w[0]):
                if w[1] != w[0]:
                    raise ValueError('wrong echo %r for %r' % (w[1], w[0]))
                sel.unregister(s)
                done += 1
    return done


def main():
    raise_nofile()
    mode, n, host, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    try:
        if mode == 'hold':
            ready, go = sys.argv[5], sys.argv[6]
            socks = open_all(n, (host, port))
            with open(ready + '.tmp', 'w') as f:
                f.write('held %d\n' % len(socks))
            os.rename(ready + '.tmp', ready)
            while not os.path.exists(go):
                time.sleep(0.05)
            k = echo_all(socks)
            print('echoed=%d' % k, flush=True)
            return 0 if k == n else 1
        if mode == 'conns':
            ok = 0
            for i in range(n):
                with socket.create_connection((host, port), timeout=10) as s:
                    line = b'conn %d\n' % i
                    s.sendall(line)
                    got = b''
                    while len(got) < len(line):
                        d = s.recv(4096)
                        if not d:
                            break
                        got += d
                    ok += got == line
            print('ok=%d' % ok, flush=True)
            return 0 if ok == n else 1
    except (OSError, ValueError, EOFError, TimeoutError) as e:
        print('many_tool: %s' % e, file=sys.stderr)
        return 1
    print('many_tool: unknown mode %s' % mode, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
