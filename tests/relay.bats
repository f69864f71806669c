#!/usr/bin/env bats
# relay.bats - the TCP relay through `tproxy tcp-listen:0 tcp:127.0.0.1:PORT`:
# byte-exact bulk transfers, half-close and reset, back-pressure, failed
# upstreams, many connections, SIGPIPE, fd exhaustion and shutdown.
# The peers are tests/tools/relay_tool.py (see its docstring).

bats_require_minimum_version 1.5.0

load helper

MIB=$((1024 * 1024))

# tool ARGS...: a relay_tool.py client (never allowed to hang the suite)
tool() {
	timeout 120 python3 "$TOOLS/relay_tool.py" "$@"
}

# start_server NAME MODE ARGS...: start a relay_tool.py server; its lines go
# to $T/NAME.out; sets SPORT
start_server() {
	local name=$1 i
	shift
	bg python3 "$TOOLS/relay_tool.py" serve "$T/$name.port" "$@" \
		>"$T/$name.out" 2>"$T/$name.err"
	for ((i = 0; i < 200; i++)); do
		if [ -s "$T/$name.port" ]; then
			SPORT=$(cat "$T/$name.port")
			return 0
		fi
		sleep 0.025
	done
	echo "server $name did not start:" >&2
	cat "$T/$name.err" >&2
	return 1
}

# closed_port: a port bound on 127.0.0.1 without listening (connects to it
# are refused, and nobody else can take it during the test); sets CPORT
closed_port() {
	local i
	bg python3 "$TOOLS/relay_tool.py" hold-port "$T/closed.port"
	for ((i = 0; i < 200; i++)); do
		if [ -s "$T/closed.port" ]; then
			CPORT=$(cat "$T/closed.port")
			return 0
		fi
		sleep 0.025
	done
	return 1
}

# field NAME LINE: the value of NAME=VALUE in LINE (first occurrence)
field() {
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1
}

# wait_lines FILE PATTERN N SECONDS: 0 once FILE has N lines matching PATTERN
wait_lines() {
	local i
	for ((i = 0; i < $4 * 10; i++)); do
		[ "$(grep -cE -- "$2" "$1")" -ge "$3" ] && return 0
		sleep 0.1
	done
	echo "$1 has $(grep -cE -- "$2" "$1") lines matching /$2/, expected $3" >&2
	return 1
}

# rss_kb PID
rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# cpu_ticks PID: utime + stime
cpu_ticks() {
	sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# sock_count PID: open sockets of PID (pooled pipes not counted)
sock_count() {
	find "/proc/$1/fd" -mindepth 1 -lname 'socket:*' | wc -l
}

# wait_sock_count PID N SECONDS: 0 once PID has exactly N sockets open
wait_sock_count() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		[ "$(sock_count "$1")" -eq "$2" ] && return 0
		sleep 0.1
	done
	echo "socket count of $1 is $(sock_count "$1"), expected $2" >&2
	return 1
}

# wait_fd_count PID N SECONDS: 0 once PID has exactly N descriptors open
wait_fd_count() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		[ "$(fd_count "$1")" -eq "$2" ] && return 0
		sleep 0.1
	done
	echo "fd count of $1 is $(fd_count "$1"), expected $2:" >&2
	ls -l "/proc/$1/fd" >&2
	return 1
}

# swap_through SIZE FILTER...: SIZE random bytes each way at once through
# tproxy with FILTERs, both sha256 compared
swap_through() {
	local size=$1 c s
	shift
	start_server srv swap "$size"
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT" "$@"
	run -0 tool swap "$PORT" "$size"
	c=$output
	wait_for "$T/srv.out" '^recv=|^error=' 30
	s=$(head -n 1 "$T/srv.out")
	echo "client: $c"
	echo "server: $s"
	# client line: sent=N sha256=A recv=N sha256=B
	# server line: recv=N sha256=A sent=N sha256=B
	[ "$c" = "sent=$size $(echo "$s" | awk '{ print $2 }') recv=$size $(echo "$s" | awk '{ print $4 }')" ]
	[ "$(echo "$s" | awk '{ print $1, $3 }')" = "recv=$size sent=$size" ]
	kill -0 "$TP_PID"
}

@test "64 MiB each way at once arrive byte-exact without filters" {
	swap_through $((64 * MIB))
}

