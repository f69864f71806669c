#!/usr/bin/env python3
"""filt_server.py - a small upstream server for the tproxy test suites.

usage: filt_server.py [options] PORTFILE

Listens on TCP (--host, port 0 unless --port) or on a Unix socket (--unix),
writes the bound port (or "ready" for --unix) to PORTFILE once listening,
and serves every connection in its own thread:

  --greet TEXT   send TEXT (C escapes allowed) on accept
  --peer         send "peer=HOST:PORT\\n" on accept (the client address seen)
  --echo         send back every chunk received
  --tag NAME     with --echo, prefix every echoed chunk with NAME
  --log FILE     append every byte received to FILE
  --close        close the connection after the greeting / peer line

Runs until killed.
"""
import argparse
import os
import socket
import sys
import threading


def unescape(s):
    return s.encode('latin-1').decode('unicode_escape').encode('latin-1')


def serve(conn, peer, args, lock):
    try:
        if args.peer:
            if isinstance(peer, tuple):
                conn.sendall(('peer=%s:%d\n' % (peer[0], peer[1])).encode())
            else:
                conn.sendall(b'peer=unix\n')
        if args.greet is not None:
            conn.sendall(unescape(args.greet))
        if args.close:
            conn.close()
            return
        while True:
            data = conn.recv(65536)
            if not data:
                break
            if args.log:
                with lock:
                    with open(args.log, 'ab') as f:
                        f.write(data)
            if args.echo:
                conn.sendall((args.tag.encode() if args.tag else b'') + data)
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    except OSError:
        pass
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('portfile')
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--unix')
    ap.add_argument('--greet')
    ap.add_argument('--peer', action='store_true')
    ap.add_argument('--echo', action='store_true')
    ap.add_argument('--tag')
    ap.add_argument('--log')
    ap.add_argument('--close', action='store_true')
    args = ap.parse_args()

    if args.unix:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(args.unix)
        ready = 'ready'
    else:
        fam = socket.AF_INET6 if ':' in args.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((args.host, args.port))
        ready = str(s.getsockname()[1])
    s.listen(64)
    if args.log:
        open(args.log, 'ab').close()
    tmp = args.portfile + '.tmp'
    with open(tmp, 'w') as f:
        f.write(ready + '\n')
    os.rename(tmp, args.portfile)
    lock = threading.Lock()
    while True:
        conn, peer = s.accept()
        threading.Thread(target=serve, args=(conn, peer, args, lock),
                         daemon=True).start()


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
