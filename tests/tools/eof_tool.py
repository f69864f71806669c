#!/usr/bin/env python3
"""eof_tool.py - TLS peers that end their streams in a chosen way, and tell
how the other end ended its own, for tests/tlsguard.bats.

usage: eof_tool.py server PORTFILE --cert F --key F [options]
       eof_tool.py client HOST PORT [options]

A server listens on 127.0.0.1 (port 0), writes its port to PORTFILE and
serves each connection in a thread; a client makes one connection.  Both
do what --mode says:

  --mode send   read one line (the request; a client sends none), then
                write --size bytes and end as --end says
  --mode read   (a client first sends one line) read until the stream
                ends, then print (a server: append to --log) one of
                  eof clean N       the peer sent close_notify
                  eof unexpected N  TCP ended without close_notify
                  error TEXT N      anything else
                N being the bytes read; then, for a clean end, answer
                the close_notify with one
  --end clean   close_notify, then close (default)
  --end ragged  end the TCP stream (FIN) without close_notify, read what
                the peer still sends until it closes, then close
  --end reset   close with a TCP reset (SO_LINGER 0)
  --end cut     (with --stop-after) a FIN without close_notify, then read
                as many bytes again and reset
  --stop-after N  (read) once N bytes came, end as --end says and print
                "stopped after N"

Options: --cafile F and --sni NAME (a client checks the certificate and the
name; without --cafile it checks nothing), --size N (default 100000),
--log FILE, --wait SECONDS (default 20).
"""
import argparse
import os
import socket
import ssl
import struct
import sys
import threading


def end(tls, how, wait=20):
    """Ends the connection (the TLS socket owns the descriptor)."""
    if how == 'clean':
        try:
            tls.unwrap()	# close_notify; waits for the peer's
        except (OSError, ValueError):
            pass
    elif how == 'ragged':
        # FIN without close_notify; then take in whatever the peer still
        # sends (session tickets, its own end) as raw bytes, so that the
        # close sends no reset
        raw = socket.socket(fileno=os.dup(tls.fileno()))
        raw.shutdown(socket.SHUT_WR)
        raw.settimeout(wait)
        try:
            while raw.recv(65536):
                pass
        except OSError:
            pass
        raw.close()
    elif how == 'reset':
        tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    tls.close()


def read_all(tls, args):
    n = 0
    cut = False
    try:
        while True:
            data = tls.recv(65536)
            if not data:
                break
            n += len(data)
            if args.stop_after is not None and n >= args.stop_after:
                if args.end != 'cut':
                    end(tls, args.end, args.wait)
                    return 'stopped after %d' % n
                if n >= 2 * args.stop_after:
                    end(tls, 'reset')
                    return 'stopped after %d' % n
                if not cut:
                    cut = True
                    dup = socket.fromfd(tls.fileno(), socket.AF_INET, socket.SOCK_STREAM)
                    dup.shutdown(socket.SHUT_WR)
                    dup.close()
    except ssl.SSLEOFError:
        return 'eof unexpected %d' % n
    except ssl.SSLError as e:
        if getattr(e, 'reason', '') == 'UNEXPECTED_EOF_WHILE_READING':
            return 'eof unexpected %d' % n
        return 'error %s %d' % (e, n)
    except OSError as e:
        return 'error %s %d' % (e, n)
    try:
        tls.unwrap()
    except (OSError, ValueError):
        pass
    return 'eof clean %d' % n


def send(tls, args):
    tls.sendall(b'x' * args.size)
    end(tls, args.end, args.wait)


def serve(raw, args, ctx):
    try:
        raw.settimeout(args.wait)
        tls = ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
        if args.mode == 'send':
            line = b''
            while not line.endswith(b'\n'):
                c = tls.recv(1)
                if not c:
                    break
                line += c
            send(tls, args)
        else:
            r = read_all(tls, args)
            if args.log:
                with open(args.log, 'a') as f:
                    f.write(r + '\n')
    except (OSError, ssl.SSLError):
        pass
    finally:
        raw.close()


def server(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Python 3.10 and 3.11 before 3.11.3 (Debian 12's) set this by default,
    # which makes a TCP end without close_notify look clean
    ctx.options &= ~getattr(ssl, 'OP_IGNORE_UNEXPECTED_EOF', 0)
    ctx.load_cert_chain(args.cert, args.key)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', 0))
    ls.listen(64)
    with open(args.portfile + '.tmp', 'w') as f:
        f.write('%d\n' % ls.getsockname()[1])
    os.rename(args.portfile + '.tmp', args.portfile)
    while True:
        raw, _ = ls.accept()
        threading.Thread(target=serve, args=(raw, args, ctx), daemon=True).start()


def client(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Python 3.10 and 3.11 before 3.11.3 (Debian 12's) set this by default,
    # which makes a TCP end without close_notify look clean
    ctx.options &= ~getattr(ssl, 'OP_IGNORE_UNEXPECTED_EOF', 0)
    if args.cafile:
        ctx.load_verify_locations(args.cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((args.host, args.port), timeout=args.wait)
    tls = ctx.wrap_socket(raw, server_hostname=args.sni, suppress_ragged_eofs=False)
    if args.mode == 'send':
        send(tls, args)
        return 0
    tls.sendall(b'GET\n')
    r = read_all(tls, args)
    print(r, flush=True)
    tls.close()
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('role', choices=('server', 'client'))
    ap.add_argument('rest', nargs='+')
    ap.add_argument('--cert')
    ap.add_argument('--key')
    ap.add_argument('--cafile')
    ap.add_argument('--sni')
    ap.add_argument('--mode', choices=('send', 'read'), default='send')
    ap.add_argument('--end', choices=('clean', 'ragged', 'reset', 'cut'), default='clean')
    ap.add_argument('--size', type=int, default=100000)
    ap.add_argument('--stop-after', type=int)
    ap.add_argument('--log')
    ap.add_argument('--wait', type=float, default=20)
    args = ap.parse_args()
    if args.role == 'server':
        args.portfile = args.rest[0]
        return server(args)
    args.host, args.port = args.rest[0], int(args.rest[1])
    return client(args)


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
