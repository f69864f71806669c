#!/usr/bin/env python3
"""tls_client.py - TLS clients, good and bad, for tests/tls.bats.

usage: tls_client.py HOST PORT MODE [options]

Modes:
  get        a TLS client: handshake (with --cafile, the certificate and the
             --sni name are checked; without, nothing is checked), print
             "version=V alpn=P" on a line, send --send TEXT (C escapes;
             default an HTTP/1.0 GET), then print what comes back until EOF
             (or, with --count N, until N bytes came back)
             (--pause S: wait S seconds after the handshake before sending)
  bulk       a TLS client that sends --count random bytes to an echoing
             upstream while reading the echo, and checks the echo is the
             same bytes; prints "echoed N"
  hello-records  as get, but the ClientHello message is carried in two TLS
             records (RFC 8446 5.1 lets a handshake message span records)
  coalesced  as get, but the request goes in the same write as the
             client's last handshake message
  split-hello  as get, but the ClientHello is written in two pieces,
             --delay seconds apart
  garbage    --count N connections in turn, each sending bytes that are not
             TLS; each must be closed by the peer within --wait seconds.
             Prints "closed N"
  reject     --count N connections in turn, each a TLS client that trusts
             nothing, so each handshake fails on the certificate.
             Prints "rejected N"
  fail       --count N connections in turn, each a TLS client (checking
             nothing) whose handshake must fail some way or other: closed,
             reset or alerted by the peer.  Prints "failed N"
  hello-close  --count N connections in turn, each sending a whole
             ClientHello and closing at once (with --rst, by a reset).
             Prints "sent N"
  half-hello send the first half of a ClientHello and nothing more; print
             "closed after S" (seconds) once the peer closes
  stall      send a whole ClientHello, read the answer, send nothing more;
             print "closed after S" once the peer closes
  raw-sni    send a ClientHello whose server_name is --sni-hex (any bytes,
             NULs too), and wait for the peer's first answer: print
             "answered" (it sent bytes) or "closed" (it closed)

Options: --sni NAME, --cafile FILE, --alpn P1,P2, --version 1.2|1.3,
--cert-out FILE (the server's certificate, PEM), --send TEXT, --count N,
--wait SECONDS (default 20), --delay SECONDS (default 1), --pause SECONDS,
--rst.

Exit status: 0 when the mode's expectation held, 1 otherwise (the reason on
stderr).
"""
import argparse
import os
import socket
import select
import ssl
import struct
import sys
import threading
import time

def unescape(s):
    return s.encode('latin-1').decode('unicode_escape').encode('latin-1')


def context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if args.cafile:
        ctx.load_verify_locations(args.cafile)
        ctx.check_hostname = args.sni is not None
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn.split(','))
    if args.version == '1.2':
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif args.version == '1.3':
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def connect(args):
    s = socket.create_connection((args.host, args.port), timeout=args.wait)
    return s


def bio_client(args, ctx=None, sni=None):
    ctx = ctx or context(args)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni if sni is not None else args.sni)
    return obj, inc, out


def first_flight(obj, out):
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def pump(sock, obj, inc, out, op):
    """Run op() on the SSLObject, moving bytes between it and the socket,
    until it no longer wants to read; returns op's result."""
    while True:
        try:
            r = op()
            data = out.read()
            if data:
                sock.sendall(data)
            return r
        except ssl.SSLWantReadError:
            data = out.read()
            if data:
                sock.sendall(data)
            got = sock.recv(65536)
            if not got:
                inc.write_eof()
            else:
                inc.write(got)


def wait_closed(sock, wait):
    """Seconds until the peer closed (EOF or reset), None if it did not
    within wait seconds."""
    t0 = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - t0 < wait:
        try:
            if not sock.recv(65536):
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


def report(obj_or_sock, args):
    print('version=%s alpn=%s' % (obj_or_sock.version(),
                                  obj_or_sock.selected_alpn_protocol() or '-'), flush=True)
    if args.cert_out:
        der = obj_or_sock.getpeercert(binary_form=True)
        with open(args.cert_out, 'w') as f:
            f.write(ssl.DER_cert_to_PEM_cert(der))


def request(args):
    if args.send is not None:
        return unescape(args.send)
    return b'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' % (args.sni or args.host).encode()