@test "64 MiB each way at once arrive byte-exact through log, which accounts for every byte" {
	swap_through $((64 * MIB)) log
	# every byte of both directions shows up in the log lines
	run -0 awk '$3 == "c2s" { c += $(NF-1) } $3 == "s2c" { s += $(NF-1) }
		END { print c, s }' "$T/tproxy.out"
	[ "$output" = "$((64 * MIB)) $((64 * MIB))" ]
}

@test "64 MiB each way at once arrive byte-exact through hexdump" {
	# about 300 MB of dump: thrown away
	ln -s /dev/null "$T/tproxy.out"
	swap_through $((64 * MIB)) hexdump
}

# half_close FILTER...: the client sends 8 MiB and shuts down writing; the
# server reads slowly to EOF, then replies 1 MiB and closes
half_close() {
	local c s
	start_server srv halfclose "$MIB" 1 300
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT" "$@"
	run -0 tool halfclose "$PORT" $((8 * MIB))
	c=$output
	wait_for "$T/srv.out" '^recv=|^error=' 30
	s=$(head -n 1 "$T/srv.out")
	echo "client: $c"
	echo "server: $s"
	# the server saw EOF only after every byte the client sent ...
	[ "$(field recv "$s")" -eq $((8 * MIB)) ]
	[ "$(echo "$s" | awk '{ print $2 }')" = "$(echo "$c" | awk '{ print $2 }')" ]
	# ... and the client, after its shutdown, still got the whole reply
	[ "$(field recv "$c")" -eq "$MIB" ]
	[ "$(echo "$c" | awk '{ print $4 }')" = "$(echo "$s" | awk '{ print $4 }')" ]
}

@test "a client that shuts down writing still gets the whole reply, and the server sees EOF only after all bytes" {
	half_close
}

@test "half-close works the same through the log filter" {
	half_close log
}

@test "a server that shuts down writing first still gets the client's whole reply" {
	local c s
	start_server srv sendfirst "$MIB"
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT"
	run -0 tool recvfirst "$PORT" $((2 * MIB))
	c=$output
	wait_for "$T/srv.out" '^recv=|^error=' 30
	s=$(head -n 1 "$T/srv.out")
	echo "client: $c"
	echo "server: $s"
	# the client read to EOF (the server's FIN passed on), then replied
	[ "$(field recv "$c")" -eq "$MIB" ]
	[ "$(echo "$c" | awk '{ print $4 }')" = "$(echo "$s" | awk '{ print $4 }')" ]
	[ "$(field recv "$s")" -eq $((2 * MIB)) ]
	[ "$(echo "$s" | awk '{ print $2 }')" = "$(echo "$c" | awk '{ print $2 }')" ]
}

@test "a reset from the server reaches the client as a reset" {
	start_server srv reset
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT"
	run -0 tool expect-reset "$PORT"
	wait_for "$T/srv.out" '^reset-sent'
	[ "$output" = "reset bytes=0" ]
	kill -0 "$TP_PID"
}

@test "a reset from the client reaches the server as a reset" {
	start_server srv expect-reset
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT"
	run -0 tool reset "$PORT"
	wait_for "$T/srv.out" '^(reset|eof|error)' 10
	run -0 cat "$T/srv.out"
	[ "$output" = "reset bytes=6" ]
	kill -0 "$TP_PID"
}

# back_pressure FILTER...: a client that reads nothing while the server sends
# 256 MiB; tproxy's RSS must not grow by 2 MiB; then every byte arrives
back_pressure() {
	local size=$((256 * MIB)) rss0 rss1 p0 p1 i
	start_server srv source "$size" "$T/progress"
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT" "$@"
	rss0=$(rss_kb "$TP_PID")
	bg python3 "$TOOLS/relay_tool.py" stall "$PORT" "$T/go" >"$T/client.out"
	wait_for "$T/client.out" '^connected'
	# wait until the server is blocked: its progress stops moving
	p0=-1
	for ((i = 0; i < 60; i++)); do
		sleep 0.5
		p1=$(cat "$T/progress" 2>/dev/null || echo 0)
		[ "$p1" -gt 0 ] && [ "$p1" = "$p0" ] && break
		p0=$p1
	done
	echo "server blocked after $p1 bytes"
	[ "$p1" -gt 0 ] && [ "$p1" = "$p0" ]
	# the stall reached the server: it could not send everything
	[ "$p1" -lt $((128 * MIB)) ]
	rss1=$(rss_kb "$TP_PID")
	echo "tproxy VmRSS before: $rss0 kB, while stalled: $rss1 kB"
	[ $((rss1 - rss0)) -lt 2048 ]
	# now the client reads everything
	touch "$T/go"
	wait_for "$T/client.out" '^recv=' 90
	run -0 cat "$T/client.out"
	[ "${lines[1]}" = "recv=$size" ]
	wait_for "$T/srv.out" '^sent=|^error=' 10
	[ "$(head -n 1 "$T/srv.out")" = "sent=$size" ]
}

