#!/usr/bin/env python3
"""tls_server.py - an upstream server for tests/tls.bats.

usage: tls_server.py [options] PORTFILE

Listens on 127.0.0.1 (port 0 unless --port), writes the bound port to
PORTFILE once listening, and serves every connection in its own thread.
Before any TLS library sees a connection, its ClientHello is peeked and
parsed here, so the log says exactly what the client (tproxy) sent:

  --log FILE     append one line per connection:
                   hello sni=NAME alpn=P1,P2
                 NAME is '-' without a server_name extension, and
                 'hex:...' when it holds anything but printable ASCII;
                 the ALPN list is '-' without the extension.  After the
                 handshake a second line:
                   done version=TLSv1.3 alpn=PROTO
  --cert F --key F   the certificate to serve (required unless --plain)
  --alpn LIST    protocols this server accepts, in its order of preference
  --keylog FILE  append the TLS secrets (SSLKEYLOGFILE format)
  --mode MODE    http  (default) read a request up to the blank line, answer
                       with an HTTP/1.0 page naming the SNI, the TLS version
                       and the ALPN protocol, and close
                 echo  send back every chunk until EOF
                 reset read the ClientHello and reset the connection (RST)
                       instead of answering it
                 banner send "220 banner\r\n" as soon as the handshake is
                       done, then echo
  --plain        no TLS at all (with --mode echo or http)
  --tls12        TLS 1.2 at most (its Finished comes last: a banner can
                 share its segment)

Runs until killed.
"""
import argparse
import os
import socket
import ssl
import struct
import sys
import threading
import time

LOCK = threading.Lock()


def log(args, line):
    if not args.log:
        return
    with LOCK:
        with open(args.log, 'a') as f:
            f.write(line + '\n')


def peek_hello(conn, timeout=5.0):
    """Peek (never consume) the first TLS record; returns its bytes or the
    bytes seen when the record did not complete in time."""
    deadline = time.monotonic() + timeout
    data = b''
    while time.monotonic() < deadline:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = conn.recv(16384 + 5, socket.MSG_PEEK)
        except (socket.timeout, OSError):
            break
        if not data:
            break
        if len(data) >= 5:
            need = 5 + struct.unpack('!H', data[3:5])[0]
            if len(data) >= need:
                return data[:need]
        time.sleep(0.01)
    conn.settimeout(None)
    return data


def parse_hello(rec):
    """(sni bytes or None, [alpn protocols] or None) from a ClientHello
    record; raises ValueError on anything malformed."""
    def take(buf, pos, n):
        if pos + n > len(buf):
            raise ValueError('short')
        return buf[pos:pos + n], pos + n

    if len(rec) < 5 or rec[0] != 22:
        raise ValueError('not a handshake record')
    body = rec[5:]
    if len(body) < 4 or body[0] != 1:
        raise ValueError('not a ClientHello')
    p = 4 + 2 + 32
    sid_len, p = take(body, p, 1)
    _, p = take(body, p, sid_len[0])
    cs_len, p = take(body, p, 2)
    _, p = take(body, p, struct.unpack('!H', cs_len)[0])
    cm_len, p = take(body, p, 1)
    _, p = take(body, p, cm_len[0])
    sni = alpn = None
    if p == len(body):
        return sni, alpn
    ext_len, p = take(body, p, 2)
    exts, p = take(body, p, struct.unpack('!H', ext_len)[0])
    q = 0
    while q < len(exts):
        hdr, q = take(exts, q, 4)
        etype, elen = struct.unpack('!HH', hdr)
        data, q = take(exts, q, elen)
        if etype == 0:
            r = 2
            while r < len(data):
                ntype = data[r]
                nlen = struct.unpack('!H', data[r + 1:r + 3])[0]
                if ntype == 0:
                    sni = data[r + 3:r + 3 + nlen]
                r += 3 + nlen
        elif etype == 16:
            alpn = []
            r = 2
            while r < len(data):
                plen = data[r]
                alpn.append(data[r + 1:r + 1 + plen].decode('latin-1'))
                r += 1 + plen
    return sni, alpn


def show_sni(sni):
    if sni is None:
        return '-'
    if sni and all(0x21 <= b < 0x7f for b in sni):
        return sni.decode('ascii')
    return 'hex:' + sni.hex()


def reset(conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    conn.close()


def read_request(s):
    data = b''
    while b'\r\n\r\n' not in data and b'\n\n' not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def serve(conn, args, ctx):
    try:
        sni = None
        tls = None
        if not args.plain:
            rec = peek_hello(conn)
            try:
                sni, alpn = parse_hello(rec)
                log(args, 'hello sni=%s alpn=%s' % (
                    show_sni(sni), ','.join(alpn) if alpn is not None else '-'))
            except ValueError as e:
                log(args, 'hello unparsable (%s): %s' % (e, rec[:64].hex()))
            if args.mode == 'reset':
                conn.recv(len(rec) or 1)
                reset(conn)
                log(args, 'reset')
                return
            conn.settimeout(10)
            tls = ctx.wrap_socket(conn, server_side=True)
            tls.settimeout(None)
            log(args, 'done version=%s alpn=%s' % (
                tls.version(), tls.selected_alpn_protocol() or '-'))
            s = tls
        else:
            s = conn
        if args.mode == 'banner':
            s.sendall(b'220 banner\r\n')
        if args.mode in ('echo', 'banner'):
            while True:
                data = s.recv(65536)
                if not data:
                    break
                s.sendall(data)
        else:
            req = read_request(s)
            first = req.split(b'\r\n', 1)[0].decode('latin-1')
            page = ('tls_server page\nrequest=%s\nsni=%s\nversion=%s\nalpn=%s\n' % (
                first, show_sni(sni), tls.version() if tls else 'plain',
                (tls.selected_alpn_protocol() if tls else None) or '-')).encode()
            s.sendall(b'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n'
                      b'Content-Length: %d\r\n\r\n' % len(page) + page)
        if tls is not None:
            try:
                tls.unwrap()
            except (OSError, ValueError):
                pass
    except (OSError, ssl.SSLError, ValueError) as e:
        log(args, 'failed %s' % e)
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('portfile')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--cert')
    ap.add_argument('--key')
    ap.add_argument('--alpn')
    ap.add_argument('--keylog')
    ap.add_argument('--log')
    ap.add_argument('--mode', choices=('http', 'echo', 'reset', 'banner'), default='http')
    ap.add_argument('--plain', action='store_true')
    ap.add_argument('--tls12', action='store_true')
    args = ap.parse_args()

    ctx = None
    if not args.plain:
        if not args.cert:
            ap.error('--cert is required without --plain')
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        if args.tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if args.alpn:
            ctx.set_alpn_protocols(args.alpn.split(','))
        if args.keylog:
            ctx.keylog_filename = args.keylog

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', args.port))
    ls.listen(128)
    tmp = args.portfile + '.tmp'
    with open(tmp, 'w') as f:
        f.write('%d\n' % ls.getsockname()[1])
    os.rename(tmp, args.portfile)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve, args=(conn, args, ctx), daemon=True).start()


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