def mode_get(args):
    s = connect(args)
    t = context(args).wrap_socket(s, server_hostname=args.sni)
    report(t, args)
    if args.pause:
        time.sleep(args.pause)
    t.sendall(request(args))
    got = b''
    while args.count is None or len(got) < args.count:
        try:
            chunk = t.recv(65536)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
        if not chunk:
            break
        got += chunk
    sys.stdout.buffer.write(got)
    sys.stdout.flush()
    t.close()
    return 0


def mode_bulk(args):
    """Send and read back at once from one thread: an SSL object must not
    be used by two threads at the same time."""
    n = args.count or 1048576
    data = os.urandom(n)
    s = connect(args)
    t = context(args).wrap_socket(s, server_hostname=args.sni)
    t.setblocking(False)
    got = bytearray()
    sent = 0
    err = None
    deadline = time.monotonic() + args.wait
    while len(got) < n and time.monotonic() < deadline:
        want_w = sent < n
        r, w, _ = select.select([t], [t] if want_w else [], [], 0.5)
        try:
            if want_w and w:
                sent += t.send(data[sent:sent + 16384])
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except (OSError, ssl.SSLError) as e:
            err = e
            break
        try:
            while True:
                chunk = t.recv(65536)
                if not chunk:
                    raise EOFError()
                got += chunk
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except EOFError:
            break
        except (OSError, ssl.SSLError) as e:
            err = e
            break
    if bytes(got) != data:
        print('echo differs: sent %d bytes, got %d back%s' % (
            n, len(got), ' (%r)' % err if err else ''), file=sys.stderr)
        return 1
    print('echoed %d' % n)
    t.close()
    return 0


def read_all(s, obj, inc, out, count=None):
    """What the SSLObject reads until EOF, or until count bytes came."""
    got = b''
    while count is None or len(got) < count:
        try:
            chunk = pump(s, obj, inc, out, lambda: obj.read(65536))
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
        if not chunk:
            break
        got += chunk
    return got


def mode_hello_records(args):
    s = connect(args)
    obj, inc, out = bio_client(args)
    hello = first_flight(obj, out)
    ver, body = hello[1:3], hello[5:]
    cut = len(body) // 3
    for part in (body[:cut], body[cut:]):
        s.sendall(b'\x16' + ver + struct.pack('!H', len(part)) + part)
    pump(s, obj, inc, out, obj.do_handshake)
    report(obj, args)
    pump(s, obj, inc, out, lambda: obj.write(request(args)))
    sys.stdout.buffer.write(read_all(s, obj, inc, out, args.count))
    s.close()
    return 0


def mode_coalesced(args):
    s = connect(args)
    obj, inc, out = bio_client(args)
    s.sendall(first_flight(obj, out))
    while True:
        got = s.recv(65536)
        if not got:
            print('closed during the handshake', file=sys.stderr)
            return 1
        inc.write(got)
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            data = out.read()
            if data:
                s.sendall(data)
    report(obj, args)
    obj.write(request(args))
    s.sendall(out.read())     # Finished and the request in one write
    sys.stdout.buffer.write(read_all(s, obj, inc, out, args.count))
    s.close()
    return 0


def mode_split_hello(args):
    s = connect(args)
    obj, inc, out = bio_client(args)
    hello = first_flight(obj, out)
    half = len(hello) // 2
    s.sendall(hello[:half])
    time.sleep(args.delay)
    s.sendall(hello[half:])
    pump(s, obj, inc, out, obj.do_handshake)
    report(obj, args)
    pump(s, obj, inc, out, lambda: obj.write(request(args)))
    sys.stdout.buffer.write(read_all(s, obj, inc, out, args.count))
    s.close()
    return 0


def mode_garbage(args):
    n = args.count or 1
    junk = b'\x00\x01this is not a TLS ClientHello\r\n' + bytes(range(256)) * 2
    for i in range(n):
        s = connect(args)
        try:
            s.sendall(junk)
        except OSError:
            pass  # already closed: that is fine
        if wait_closed(s, args.wait) is None:
            print('connection %d of %d was not closed within %gs' % (i + 1, n, args.wait),
                  file=sys.stderr)
            return 1
        s.close()
    print('closed %d' % n)
    return 0