@test "a client that stops reading holds tproxy's memory still while the server sends 256 MiB, and then gets every byte" {
	back_pressure
}

@test "back-pressure holds through the log filter too" {
	back_pressure log
}

@test "a refused upstream closes the client within 3 s with the reason on stderr, and the next client is served" {
	local p1 p2 e
	closed_port
	start_server srv echo
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$CPORT" + tcp-listen:0 "tcp:127.0.0.1:$SPORT"
	p1=$(echo "$PORTS" | sed -n 1p)
	p2=$(echo "$PORTS" | sed -n 2p)
	run -0 tool expect-close "$p1" hello
	echo "$output"
	[[ "$output" =~ ^closed=(reset|eof)\ elapsed=([0-9.]+)\ recv=0$ ]]
	e=${BASH_REMATCH[2]}
	awk -v e="$e" 'BEGIN { exit !(e <= 3) }'
	wait_for "$T/tproxy.err" "$CPORT.*[Cc]onnection refused"
	# the same proxy serves the next client, on the working route
	run -0 tool many "$p2" 1
	[ "$output" = "ok=1 bad=0" ]
	# and refuses again on the first one, without having died
	run -0 tool expect-close "$p1"
	[[ "$output" =~ ^closed=(reset|eof) ]]
	kill -0 "$TP_PID"
}

@test "an unreachable upstream closes the client within 3 s with the reason on stderr, and the next client is served" {
	local p1 p2 e
	start_server srv echo
	# TCP to a broadcast address: ENETUNREACH from connect(2), no network needed
	start_tproxy tcp-listen:0 tcp:255.255.255.255:80 + tcp-listen:0 "tcp:127.0.0.1:$SPORT"
	p1=$(echo "$PORTS" | sed -n 1p)
	p2=$(echo "$PORTS" | sed -n 2p)
	run -0 tool expect-close "$p1" hello
	echo "$output"
	[[ "$output" =~ ^closed=(reset|eof)\ elapsed=([0-9.]+)\ recv=0$ ]]
	e=${BASH_REMATCH[2]}
	awk -v e="$e" 'BEGIN { exit !(e <= 3) }'
	wait_for "$T/tproxy.err" "255\.255\.255\.255.*[Uu]nreachable"
	run -0 tool many "$p2" 1
	[ "$output" = "ok=1 bad=0" ]
	kill -0 "$TP_PID"
}

@test "a route whose upstream refuses still serves clients that a redirect sends elsewhere" {
	closed_port
	start_server srv echo
	# the route's own target refuses; the redirect sends matching clients on
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$CPORT" "redirect:127.0.0.1:$SPORT,match=^redirect-me"
	run -0 tool expect-close "$PORT" hello
	[[ "$output" =~ ^closed=(reset|eof) ]]
	run -0 tool echo "$PORT" "redirect-me please"
	[ "$output" = "ok" ]
	run -0 tool expect-close "$PORT" hello
	[[ "$output" =~ ^closed=(reset|eof) ]]
	kill -0 "$TP_PID"
}

@test "200 parallel connections all get their own payload back" {
	local s0
	start_server srv echo
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT"
	s0=$(sock_count "$TP_PID")
	run -0 tool parallel "$PORT" 200
	[ "$output" = "ok=200 bad=0" ]
	# 200 distinct connections upstream
	wait_lines "$T/srv.out" '^echo bytes=' 200 10
	kill -0 "$TP_PID"
	# pooled splice pipes may stay; connections must not
	wait_sock_count "$TP_PID" "$s0" 5
}

@test "1,000 connections to a refused upstream leave tproxy's fd count where it started" {
	local fd0
	closed_port
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$CPORT"
	fd0=$(fd_count "$TP_PID")
	run -0 tool refused "$PORT" 1000
	[ "$output" = "closed=1000 open=0" ]
	wait_fd_count "$TP_PID" "$fd0" 5
	kill -0 "$TP_PID"
}

