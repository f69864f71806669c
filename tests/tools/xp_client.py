#!/usr/bin/env python3
"""xp_client.py - a raw client for tests/explicit.bats: sends bytes to a
proxy listener and shows what comes back.

usage:
  xp_client.py PORT HEX [--wait S] [--hold S]
  xp_client.py PORT --file FILE [--wait S]

Connects to 127.0.0.1:PORT, sends the bytes written in HEX (or those of
FILE, which may be large: what the proxy does not read is given up when
it closes), then reads
until the proxy closes (or --wait seconds pass, default 3).  --hold sends
nothing for S seconds before the bytes (for timeouts).  Prints the bytes
received as hex on one line, then how it ended: "eof", "reset" or "open".
"""
import argparse
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('port', type=int)
    ap.add_argument('hex', nargs='?', default='')
    ap.add_argument('--file')
    ap.add_argument('--wait', type=float, default=3)
    ap.add_argument('--hold', type=float, default=0)
    a = ap.parse_args()
    s = socket.create_connection(('127.0.0.1', a.port))
    if a.hold:
        time.sleep(a.hold)
    try:
        if a.file:
            with open(a.file, 'rb') as f:
                s.sendall(f.read())
        else:
            s.sendall(bytes.fromhex(a.hex))
    except OSError:
        pass
    got, end = b'', 'open'
    deadline = time.monotonic() + a.wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            end = 'reset'
            break
        if not d:
            end = 'eof'
            break
        got += d
    print(got.hex())
    print(end)


if __name__ == '__main__':
    main()
