#!/usr/bin/env bats
# tests/scale.bats - many connections in one process, and several processes
# on one port (reuseport): thousands of connections held open still echo
# while another client's round trips go on, and the kernel spreads clients
# among tproxy processes that share a listener.  Speed is measured by
# `make bench`, never here.

# shellcheck disable=SC2154 # $output, $stderr, $lines: set by bats' run
bats_require_minimum_version 1.5.0

load helper

MT=$TOOLS/many_tool.py
FC=$TOOLS/filt_client.py

# nofile N: raise this shell's descriptor limit (and so tproxy's) to N
nofile() {
	local hard
	hard=$(ulimit -Hn)
	[ "$hard" = unlimited ] || [ "$hard" -ge "$1" ] ||
		{ echo "the hard descriptor limit ($hard) is below $1" >&2; return 1; }
	ulimit -n "$1"
}

@test "3,000 connections held open through tproxy each still echo, and another client's round trips go on meanwhile" {
	nofile 8000
	start_tproxy tcp-listen:0 echo
	bg python3 "$MT" hold 3000 127.0.0.1 "$PORT" "$T/ready" "$T/go"
	local holder=$BG_PID
	wait_for "$T/ready" '^held 3000$' 60
	[ "$(fd_count "$TP_PID")" -ge 3000 ]
	run -0 python3 "$FC" 127.0.0.1 "$PORT" 's:one\n' 'u:one\n' 's:two\n' 'u:two\n' 's:three\n' 'u:three\n' shut eof
	[ "$output" = "$(printf 'one\ntwo\nthree')" ]
	touch "$T/go"
	# not through run: wait needs this shell's child
	wait "$holder"
	kill -0 "$TP_PID"
}

@test "two tproxy processes with reuseport share one port: each accepts a share of 240 clients" {
	start_tproxy -v tcp-listen:0,reuseport echo
	local port=$PORT first=$TP_PID
	mv "$T/tproxy.err" "$T/first.err"
	start_tproxy -v tcp-listen:"$port",reuseport echo
	run -0 python3 "$MT" conns 240 127.0.0.1 "$port"
	[ "$output" = ok=240 ]
	local a b
	a=$(grep -c ' accept ' "$T/first.err")
	b=$(grep -c ' accept ' "$T/tproxy.err")
	[ $((a + b)) -eq 240 ]
	# the kernel hashes the clients' ports: far from all to one side
	[ "$a" -ge 24 ] && [ "$b" -ge 24 ]
	kill -0 "$first"
}

@test "without reuseport a second process on a port in use fails to bind with exit status 1" {
	start_tproxy tcp-listen:0 echo
	run -1 "$TPROXY" tcp-listen:"$PORT" echo
	contains 'Address already in use' "$output"
	# one with reuseport cannot join one without it either
	run -1 "$TPROXY" tcp-listen:"$PORT",reuseport echo
}

@test "reuseport takes 0 or 1 on network listeners, and is a usage error elsewhere" {
	run -2 "$TPROXY" tcp-listen:0,reuseport=2 echo
	contains "bad value for option 'reuseport'" "$output"
	run -2 "$TPROXY" unix-listen:"$T/s.sock",reuseport echo
	contains "unknown option 'reuseport'" "$output"
	run -2 "$TPROXY" tcp-listen:0 tcp:127.0.0.1:80,reuseport
	contains "unknown option 'reuseport'" "$output"
}

@test "two udp-listen processes with reuseport share one port" {
	start_tproxy udp-listen:0,reuseport udp:127.0.0.1:9
	local port=$PORT
	mv "$T/tproxy.err" "$T/first.err"
	start_tproxy udp-listen:"$port",reuseport udp:127.0.0.1:9
}
