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

# with_nofile N: point TPROXY at a wrapper that runs it with an open-file
# limit of N (soft and hard; the pid stays tproxy's own)
with_nofile() {
	printf '#!/bin/sh\nulimit -n %d || exit 1\nexec "%s" "$@"\n' "$1" "$TPROXY" >"$T/tproxy-nofile"
	chmod +x "$T/tproxy-nofile"
	TPROXY=$T/tproxy-nofile
}

# suppressed_total FILE: the counts of the "suppressed N more" lines in FILE
suppressed_total() {
	sed -n 's/^tproxy: suppressed \([0-9]*\) more like this.*/\1/p' "$1" |
		awk '{ n += $1 } END { print n + 0 }'
}

# --- UDP sessions against the descriptor table -------------------------------------

@test "400 UDP source ports under a 256-file limit leave a TCP route in the same process working" {
	udp_echo up
	with_nofile 256
	start_tproxy --json udp-listen:0 udp:127.0.0.1:"$SPORT" + tcp-listen:0 echo
	read -r up tp <<<"$(echo $PORTS)"
	# by default one address gets half of a quarter of 256 descriptors
	run -0 "$PY" "$LT" udp 127.0.0.1 "$up" 400 --hold 10 --expect 32
	[ "${lines[0]}" = sent=400 ]
	[ "${lines[1]}" = replies=32 ]
	# the drops are told once, then counted a second later
	wait_for "$T/tproxy.err" '^tproxy: suppressed [0-9]+ more like this in 1 s; the last: route 1: datagram from 127\.0\.0\.1:[0-9]+ dropped: --max-per-source' 10
	below 4 "lines about dropped datagrams" "$(grep -c 'datagram from .* dropped' "$T/tproxy.err")"
	[ "$(jq -c 'select(.event == "accept")' "$T/tproxy.out" | wc -l)" -eq 32 ]
	below 64 "descriptors of tproxy" "$(fd_count "$TP_PID")"
	[ "$(tcp_echo "$tp")" = "still here" ]
}

@test "--max-sessions caps the sessions of all clients, and the default leaves a quarter of the descriptors" {
	udp_echo up
	with_nofile 256
	start_tproxy --json --max-per-source=0 udp-listen:0 udp:127.0.0.1:"$SPORT" + tcp-listen:0 echo
	read -r up tp <<<"$(echo $PORTS)"
	local base
	base=$(fd_count "$TP_PID")
	run -0 "$PY" "$LT" udp 127.0.0.1 "$up" 300 --hold 10 --expect 64
	[ "${lines[1]}" = replies=64 ]
	wait_for "$T/tproxy.err" '^tproxy: suppressed [0-9]+ more .*dropped: --max-sessions UDP sessions exist' 10
	[ "$(jq -c 'select(.event == "accept")' "$T/tproxy.out" | wc -l)" -eq 64 ]
	[ "$(fd_count "$TP_PID")" -eq $((base + 64)) ]
	[ "$(tcp_echo "$tp")" = "still here" ]
}

@test "--max-per-source counts the sessions of each client address apart" {
	udp_echo up
	start_tproxy --json --max-per-source=10 --max-sessions=15 udp-listen:0 udp:127.0.0.1:"$SPORT"
	run -0 "$PY" "$LT" udp 127.0.0.1 "$PORT" 30 --src 127.0.0.2 --hold 10 --expect 10
	[ "${lines[1]}" = replies=10 ]
	wait_for "$T/tproxy.err" 'datagram from 127\.0\.0\.2:[0-9]+ dropped: --max-per-source'
	# another address still gets sessions, up to --max-sessions in all
	run -0 "$PY" "$LT" udp 127.0.0.1 "$PORT" 8 --src 127.0.0.3 --hold 10 --expect 5
	[ "${lines[1]}" = replies=5 ]
	wait_for "$T/tproxy.err" 'datagram from 127\.0\.0\.3:[0-9]+ dropped: --max-sessions'
	[ "$(jq -c 'select(.event == "accept")' "$T/tproxy.out" | wc -l)" -eq 15 ]
}

@test "200 sessions whose upstream refuses make one error line a second and a count, and every JSON error event" {
	local dead printed
	dead=$("$PY" -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
	start_tproxy --json udp-listen:0 udp:127.0.0.1:"$dead"
	run -0 "$PY" "$LT" udp 127.0.0.1 "$PORT" 200 --hold 1
	for ((i = 0; i < 200; i++)); do
		[ "$(jq -c 'select(.event == "error")' "$T/tproxy.out" | wc -l)" -ge 200 ] && break
		sleep 0.05
	done
	[ "$(jq -c 'select(.event == "error")' "$T/tproxy.out" | wc -l)" -eq 200 ]
	wait_for "$T/tproxy.err" '^tproxy: suppressed [0-9]+ more like this in 1 s; the last: #[0-9]+ upstream 127\.0\.0\.1:[0-9]+ refused' 10
	stop_tproxy
	printed=$(grep -c '^tproxy: #[0-9]* upstream .* refused' "$T/tproxy.err")
	below 6 "error lines printed" "$printed"
	# what was not printed was counted
	[ $((printed + $(suppressed_total "$T/tproxy.err"))) -eq 200 ]
}

@test "--max-sessions and --max-per-source take 0..1000000 and reject anything else" {
	udp_echo up
	start_tproxy --max-sessions=0 --max-per-source=1000000 udp-listen:0 udp:127.0.0.1:"$SPORT"
	stop_tproxy
	[ "$TP_STATUS" -eq 0 ]
	local o v
	for o in max-sessions max-per-source; do
		for v in x -1 1000001 '' 1k; do
			run -2 --separate-stderr "$TPROXY" "--$o=$v" udp-listen:0 echo
			contains "--$o" "$stderr"
			lacks 'listening on' "$stderr"
		done
		run -2 --separate-stderr "$TPROXY" "--$o"
		contains "--$o" "$stderr"
	done
	run -0 "$TPROXY" --help
	contains '--max-sessions=N' "$output"
	contains '--max-per-source=N' "$output"
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
