#!/usr/bin/env bats
# tests/limits.bats - what many small peers can cost tproxy, and the limits
# that bound it: UDP sessions against the descriptor table (a cap in all,
# a cap per client address, error lines at most once a second per kind),
# idle half-sent TLS ClientHellos against the CPU, and idle connections
# through s/// against memory.  The clients are tests/tools/limits_tool.py.
#
# Nothing here is timed: the tests assert bounded counts (descriptors,
# sessions, lines, clock ticks, resident memory) with generous margins,
# since the suite also runs under AddressSanitizer on a busy machine.

# shellcheck disable=SC2154 # $output, $stderr: set by bats' run
bats_require_minimum_version 1.5.0

load helper

LT=$TOOLS/limits_tool.py
UDP=$TOOLS/udp_tool.py

# PY: the python3 interpreter itself, found once (a shim in front of it can
# take a second to start)
setup_file() {
	PY=$(python3 -c 'import sys; print(sys.executable)')
	export PY
}

# rss PID: resident set size of PID in KiB
rss() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# cpu_ticks PID: user + system clock ticks PID has used
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# below N WHAT VALUE: VALUE < N, or say what failed
below() {
	[ "$3" -lt "$1" ] && return 0
	echo "$2: $3, expected below $1" >&2
	return 1
}

# udp_echo NAME: udp_tool.py echo server in the background; sets SPORT
udp_echo() {
	bg "$PY" "$UDP" server --echo "$T/$1.port"
	wait_for "$T/$1.port" '^[0-9]+$' 10
	SPORT=$(cat "$T/$1.port")
}

# tcp_echo PORT: one line through an echo route on PORT; prints what came back
tcp_echo() {
	"$PY" -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"still here\n")
print(s.recv(100).decode().strip())' "$1"
}

# --- half-sent TLS ClientHellos --------------------------------------------------

@test "200 idle half-sent ClientHellos of 48 KiB cost no CPU, and a hello completed later is served" {
	XDG_STATE_HOME=$T/state start_tproxy tcp-listen:0,tls echo
	bg "$PY" "$LT" hello "$PORT" 200 --hold 8 >"$T/hello.out"
	wait_for "$T/hello.out" '^sent=200$' 20
	# one more client sends 100 bytes of a real ClientHello, and waits
	bg "$PY" "$LT" tlsecho "$PORT" 100 "$T/go" >"$T/tls.out"
	wait_for "$T/tls.out" '^partial$' 20
	local t0 t1
	t0=$(cpu_ticks "$TP_PID")
	sleep 2		# the window measured, not a wait for an event
	t1=$(cpu_ticks "$TP_PID")
	echo "tproxy used $((t1 - t0)) clock ticks in 2 s with 201 partial hellos"
	# peeking again every 20 ms took some 25 ticks here (of 200 in 2 s)
	below 10 "clock ticks used in 2 s" $((t1 - t0))
	# the partial hello completed: handshake, and the bytes echoed back
	touch "$T/go"
	wait_for "$T/tls.out" '^echo=ping$' 20
	kill -0 "$TP_PID"
}

# --- s/// on idle connections ---------------------------------------------------

@test "300 idle connections that each sent 64 KiB through s/// hold no buffers" {
	# the ASan build keeps freed memory in quarantine: not here
	ASAN_OPTIONS=${ASAN_OPTIONS:-}:quarantine_size_mb=0 \
		start_tproxy tcp-listen:0 echo 's/zzz/y/' 's/abc/ABC/g'
	local base now
	base=$(rss "$TP_PID")
	bg "$PY" "$LT" idle "$PORT" 300 65536 --hold 30 >"$T/idle.out"
	wait_for "$T/idle.out" '^idle=300$' 60
	now=$(rss "$TP_PID")
	echo "RSS $base -> $now KiB: $(((now - base) / 300)) KiB per idle connection"
	# a window and an output buffer of 64 KiB each were 129 KiB a connection;
	# without s/// it is about 1 KiB
	below 16 "RSS growth per idle connection (KiB)" $(((now - base) / 300))
	[ "$(tcp_echo "$PORT")" = "still here" ]
}