@test "the upstream server sees the proxy's address, not the client's" {
	start_server srv peer
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT"
	local cport
	cport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	run -0 timeout 10 socat -u "TCP:127.0.0.1:$PORT,bind=127.0.0.1:$cport" -
	[[ "$output" =~ ^peer\ 127\.0\.0\.1:([0-9]+)$ ]]
	# SERVER mode: the peer is tproxy's own upstream socket
	[ "${BASH_REMATCH[1]}" -ne "$cport" ]
	[ "${BASH_REMATCH[1]}" -ne "$PORT" ]
}

# sigpipe_survives FILTER...: clients that close while tproxy writes to them
sigpipe_survives() {
	start_server srv source $((16 * MIB))
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT" "$@"
	# closed before the reply comes: tproxy's socket is in CLOSE_WAIT when
	# the client's RST arrives, and its next write raises SIGPIPE
	run -0 tool sendclose "$PORT" 40
	[ "$output" = "done=40" ]
	# closed with unread bytes, in the middle of the reply
	run -0 tool abort-read "$PORT" 40
	[ "$output" = "done=40" ]
	sleep 0.5
	kill -0 "$TP_PID"
	# the same process serves the next client in full
	touch "$T/go"
	run -0 tool stall "$PORT" "$T/go"
	[ "${lines[1]}" = "recv=$((16 * MIB))" ]
	kill -0 "$TP_PID"
}

@test "clients that close while tproxy writes to them never kill it (SIGPIPE)" {
	sigpipe_survives
}

@test "clients that close while tproxy writes to them never kill it through the log filter" {
	sigpipe_survives log
}

