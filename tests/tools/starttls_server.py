#!/usr/bin/env python3
"""starttls_server.py - a small STARTTLS server for tests/autotls.bats.

usage: starttls_server.py --proto smtp|pop3|imap|echo --cert F --key F
                          [--log FILE] PORTFILE

Listens on 127.0.0.1 (a port of its choosing, written to PORTFILE), greets
each client in plain text as the protocol does, answers its commands
line by line, and on STARTTLS (STLS in POP3) answers that TLS may begin and
switches to TLS on the same connection.  Every command is logged to FILE
as "plain LINE" or "tls LINE"; a finished handshake as "handshake
version=V".  QUIT (LOGOUT in IMAP) is answered and ends the connection.

--proto echo greets nobody: a client whose first byte begins a TLS record
is served TLS, any other plain text; either way every byte is sent back
until the client's EOF ("echo tls N" or "echo plain N" logged).

Runs until killed.
"""
import argparse
import os
import socket
import ssl
import threading

LOCK = threading.Lock()

GREET = {
    'smtp': b'220 starttls.test ESMTP ready\r\n',
    'pop3': b'+OK POP3 ready\r\n',
    'imap': b'* OK IMAP4rev1 ready\r\n',
}


def log(args, line):
    if args.log:
        with LOCK:
            with open(args.log, 'a') as f:
                f.write(line + '\n')


def answer(proto, line, tls):
    """The reply to one command line, and whether to start TLS / stop."""
    words = line.split()
    tag = words[0] if proto == 'imap' and words else ''
    cmd = (words[1] if proto == 'imap' and len(words) > 1 else
           words[0] if words else '').upper()
    if proto == 'smtp':
        if cmd in ('EHLO', 'HELO'):
            caps = b'' if tls else b'250-STARTTLS\r\n'
            return b'250-starttls.test\r\n' + caps + b'250 8BITMIME\r\n', None
        if cmd == 'STARTTLS' and not tls:
            return b'220 Ready to start TLS\r\n', 'tls'
        if cmd == 'QUIT':
            return b'221 bye\r\n', 'quit'
        return b'250 ok ' + line.encode() + b'\r\n', None
    if proto == 'pop3':
        if cmd == 'CAPA':
            return b'+OK\r\nSTLS\r\nUSER\r\n.\r\n', None
        if cmd == 'STLS' and not tls:
            return b'+OK Begin TLS\r\n', 'tls'
        if cmd == 'QUIT':
            return b'+OK bye\r\n', 'quit'
        return b'+OK ' + line.encode() + b'\r\n', None
    t = tag.encode()
    if cmd == 'CAPABILITY':
        caps = b'' if tls else b' STARTTLS'
        return (b'* CAPABILITY IMAP4rev1' + caps + b'\r\n' + t +
                b' OK done\r\n'), None
    if cmd == 'STARTTLS' and not tls:
        return t + b' OK Begin TLS\r\n', 'tls'
    if cmd == 'LOGOUT':
        return b'* BYE\r\n' + t + b' OK bye\r\n', 'quit'
    return t + b' OK ' + line.encode() + b'\r\n', None


def echo(args, ctx, conn):
    """Sends back every byte, over TLS if the client starts TLS."""
    sock = conn
    kind = 'plain'
    total = 0
    try:
        first = conn.recv(1, socket.MSG_PEEK)
        if first == b'\x16':
            sock = ctx.wrap_socket(conn, server_side=True)
            kind = 'tls'
        while True:
            data = sock.recv(65536)
            if not data:
                break
            sock.sendall(data)
            total += len(data)
        if kind == 'tls':
            sock = sock.unwrap()
        sock.shutdown(socket.SHUT_WR)
        log(args, 'echo %s %d' % (kind, total))
    except (OSError, ssl.SSLError) as e:
        log(args, 'error ' + str(e))
    finally:
        sock.close()


def serve(args, ctx, conn):
    sock = conn
    tls = False
    buf = b''
    try:
        sock.sendall(GREET[args.proto])
        while True:
            while b'\n' not in buf:
                data = sock.recv(4096)
                if not data:
                    return
                buf += data
            raw, buf = buf.split(b'\n', 1)
            line = raw.rstrip(b'\r').decode('latin-1')
            log(args, ('tls ' if tls else 'plain ') + line)
            reply, what = answer(args.proto, line, tls)
            sock.sendall(reply)
            if what == 'quit':
                if tls:
                    sock = sock.unwrap()	# close_notify: a clean end
                return
            if what == 'tls':
                if buf:
                    log(args, 'bytes after STARTTLS')
                    return
                sock = ctx.wrap_socket(conn, server_side=True)
                tls = True
                log(args, 'handshake version=' + sock.version())
    except (OSError, ssl.SSLError) as e:
        log(args, 'error ' + str(e))
    finally:
        try:
            sock.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('portfile')
    ap.add_argument('--proto', choices=sorted(GREET) + ['echo'],
                    default='smtp')
    ap.add_argument('--cert', required=True)
    ap.add_argument('--key', required=True)
    ap.add_argument('--log')
    args = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', 0))
    ls.listen(64)
    with open(args.portfile + '.tmp', 'w') as f:
        f.write('%d\n' % ls.getsockname()[1])
    os.rename(args.portfile + '.tmp', args.portfile)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=echo if args.proto == 'echo' else serve,
                         args=(args, ctx, conn),
                         daemon=True).start()


if __name__ == '__main__':
    main()
