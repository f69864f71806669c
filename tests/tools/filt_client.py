#!/usr/bin/env python3
"""filt_client.py - a scripted TCP client for the tproxy test suites.

usage: filt_client.py HOST PORT STEP...      (HOST "unix" and PORT a path:
                                             a Unix stream socket)
       FILT_BIND=ADDR filt_client.py ...     (connect from ADDR, any port)

Steps, run in order:
  s:TEXT   send TEXT (C escapes: \\r \\n \\t \\xHH \\\\)
  w:SECS   wait SECS seconds (fractions allowed)
  u:TEXT   read until TEXT (C escapes allowed) has been received (5 s limit)
  n:N      read until N bytes in all have been received (5 s limit)
  t:SECS   set the limit of the reading steps to SECS seconds
  shut     shut down the sending side (FIN)
  eof      read until the proxy closes the connection
  quiet:SECS  read for SECS seconds; fail if anything arrives
  rst      close at once with a reset (SO_LINGER 0); later steps are skipped
  f:PATH   wait until the file PATH exists (the test's go-ahead; no limit)
  F:PATH:TEXT  wait until the file PATH contains TEXT (within the limit)

Every byte received is written to stdout at the end.  Exit status 0 when all
steps succeeded, 1 otherwise (with the reason on stderr).
"""
import os
import socket
import struct
import sys
import time


def unescape(s):
    return s.encode('latin-1').decode('unicode_escape').encode('latin-1')


def main():
    host, port, steps = sys.argv[1], sys.argv[2], sys.argv[3:]
    if host == 'unix':
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(port)
    else:
        bind = os.environ.get('FILT_BIND')
        s = socket.create_connection((host, int(port)), timeout=10,
                                     source_address=(bind, 0) if bind else None)
    got = bytearray()
    limit = 5.0
    status = 0

    def read_until(cond, what):
        deadline = time.monotonic() + limit
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('timed out waiting for ' + what)
            s.settimeout(left)
            data = s.recv(65536)
            if not data:
                if cond():
                    return
                raise EOFError('connection closed while waiting for ' + what)
            got.extend(data)

    try:
        for st in steps:
            op, _, arg = st.partition(':')
            if op == 's':
                s.sendall(unescape(arg))
            elif op == 'w':
                time.sleep(float(arg))
            elif op == 'u':
                want = unescape(arg)
                read_until(lambda: want in got, repr(want))
            elif op == 'n':
                n = int(arg)
                read_until(lambda: len(got) >= n, '%d bytes' % n)
            elif op == 't':
                limit = float(arg)
            elif op == 'shut':
                s.shutdown(socket.SHUT_WR)
            elif op == 'eof':
                deadline = time.monotonic() + limit
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError('timed out waiting for EOF')
                    s.settimeout(left)
                    data = s.recv(65536)
                    if not data:
                        break
                    got.extend(data)
            elif op == 'rst':
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack('ii', 1, 0))
                s.close()
                s = None
                break
            elif op == 'f':
                while not os.path.exists(arg):
                    time.sleep(0.02)
            elif op == 'F':
                path, _, text = arg.rpartition(':')
                want = unescape(text)
                deadline = time.monotonic() + limit
                while True:
                    try:
                        with open(path, 'rb') as f:
                            if want in f.read():
                                break
                    except FileNotFoundError:
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError('timed out waiting for %r in %s'
                                           % (want, path))
                    time.sleep(0.02)
            elif op == 'quiet':
                before = len(got)
                deadline = time.monotonic() + float(arg)
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    s.settimeout(left)
                    try:
                        data = s.recv(65536)
                    except socket.timeout:
                        break
                    if not data:
                        break
                    got.extend(data)
                if len(got) != before:
                    raise ValueError('unexpected bytes: %r' % bytes(got[before:]))
            else:
                raise ValueError('unknown step ' + st)
    except (OSError, ValueError, EOFError, TimeoutError) as e:
        sys.stderr.write('filt_client: %s (received so far: %r)\n' % (e, bytes(got)))
        status = 1
    sys.stdout.buffer.write(bytes(got))
    sys.stdout.flush()
    if s is not None:
        s.close()
    return status


if __name__ == '__main__':
    sys.exit(main())
