#!/usr/bin/env bats
# tests/output.bats - observations on standard output never block the loop

bats_require_minimum_version 1.5.0
load helper

# fifo_reader SECONDS: a FIFO at $T/obs whose reader opens it, then sleeps
# SECONDS before reading everything into $T/obs.got
fifo_reader() {
	mkfifo "$T/obs"
	bg sh -c "exec 3<'$T/obs'; sleep $1; cat <&3 >'$T/obs.got'"
}

# start_tproxy_fifo ARGS...: start_tproxy with stdout into the FIFO $T/obs
start_tproxy_fifo() {
	TP_STDOUT=$T/obs start_tproxy "$@"
}

# pump PORT BYTES: send BYTES to an echo route and read them back; prints
# how many came back within 3 s
pump() {
	python3 - "$1" "$2" <<'PY'
import socket, sys, time
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.settimeout(0.2)
want, sent, got, end = int(sys.argv[2]), 0, 0, time.time() + 3
s.setblocking(False)
while time.time() < end and got < want:
    try:
        if sent < want:
            sent += s.send(b'x' * min(65536, want - sent))
    except BlockingIOError:
        pass
    try:
        d = s.recv(1 << 20)
        if not d:
            break
        got += len(d)
    except BlockingIOError:
        time.sleep(0.01)
print(got)
PY
}

# echo_rtt PORT: one round trip to an echo route; prints the seconds
echo_rtt() {
	python3 - "$1" <<'PY'
import socket, sys, time
t = time.time()
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
s.sendall(b'ping')
d = s.recv(100)
print('%.3f %s' % (time.time() - t, d.decode()))
PY
}

@test "a stdout reader that stops reading holds up only the connections whose filters observe" {
	fifo_reader 8
	start_tproxy_fifo tcp-listen:0 echo hexdump + tcp-listen:0 echo + tcp-listen:0 echo log
	local p1 p2 p3
	p1=$(sed -n 1p <<<"$PORTS")
	p2=$(sed -n 2p <<<"$PORTS")
	p3=$(sed -n 3p <<<"$PORTS")
	# 4 MiB through hexdump is ~17 MiB of dump: far more than a pipe holds
	run -0 pump "$p1" 4194304
	[ "$output" -lt 4194304 ] || {
		echo "the hexdump route was not held up: $output bytes" >&2
		return 1
	}
	# the route without filters answers at once
	run -0 echo_rtt "$p2"
	contains ping "$output"
	awk '{ exit !($1 < 2) }' <<<"$output"
	kill -0 "$TP_PID"
}

@test "SIGTERM ends tproxy at once while its stdout reader sleeps" {
	fifo_reader 20
	start_tproxy_fifo tcp-listen:0 echo hexdump
	run -0 pump "$PORT" 4194304
	local t0 t1
	t0=$(date +%s%N)
	kill -TERM "$TP_PID"
	wait_gone "$TP_PID" 3
	t1=$(date +%s%N)
	[ $(((t1 - t0) / 1000000)) -lt 2000 ]
	TP_STATUS=0
	wait "$TP_PID" || TP_STATUS=$?
	[ "$TP_STATUS" -eq 0 ]
}

@test "a held-up connection flows again, every byte intact, once the reader reads" {
	fifo_reader 2
	start_tproxy_fifo tcp-listen:0 echo hexdump
	# 2 MiB make ~9 MiB of hexdump, far more than a pipe holds while nobody
	# reads; all of it comes back once the reader wakes
	run -0 python3 - "$PORT" <<'PY'
import hashlib, os, socket, sys, threading
data = os.urandom(2 << 20)
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=60)
def send():
    for i in range(0, len(data), 16384):
        s.sendall(data[i:i + 16384])
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
got = bytearray()
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
t.join()
print('same' if hashlib.sha256(got).digest() == hashlib.sha256(data).digest() else 'differ %d' % len(got))
PY
	contains same "$output"
	stop_tproxy
	[ "$TP_STATUS" -eq 0 ]
	wait_for "$T/obs.got" 'length=' 5
}

@test "a stdout pipe whose reader went away stops observations, not traffic" {
	mkfifo "$T/obs"
	bg sh -c "head -c 1 <'$T/obs' >/dev/null"
	start_tproxy_fifo tcp-listen:0 echo hexdump
	run -0 pump "$PORT" 1048576
	[ "$output" -eq 1048576 ]
	wait_for "$T/tproxy.err" 'standard output closed' 5
}

# unix_client SOCKPATH CLIENTPATH: connect from a Unix socket bound to
# CLIENTPATH (python escapes allowed), send "hi", read the echo
unix_client() {
	python3 - "$1" "$2" <<'PY'
import socket, sys
path = sys.argv[2].encode().decode('unicode_escape').encode('latin-1')
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.connect(sys.argv[1])
s.sendall(b'hi')
print(s.recv(10).decode())
PY
}

@test "a Unix client's socket path reaches log lines and -v lines escaped, never as terminal escapes" {
	start_tproxy -v unix-listen:"$T/s.sock" echo log
	run -0 unix_client "$T/s.sock" "$T/c\\x1b]0;owned\\x07\\x1b[2J\\nFAKE 1 c2s\\x9b"
	[ "$output" = hi ]
	stop_tproxy
	# no ESC, BEL or C1 byte anywhere, and the path's newline did not make a line
	run -1 grep -c $'[\x1b\x07]' "$T/tproxy.out" "$T/tproxy.err"
	run -1 grep -c $'\x9b' "$T/tproxy.out" "$T/tproxy.err"
	run -1 grep -c '^FAKE' "$T/tproxy.out" "$T/tproxy.err"
	grep -q 'c\\x1b]0;owned\\x07\\x1b\[2J\\x0aFAKE 1 c2s\\x9b' "$T/tproxy.out"
	grep -q 'accept .*c\\x1b' "$T/tproxy.err"
}

@test "--json keeps a path's UTF-8 as characters and escapes control characters and stray bytes" {
	start_tproxy --json unix-listen:"$T/s.sock" echo log
	run -0 unix_client "$T/s.sock" "$T/caf\\xc3\\xa9\\x1b\\xff"
	stop_tproxy
	run -0 jq -r 'select(.event == "accept") | .src' "$T/tproxy.out"
	[ "$output" = "$T/café"$'\x1b'"ÿ" ]
	grep -q 'café\\u001b\\u00ff' "$T/tproxy.out"
}
