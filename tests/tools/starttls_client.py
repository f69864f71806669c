#!/usr/bin/env python3
"""starttls_client.py - an eager SMTP STARTTLS client for tests/autotls.bats.

usage: starttls_client.py PORT CAFILE SNI

Reads the greeting, then sends "STARTTLS\\r\\n" and, 50 ms later and before
any reply came, its TLS ClientHello (a separate write, so a proxy reads it
at the start of a read).  It then reads the server's "220" reply in plain
text, and carries on the TLS handshake with what follows, checking the
certificate against CAFILE and the name SNI; sends "NOOP eager\\r\\n" and
"QUIT\\r\\n" over TLS and prints the replies.  Exit status 0 when the
handshake and both replies came.
"""
import socket
import ssl
import sys
import time


def main():
    port, cafile, sni = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    s = socket.create_connection(('127.0.0.1', port), timeout=20)
    f = s.makefile('rb', buffering=0)
    greet = b''
    while not greet.endswith(b'\n'):
        greet += f.read(1)
    ctx = ssl.create_default_context(cafile=cafile)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    s.sendall(b'STARTTLS\r\n')
    time.sleep(0.05)
    s.sendall(out.read())
    reply = b''
    while not reply.endswith(b'\n'):
        reply += f.read(1)
    print('plain reply: ' + reply.decode().strip())

    def pump():
        data = s.recv(65536)
        if not data:
            raise EOFError('server closed')
        inc.write(data)

    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            s.sendall(out.read())
            pump()
    s.sendall(out.read())
    print('handshake ' + obj.version())
    obj.write(b'NOOP eager\r\nQUIT\r\n')
    s.sendall(out.read())
    got = b''
    while b'221' not in got:
        try:
            got += obj.read(4096)
        except ssl.SSLWantReadError:
            s.sendall(out.read())
            pump()
    for line in got.decode().splitlines():
        print('tls reply: ' + line)
    return 0


if __name__ == '__main__':
    sys.exit(main())