@test "clients that send and close at once still deliver their bytes, and tproxy survives the echo" {
	local want=0 i
	start_server srv echo
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT"
	run -0 tool sendclose "$PORT" 50
	for ((i = 0; i < 50; i++)); do
		want=$((want + ${#i} + 17))
	done
	wait_lines "$T/srv.out" '^echo bytes=' 50 10
	# every payload arrived whole
	run -0 awk '{ sub("bytes=", "", $2); n += $2 } END { print n }' "$T/srv.out"
	[ "$output" -eq "$want" ]
	kill -0 "$TP_PID"
	run -0 tool many "$PORT" 1
	[ "$output" = "ok=1 bad=0" ]
}

@test "500 short connections one after the other all succeed and leave no descriptor behind" {
	local fd0
	start_server srv echo
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT"
	fd0=$(fd_count "$TP_PID")
	run -0 tool many "$PORT" 500
	[ "$output" = "ok=500 bad=0" ]
	wait_fd_count "$TP_PID" "$fd0" 5
}

# emfile_run LIMIT TARGET: tproxy under a LIMIT-descriptor ulimit (soft and
# hard), to TARGET; 60 clients held open, the first 5 echo-checked; tproxy
# must not spin while saturated, and must serve again once they leave.
# Sets BACKLOG: the clients left waiting in the listen queue while held.
emfile_run() {
	local lim=$1 t0 t1 hz fds
	shift
	cat >"$T/lowfd" <<-EOF
		#!/bin/bash
		ulimit -Sn $lim && ulimit -Hn $lim || exit 99
		exec "$TPROXY" "\$@"
	EOF
	chmod +x "$T/lowfd"
	TPROXY=$T/lowfd start_tproxy tcp-listen:0 "$@"
	run -0 awk '/^Max open files/ { print $4, $5 }' "/proc/$TP_PID/limits"
	[ "$output" = "$lim $lim" ]
	bg python3 "$TOOLS/relay_tool.py" hold "$PORT" 60 5 >"$T/hold.out"
	HOLD_PID=$BG_PID
	wait_for "$T/hold.out" '^held 60' 30
	sleep 0.5
	fds=$(fd_count "$TP_PID")
	BACKLOG=$(ss -Hltn "sport = :$PORT" | awk '{ print $2 }')
	echo "limit $lim: tproxy has $fds descriptors open, $BACKLOG clients wait in the backlog"
	[ "$fds" -ge 30 ]
	hz=$(getconf CLK_TCK)
	t0=$(cpu_ticks "$TP_PID")
	sleep 2
	t1=$(cpu_ticks "$TP_PID")
	echo "limit $lim: tproxy used $((t1 - t0)) ticks of $((2 * hz)) in 2 s"
	[ $((t1 - t0)) -lt "$hz" ]
	kill -0 "$TP_PID"
	# the held clients leave: service resumes
	kill "$HOLD_PID"
	run -0 tool many "$PORT" 1
	[ "$output" = "ok=1 bad=0" ]
	stop_tproxy
}

@test "out of descriptors (EMFILE) with the echo target, tproxy waits without spinning and serves again once clients leave" {
	# one descriptor per client: accept(2) itself runs out
	emfile_run 40 echo
	[ "$BACKLOG" -gt 0 ]
}

@test "out of descriptors (EMFILE) with a TCP upstream, tproxy waits without spinning and serves again once clients leave" {
	local waited=0
	start_server srv echo
	# two descriptors per client: one of the two limits leaves accept(2)
	# itself without a descriptor, whatever tproxy keeps open besides
	emfile_run 40 "tcp:127.0.0.1:$SPORT"
	waited=$((waited + BACKLOG))
	emfile_run 41 "tcp:127.0.0.1:$SPORT"
	waited=$((waited + BACKLOG))
	[ "$waited" -gt 0 ]
}

# signal_exit SIGNAL: stop tproxy with SIGNAL while 5 connections are open
signal_exit() {
	local status=0
	start_server srv echo
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT"
	bg python3 "$TOOLS/relay_tool.py" hold "$PORT" 5 5 >"$T/hold.out"
	wait_for "$T/hold.out" '^held 5'
	kill "-$1" "$TP_PID"
	wait_gone "$TP_PID" 10
	wait "$TP_PID" || status=$?
	[ "$status" -eq 0 ]
	# 5 echoes of "held N\n": 35 bytes each way
	grep -E "^tproxy: exiting on $1: 5 connections, 35 bytes c2s, 35 bytes s2c" "$T/tproxy.err"
	# the open connections were closed
	wait_for "$T/hold.out" '^closed=5' 10
}

@test "SIGTERM with connections open: exit status 0 and the summary line on stderr" {
	signal_exit SIGTERM
}

@test "SIGINT with connections open: exit status 0 and the summary line on stderr" {
	signal_exit SIGINT
}

@test "SIGTERM in the middle of a busy transfer ends tproxy at once" {
	local status=0
	start_server srv swap $((512 * 1024 * 1024))
	# log keeps every turn of the loop busy: ppoll() never has to sleep
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT" log
	bg python3 "$TOOLS/relay_tool.py" swap "$PORT" $((512 * 1024 * 1024)) >"$T/swap.out"
	wait_for "$T/tproxy.out" 'c2s .* bytes$'
	sleep 0.5
	kill -TERM "$TP_PID"
	# under load, a pending signal must not wait for the load to end
	wait_gone "$TP_PID" 3
	wait "$TP_PID" || status=$?
	[ "$status" -eq 0 ]
	grep -E '^tproxy: exiting on SIGTERM' "$T/tproxy.err"
}

# nodelay PID PORT: connects to PORT, and prints, for each connected TCP socket
# of PID, its TCP_NODELAY (taken with pidfd_getfd(2), as root can)
nodelay() {
	python3 - "$1" "$2" <<'PY'
import ctypes, os, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
pid, port = int(sys.argv[1]), int(sys.argv[2])
c = socket.create_connection(('127.0.0.1', port))
c.sendall(b'x')
pidfd = libc.syscall(434, pid, 0)                 # pidfd_open
found = []
for _ in range(100):
    found = []
    for name in os.listdir('/proc/%d/fd' % pid):
        try:
            if not os.readlink('/proc/%d/fd/%s' % (pid, name)).startswith('socket:'):
                continue
        except OSError:
            continue
        fd = libc.syscall(438, pidfd, int(name), 0)   # pidfd_getfd
        if fd < 0:
            sys.exit('pidfd_getfd: ' + os.strerror(ctypes.get_errno()))
        s = socket.socket(fileno=fd)
        try:
            if s.type == socket.SOCK_STREAM and s.family == socket.AF_INET:
                s.getpeername()
                found.append(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        except OSError:
            pass                                    # the listener
        s.close()
    if len(found) == 2:
        break
    time.sleep(0.05)
print(' '.join('nodelay=%d' % v for v in found))
PY
}

@test "both TCP sockets of a relayed connection have TCP_NODELAY: small writes are not held back" {
	[ "$(id -u)" = 0 ] || skip "pidfd_getfd on another process needs root"
	start_server srv swap 1
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT"
	run -0 nodelay "$TP_PID" "$PORT"
	[ "$output" = "nodelay=1 nodelay=1" ]
}
