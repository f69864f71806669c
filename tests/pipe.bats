#!/usr/bin/env bats
# pipe.bats - the pipeline endpoints: `stdio` (or `-`) as the listen side
# (standard input and output are one connection) and `exec:COMMAND` as the
# target (one /bin/sh -c COMMAND per connection, its stdin and stdout the
# upstream).  Peers: a real redis-server, tests/tools/relay_tool.py, nc.

bats_require_minimum_version 1.5.0

load helper

# tool ARGS...: a relay_tool.py client (never allowed to hang the suite)
tool() {
	timeout 60 python3 "$TOOLS/relay_tool.py" "$@"
}

# tp ARGS...: tproxy in the foreground, never allowed to hang the suite
tp() {
	timeout 60 "$TPROXY" "$@"
}

# start_echo: a relay_tool.py echo server; sets SPORT
start_echo() {
	local i
	bg python3 "$TOOLS/relay_tool.py" serve "$T/echo.port" echo \
		>"$T/echo.out" 2>"$T/echo.err"
	for ((i = 0; i < 200; i++)); do
		if [ -s "$T/echo.port" ]; then
			SPORT=$(cat "$T/echo.port")
			return 0
		fi
		sleep 0.025
	done
	return 1
}

# start_redis: a redis-server on a free loopback port, no persistence;
# sets RPORT
start_redis() {
	local i
	RPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	bg redis-server --port "$RPORT" --bind 127.0.0.1 --save '' \
		--appendonly no --dir "$T" >"$T/redis.out" 2>&1
	for ((i = 0; i < 200; i++)); do
		grep -q 'Ready to accept connections' "$T/redis.out" && return 0
		sleep 0.025
	done
	cat "$T/redis.out" >&2
	return 1
}

# group_alive PGID: some process is still in that process group
group_alive() {
	pgrep -g "$1" >/dev/null
}

# zombies PID: the zombie children of PID, one line each
zombies() {
	ps --ppid "$1" -o stat= | grep '^Z' || true
}

@test "stdio: a PING on standard input gets redis's +PONG on standard output, the hexdump goes to standard error" {
	command -v redis-server >/dev/null || skip "no redis-server"
	start_redis
	printf 'PING\r\n' | tp - "tcp:127.0.0.1:$RPORT" hexdump \
		>"$T/out" 2>"$T/err"
	[ "$(cat "$T/out")" = "$(printf '+PONG\r')" ]
	err=$(cat "$T/err")
	contains "50 49 4e 47 0d 0a" "$err"
	contains "2b 50 4f 4e 47 0d 0a" "$err"
	lacks "50 49 4e 47" "$(cat "$T/out")"
}

@test "stdio: - exits 0 once both directions are done, with --json events on standard error" {
	command -v redis-server >/dev/null || skip "no redis-server"
	start_redis
	run --separate-stderr -0 bash -c "printf 'PING\r\nPING\r\n' | timeout 60 '$TPROXY' --json - tcp:127.0.0.1:$RPORT log"
	[ "$output" = "$(printf '+PONG\r\n+PONG\r')" ]
	# shellcheck disable=SC2154 # set by run --separate-stderr
	matches '"event":"close"' "$stderr"
	matches '"event":"data"' "$stderr"
}

@test "stdio: tproxy - exec:'tr a-z A-Z' turns a pipeline's bytes to upper case" {
	run -0 bash -c "printf 'hello, pipe\nline two\n' | timeout 60 '$TPROXY' -q - exec:'tr a-z A-Z'"
	[ "$output" = "$(printf 'HELLO, PIPE\nLINE TWO')" ]
}

@test "stdio: 10 MiB of random bytes pass byte-exact through exec:cat, from a pipe, from a file, through a filter" {
	head -c $((10 * 1024 * 1024)) /dev/urandom >"$T/in"
	want=$(sha256sum <"$T/in")
	got=$(cat "$T/in" | tp -q - exec:cat | sha256sum)
	[ "$got" = "$want" ]
	# a regular file cannot be polled: it is always ready
	got=$(tp -q - exec:cat <"$T/in" | sha256sum)
	[ "$got" = "$want" ]
	# with a filter in the way too (cat writes while we write to it)
	got=$(tp -q - exec:cat 'drop:^no such chunk$' <"$T/in" | sha256sum)
	[ "$got" = "$want" ]
}

@test "stdio: 10 MiB of random bytes pass byte-exact through a TCP echo server" {
	start_echo
	head -c $((10 * 1024 * 1024)) /dev/urandom >"$T/in"
	tp -q - "tcp:127.0.0.1:$SPORT" <"$T/in" >"$T/out"
	cmp "$T/in" "$T/out"
	got=$(cat "$T/in" | tp -q - "tcp:127.0.0.1:$SPORT" | sha256sum)
	[ "$got" = "$(sha256sum <"$T/in")" ]
}

@test "stdio: an upstream that cannot be reached ends the pipeline with a reason" {
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	# standard input stays open: the failed connection alone ends it
	run --separate-stderr timeout 20 "$TPROXY" - "tcp:127.0.0.1:$port" < <(sleep 30)
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	matches 'refused' "$stderr"
}