def mode_reject(args):
    n = args.count or 1
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)   # trusts no CA at all
    for i in range(n):
        s = connect(args)
        try:
            t = ctx.wrap_socket(s, server_hostname=args.sni or 'upstream.test')
        except ssl.SSLCertVerificationError:
            s.close()
            continue
        except (ssl.SSLError, OSError) as e:
            print('connection %d of %d: not a certificate failure: %r' % (i + 1, n, e),
                  file=sys.stderr)
            return 1
        print('connection %d of %d: the handshake succeeded' % (i + 1, n), file=sys.stderr)
        t.close()
        return 1
    print('rejected %d' % n)
    return 0


def mode_fail(args):
    n = args.count or 1
    for i in range(n):
        s = connect(args)
        try:
            t = context(args).wrap_socket(s, server_hostname=args.sni)
        except (ssl.SSLError, OSError):
            s.close()
            continue
        print('connection %d of %d: the handshake succeeded' % (i + 1, n), file=sys.stderr)
        t.close()
        return 1
    print('failed %d' % n)
    return 0


def mode_hello_close(args):
    n = args.count or 1
    obj, _, out = bio_client(args)
    hello = first_flight(obj, out)
    for _ in range(n):
        s = connect(args)
        s.sendall(hello)
        if args.rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        s.close()
    print('sent %d' % n)
    return 0


def mode_half_hello(args):
    s = connect(args)
    obj, _, out = bio_client(args)
    hello = first_flight(obj, out)
    s.sendall(hello[:len(hello) // 2])
    el = wait_closed(s, args.wait)
    if el is None:
        print('not closed within %gs' % args.wait, file=sys.stderr)
        return 1
    print('closed after %.1f' % el)
    return 0


def mode_stall(args):
    s = connect(args)
    obj, _, out = bio_client(args)
    s.sendall(first_flight(obj, out))
    el = wait_closed(s, args.wait)
    if el is None:
        print('not closed within %gs' % args.wait, file=sys.stderr)
        return 1
    print('closed after %.1f' % el)
    return 0


def mode_raw_sni(args):
    name = bytes.fromhex(args.sni_hex)
    placeholder = b'q' * (len(name) - 5) + b'.test' if len(name) > 5 else b'q' * len(name)
    obj, _, out = bio_client(args, sni=placeholder.decode())
    hello = first_flight(obj, out)
    at = hello.find(placeholder)
    if at < 0:
        print('placeholder not found in the ClientHello', file=sys.stderr)
        return 1
    hello = hello[:at] + name + hello[at + len(name):]
    s = connect(args)
    s.sendall(hello)
    s.settimeout(args.wait)
    try:
        got = s.recv(65536)
    except socket.timeout:
        print('no answer within %gs' % args.wait, file=sys.stderr)
        return 1
    except OSError:
        got = b''
    print('answered' if got else 'closed')
    return 0


MODES = {
    'get': mode_get,
    'bulk': mode_bulk,
    'split-hello': mode_split_hello,
    'coalesced': mode_coalesced,
    'hello-records': mode_hello_records,
    'garbage': mode_garbage,
    'reject': mode_reject,
    'fail': mode_fail,
    'hello-close': mode_hello_close,
    'half-hello': mode_half_hello,
    'stall': mode_stall,
    'raw-sni': mode_raw_sni,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('host')
    ap.add_argument('port', type=int)
    ap.add_argument('mode', choices=sorted(MODES))
    ap.add_argument('--sni')
    ap.add_argument('--sni-hex')
    ap.add_argument('--cafile')
    ap.add_argument('--alpn')
    ap.add_argument('--version', choices=('1.2', '1.3'))
    ap.add_argument('--cert-out')
    ap.add_argument('--send')
    ap.add_argument('--count', type=int)
    ap.add_argument('--wait', type=float, default=20.0)
    ap.add_argument('--delay', type=float, default=1.0)
    ap.add_argument('--pause', type=float, default=0.0)
    ap.add_argument('--rst', action='store_true')
    args = ap.parse_args()
    try:
        return MODES[args.mode](args)
    except (OSError, ssl.SSLError, ValueError) as e:
        print('%s: %s: %r' % (args.mode, type(e).__name__, e), file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
