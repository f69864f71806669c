#!/usr/bin/env python3
"""xp_server.py - the web server of tests/explicit.bats: HTTP/1.1 with
keep-alive, on one port of 127.0.0.1 and ::1.

usage:
  xp_server.py --port-file FILE --log FILE [--tls CERT KEY]

Binds a free port on 127.0.0.1 and the same port on ::1, writes the port
to --port-file, and serves until killed:

  GET /bin        256 bytes 00..ff (a byte-exact page)
  GET /big        1 MiB of a repeated pattern
  POST /echo      the request body back (Content-Length or chunked)
  GET anything    "page PATH\\n"

--log gets one line per request: "CLIENTPORT REQUEST-LINE", so a test can
tell two requests on one connection from two connections.  With --tls the
same is served over TLS with that certificate.
"""
import argparse
import http.server
import socket
import socketserver
import ssl
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def note(self):
        with open(self.server.logpath, 'a') as f:
            f.write('%d %s\n' % (self.client_address[1], self.requestline))

    def reply(self, body):
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.note()
        if self.path == '/bin':
            self.reply(bytes(range(256)))
        elif self.path == '/big':
            self.reply(b'0123456789abcdef' * 65536)
        else:
            self.reply(('page %s\n' % self.path).encode())

    def do_POST(self):
        self.note()
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            body = b''
            while True:
                size = int(self.rfile.readline().split(b';')[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        self.reply(body)


class V4(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class V6(V4):
    address_family = socket.AF_INET6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port-file', required=True)
    ap.add_argument('--log', required=True)
    ap.add_argument('--tls', nargs=2)
    a = ap.parse_args()
    s4 = V4(('127.0.0.1', 0), Handler)
    port = s4.server_address[1]
    s6 = V6(('::1', port), Handler)
    for s in (s4, s6):
        s.logpath = a.log
        if a.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(a.tls[0], a.tls[1])
            s.socket = ctx.wrap_socket(s.socket, server_side=True)
    threading.Thread(target=s6.serve_forever, daemon=True).start()
    with open(a.port_file + '.tmp', 'w') as f:
        f.write('%d\n' % port)
    import os
    os.rename(a.port_file + '.tmp', a.port_file)
    s4.serve_forever()


if __name__ == '__main__':
    main()