@test "stdio: usage errors exit 2 with a message that names the argument" {
	run -2 "$TPROXY" - -
	contains "stdio is a listen address" "$output"
	run -2 "$TPROXY" tcp-listen:0 stdio
	contains "stdio" "$output"
	run -2 "$TPROXY" - exec:cat + stdio exec:cat
	contains "one route only" "$output"
	run -2 "$TPROXY" - exec:cat pcap:-
	contains "standard output carries the data" "$output"
	run -2 "$TPROXY" - exec:cat + tcp-listen:0 tcp:127.0.0.1:9 pcap:-
	contains "pcap:-" "$output"
	run -2 "$TPROXY" stdio,reuseaddr exec:cat
	contains "no parameters or options" "$output"
	run -2 "$TPROXY" - udp:127.0.0.1:53
	contains "stream listener" "$output"
}

@test "exec: empty or misplaced commands are usage errors (exit 2)" {
	run -2 "$TPROXY" tcp-listen:0 exec:
	contains "expected exec:COMMAND" "$output"
	run -2 "$TPROXY" tcp-listen:0 'exec:  '
	contains "expected exec:COMMAND" "$output"
	run -2 "$TPROXY" tcp-listen:0 exec
	contains "expected exec:COMMAND" "$output"
	run -2 "$TPROXY" exec:cat tcp:127.0.0.1:9
	contains "exec is a target address" "$output"
	run -2 "$TPROXY" udp-listen:0 exec:cat
	contains "UDP listener" "$output"
}

@test "exec: cat -n numbers each client's lines, with commas and colons kept in the command" {
	start_tproxy tcp-listen:0 "exec:cat -n | sed 's,^ *,n:,'"
	run -0 timeout 20 nc -N 127.0.0.1 "$PORT" < <(printf 'a\nb\n')
	[ "$output" = "$(printf 'n:1\ta\nn:2\tb')" ]
	run -0 timeout 20 nc -N 127.0.0.1 "$PORT" < <(printf 'c\n')
	[ "$output" = "$(printf 'n:1\tc')" ]
}

@test "exec: the connect event names the command, in -v lines and in --json" {
	start_tproxy -v --json tcp-listen:0 'exec:cat -n'
	run -0 timeout 20 nc -N 127.0.0.1 "$PORT" < <(printf 'a\n')
	[ "$output" = "$(printf '     1\ta')" ]
	wait_for "$T/tproxy.err" '^tproxy: #1 connect exec:cat -n$'
	wait_for "$T/tproxy.out" '"event":"connect"'
	run -0 jq -c 'select(.event == "connect") | [.conn, .dst, .command]' "$T/tproxy.out"
	[ "$output" = '[1,"exec","cat -n"]' ]
}

@test "exec: the command's exit closes the connection" {
	start_tproxy -v tcp-listen:0 "exec:echo hi"
	run -0 tool expect-close "$PORT"
	matches '^closed=eof .* recv=3$' "$output"
	wait_for "$T/tproxy.err" 'close \(command ended\)'
}

@test "exec: 100 connections through cat, then no zombie and no command left" {
	start_tproxy tcp-listen:0 exec:cat
	run -0 tool many "$PORT" 100
	[ "$output" = "ok=100 bad=0" ]
	for ((i = 0; i < 100; i++)); do
		[ -z "$(ps --ppid "$TP_PID" -o pid=)" ] && break
		sleep 0.05
	done
	[ -z "$(zombies "$TP_PID")" ]
	[ -z "$(ps --ppid "$TP_PID" -o pid=)" ]
	kill -0 "$TP_PID"
}

@test "exec: a command that cannot be run is logged and closes that client only" {
	start_tproxy tcp-listen:0 exec:no-such-command-here + tcp-listen:0 exec:cat
	port2=$(echo "$PORTS" | sed -n 2p)
	run -0 tool expect-close "$PORT" "hello"
	matches '^closed=(eof|reset) ' "$output"
	wait_for "$T/tproxy.err" 'command exited with status 127'
	run -0 tool echo "$port2" "still here"
	[ "$output" = ok ]
	kill -0 "$TP_PID"
	[ -z "$(zombies "$TP_PID")" ]
}

@test "exec: a client's reset kills the command's whole process group" {
	start_tproxy tcp-listen:0 "exec:sleep 300; echo never"
	bg tool reset "$PORT"
	for ((i = 0; i < 100; i++)); do
		pg=$(ps --ppid "$TP_PID" -o pid= | tr -d ' ')
		[ -n "$pg" ] && break
		sleep 0.05
	done
	[ -n "$pg" ]
	group_alive "$pg"
	for ((i = 0; i < 200; i++)); do
		group_alive "$pg" || break
		sleep 0.05
	done
	run ! group_alive "$pg"
	[ -z "$(zombies "$TP_PID")" ]
}

@test "exec: SIGTERM while a command runs kills its process group, exit 0" {
	start_tproxy tcp-listen:0 "exec:sleep 300; echo never"
	bg tool stall "$PORT" "$T/go"
	for ((i = 0; i < 100; i++)); do
		pg=$(ps --ppid "$TP_PID" -o pid= | tr -d ' ')
		[ -n "$pg" ] && pgrep -g "$pg" sleep >/dev/null && break
		sleep 0.05
	done
	[ -n "$pg" ]
	group_alive "$pg"
	stop_tproxy
	touch "$T/go"		# the client reads its EOF and goes
	[ "$TP_STATUS" -eq 0 ]
	for ((i = 0; i < 100; i++)); do
		group_alive "$pg" || break
		sleep 0.05
	done
	run ! group_alive "$pg"
}

@test "stdio with inspect on a terminal is a usage error without --control: the keys would be read as data" {
	command -v script  # bsdutils, essential in Debian
	run -2 script -qec "$TPROXY - echo inspect" /dev/null
	contains "needs --control=PATH" "$output"
}
