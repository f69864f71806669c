#!/usr/bin/env bats
# tests/faults.bats - the fault injection filters as a user meets them
# (../shared/spec/cli.md, "Filters" and "Fault filters, in detail"): delay,
# throttle, slice, limit, reset, stall and loss against echoing and
# recording servers; the keys that aim a fault at one direction or one
# client; bounded memory while bytes are held; other connections going on
# meanwhile; and the usage errors.
#
# Timing assertions check that a fault happened, never that tproxy is fast:
# lower bounds are the fault's own, upper bounds generous (the suite also
# runs under AddressSanitizer on a busy machine).  Peers are
# tests/tools/fault_tool.py (times in ms of CLOCK_MONOTONIC, comparable
# between processes) and tests/tools/udp_tool.py.

# shellcheck disable=SC2154 # $output, $stderr, $lines: set by bats' run
bats_require_minimum_version 1.5.0

load helper

FT=$TOOLS/fault_tool.py
UDP=$TOOLS/udp_tool.py

# PY: the python3 interpreter itself, found once; a version manager's shim
# in front of it can take a second to start, which the timed tests and the
# length of the suite would pay on every run
setup_file() {
	PY=$(python3 -c 'import sys; print(sys.executable)')
	export PY
	local n
	for n in 100 1024 1048576; do
		export "SUM_$n=$("$PY" "$FT" pattern "$n")"
	done
}

# server NAME ARG...: fault_tool.py server in the background, logging to
# $T/NAME.log; sets SPORT once it listens
server() {
	local name=$1
	shift
	bg "$PY" "$FT" server "$T/$name.port" "$T/$name.log" "$@"
	wait_for "$T/$name.port" '^[0-9]+$' 10
	SPORT=$(cat "$T/$name.port")
}

# conn ARG...: one fault_tool.py connection to 127.0.0.1:$PORT (ARGs are
# its options); its report line in $output
conn() {
	run -0 --separate-stderr "$PY" "$FT" conn 127.0.0.1 "$PORT" "$@"
}

# val KEY [TEXT]: the value of KEY=VALUE in TEXT (default $output)
val() {
	local re="(^| )$1=([^ ]*)"
	[[ ${2:-$output} =~ $re ]] && echo "${BASH_REMATCH[2]}"
}

# ms KEY [TEXT]: val, as a whole number of milliseconds
ms() {
	local v
	v=$(val "$@")
	echo "${v%.*}"
}

# pattern_sum N: the sha256 of the first N pattern bytes of fault_tool.py
# (those of the sizes used here are computed once, in setup_file)
pattern_sum() {
	local v=SUM_$1
	if [ -n "${!v:-}" ]; then
		echo "${!v}"
	else
		"$PY" "$FT" pattern "$1"
	fi
}

# at_least N WHAT VALUE / below N WHAT VALUE: numeric checks that say what
# failed.  The lower bounds of held bytes are the fault's own time less 2 ms,
# for a loop that keeps its timers in whole milliseconds
at_least() {
	[ "$3" -ge "$1" ] && return 0
	echo "$2: $3, expected at least $1" >&2
	return 1
}
below() {
	[ "$3" -lt "$1" ] && return 0
	echo "$2: $3, expected below $1" >&2
	return 1
}

# recv_time NAME K: the time (ms, whole) server NAME received connection K's
# first chunk
recv_time() {
	awk -v k="$2" '$1 == k && $2 == "recv" { split($3, a, "."); print a[1]; exit }' "$T/$1.log"
}

# rss PID: resident set size of PID in KiB
rss() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# peak_rss PID WATCH: the largest RSS of PID (KiB) while process WATCH lives
peak_rss() {
	local max=0 r
	while kill -0 "$2" 2>/dev/null; do
		r=$(rss "$1")
		[ "$r" -le "$max" ] || max=$r
		sleep 0.2
	done
	echo "$max"
}

# usage_error NAME ARG...: tproxy ARG... exits 2 without listening, and its
# message names NAME and is about the argument (not a filter it lacks)
usage_error() {
	local name=$1
	shift
	run -2 --separate-stderr timeout 10 "$TPROXY" "$@"
	contains "$name" "$stderr"
	lacks 'listening on' "$stderr"
	lacks 'unknown filter' "$stderr"
	lacks 'not supported' "$stderr"
	[ "$output" = "" ]
}

# free_port: prints a TCP port nothing listens on
free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- delay --------------------------------------------------------------------

@test "delay:300 adds at least 300 ms to a round trip through the echo target" {
	start_tproxy tcp-listen:0 echo delay:300
	conn --send 'ping\n' --expect 5
	[ "$(val recv)" -eq 5 ]
	at_least 298 "round trip (ms)" "$(ms elapsed)"
	below 3000 "round trip (ms)" "$(ms elapsed)"
}

@test "delay holds every chunk and keeps the order of the stream" {
	start_tproxy tcp-listen:0 echo delay:300
	run -0 --separate-stderr "$PY" "$FT" lines 127.0.0.1 "$PORT" 10 --gap 30
	[ "$output" = "$(seq -f 'line-%03g' 1 10)" ]
	at_least 298 "first line back after (ms)" "$(ms first "$stderr")"
	# the last line was sent 270 ms after the first one, and held too
	at_least 568 "last line back after (ms)" "$(ms last "$stderr")"
}

@test "delay with jitter= still keeps the order of a TCP stream" {
	start_tproxy tcp-listen:0 echo delay:200,jitter=150
	run -0 --separate-stderr "$PY" "$FT" lines 127.0.0.1 "$PORT" 40 --gap 5
	[ "$output" = "$(seq -f 'line-%03g' 1 40)" ]
	at_least 48 "first line back after (ms)" "$(ms first "$stderr")"
}

@test "delay without dir= holds the bytes both ways" {
	server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" delay:300
	conn --send 'ping\n' --expect 5
	[ "$(val recv)" -eq 5 ]
	local start got c2s
	start=$(ms start)
	got=$((start + $(ms elapsed)))
	c2s=$(($(recv_time up 1) - start))
	at_least 298 "client to server (ms)" "$c2s"
	at_least 298 "server to client (ms)" $((got - $(recv_time up 1)))
	below 3000 "round trip (ms)" $((got - start))
}

@test "delay:1200,dir=c2s holds the requests only" {
	server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" delay:1200,dir=c2s
	conn --send 'ping\n' --expect 5
	[ "$(val recv)" -eq 5 ]
	local start seen
	start=$(ms start)
	seen=$(recv_time up 1)
	at_least 1198 "client to server (ms)" $((seen - start))
	below 900 "server to client (ms)" $((start + $(ms elapsed) - seen))
}

@test "delay:1200,dir=s2c holds the replies only" {
	server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" delay:1200,dir=s2c
	conn --send 'ping\n' --expect 5
	[ "$(val recv)" -eq 5 ]
	local start seen
	start=$(ms start)
	seen=$(recv_time up 1)
	below 900 "client to server (ms)" $((seen - start))
	at_least 1198 "server to client (ms)" $((start + $(ms elapsed) - seen))
}

@test "delay:300 on a udp-listen route holds each datagram at least 300 ms" {
	start_tproxy udp-listen:0 echo delay:300
	run -0 --separate-stderr "$PY" "$FT" udp-rtt 127.0.0.1 "$PORT" 3
	[ "${#lines[@]}" -eq 3 ]
	local l r
	for l in "${lines[@]}"; do
		r=$(ms rtt "$l")
		at_least 298 "datagram round trip (ms)" "$r"
		below 3000 "datagram round trip (ms)" "$r"
	done
	[ "$(cut -d ' ' -f 1 <<<"$output" | paste -sd ' ')" = 'dgram-001 dgram-002 dgram-003' ]
}

@test "delay with jitter= on UDP delivers every datagram, none earlier than delay minus jitter" {
	start_tproxy udp-listen:0 echo delay:200,jitter=100
	run -0 --separate-stderr "$PY" "$FT" udp-rtt 127.0.0.1 "$PORT" 20 --gap 10
	[ "${#lines[@]}" -eq 20 ]
	# every datagram came back once (in whatever order)
	[ "$(cut -d ' ' -f 1 <<<"$output" | sort)" = "$(seq -f 'dgram-%03g' 1 20)" ]
	local l
	for l in "${lines[@]}"; do
		at_least 98 "datagram round trip (ms)" "$(ms rtt "$l")"
	done
}

# --- throttle -------------------------------------------------------------------

@test "throttle:256k passes 1 MiB in about 4 s, every byte intact" {
	start_tproxy tcp-listen:0 echo throttle:256k
	conn --send-n 1048576 --shut --until-close --timeout 30
	[ "$(val closed)" = eof ]
	[ "$(val recv)" -eq 1048576 ]
	[ "$(val sha256)" = "$(pattern_sum 1048576)" ]
	at_least 3000 "1 MiB took (ms)" "$(ms elapsed)"
	below 12000 "1 MiB took (ms)" "$(ms elapsed)"
}

@test "1 MiB through delay, slice and throttle together arrives intact and in order" {
	server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" delay:20,jitter=10 slice:1000 throttle:2m
	conn --send-n 1048576 --shut --until-close --timeout 30
	[ "$(val closed)" = eof ]
	[ "$(val recv)" -eq 1048576 ]
	[ "$(val sha256)" = "$(pattern_sum 1048576)" ]
	wait_for "$T/up.log" '^1 end '
	grep -qE "^1 end eof .* bytes=1048576 sha256=$(pattern_sum 1048576)$" "$T/up.log"
	# 1 MiB at 2 MiB/s
	at_least 400 "1 MiB took (ms)" "$(ms elapsed)"
}

# --- slice ----------------------------------------------------------------------

@test "slice:10 hands the next filter pieces of at most 10 bytes, and the bytes arrive unchanged" {
	start_tproxy tcp-listen:0 echo slice:10 log
	conn --send-n 100 --expect 100
	[ "$(val recv)" -eq 100 ]
	[ "$(val sha256)" = "$(pattern_sum 100)" ]
	wait_for "$T/tproxy.out" ' bytes$'
	# the log lines of all 100 bytes: at least ten, none over 10 bytes
	local i n
	for ((i = 0; i < 40; i++)); do
		n=$(awk '/ c2s .* bytes$/ { s += $(NF - 1) } END { print s + 0 }' "$T/tproxy.out")
		[ "$n" -ge 100 ] && break
		sleep 0.05
	done
	[ "$n" -eq 100 ]
	run -0 grep ' c2s ' "$T/tproxy.out"
	at_least 10 "log lines" "${#lines[@]}"
	[ "$(awk '$(NF - 1) > 10' <<<"$output" | wc -l)" -eq 0 ]
}

@test "slice:10,delay=50 passes the pieces on 50 ms apart" {
	start_tproxy tcp-listen:0 echo slice:10,delay=50 log
	conn --send-n 100 --expect 100
	[ "$(val recv)" -eq 100 ]
	[ "$(val sha256)" = "$(pattern_sum 100)" ]
	# ten pieces: at least nine gaps of 50 ms
	at_least 450 "100 bytes took (ms)" "$(ms elapsed)"
	below 5000 "100 bytes took (ms)" "$(ms elapsed)"
}

# --- limit ----------------------------------------------------------------------

@test "limit:100,dir=c2s lets exactly 100 bytes reach the server, which then sees EOF, not a reset" {
	server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" limit:100,dir=c2s
	conn --send-n 300 --until-close --timeout 5
	# the server echoed what it got: the first 100 bytes
	[ "$(val recv)" -eq 100 ]
	[ "$(val sha256)" = "$(pattern_sum 100)" ]
	wait_for "$T/up.log" '^1 end '
	run -0 grep '^1 end ' "$T/up.log"
	[[ $output == "1 end eof "*" bytes=100 sha256=$(pattern_sum 100)" ]]
}

@test "limit:1k,dir=s2c lets exactly 1024 of the server's bytes reach the client, then EOF" {
	server up --send 4096
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" limit:1k,dir=s2c
	conn --until-close --timeout 5
	[ "$(val closed)" = eof ]
	[ "$(val recv)" -eq 1024 ]
	[ "$(val sha256)" = "$(pattern_sum 1024)" ]
}

@test "limit:100 counts the bytes of each direction, over several chunks" {
	server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" limit:100
	# 60 bytes pass both ways; of the next 60 only 40 reach the server
	run -0 --separate-stderr "$PY" - "$PORT" <<-'EOF'
		import socket, sys, time
		s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
		s.sendall(b'a' * 60)
		got = b''
		while len(got) < 60:
		    got += s.recv(100)
		s.sendall(b'b' * 60)
		try:
		    while True:
		        d = s.recv(100)
		        if not d:
		            break
		        got += d
		except OSError as e:
		    print('error', e)
		print(got.decode())
	EOF
	[ "$output" = "$(printf 'a%.0s' {1..60})$(printf 'b%.0s' {1..40})" ]
	wait_for "$T/up.log" '^1 end '
	grep -qE '^1 end eof .* bytes=100 ' "$T/up.log"
}

# --- reset ----------------------------------------------------------------------

@test "reset resets the client's connection at once, and nothing reaches the server" {
	server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" reset
	# a client that only reads: recv() fails with ECONNRESET
	conn --until-close --timeout 5
	[ "$(val closed)" = reset ]
	[ "$(val recv)" -eq 0 ]
	below 2000 "reset after (ms)" "$(ms elapsed)"
	# a client that sends at once: the same
	conn --send 'hello\n' --until-close --timeout 5
	[ "$(val closed)" = reset ]
	[ "$(val recv)" -eq 0 ]
	below 2000 "reset after (ms)" "$(ms elapsed)"
	sleep 0.3
	run -1 grep -E ' recv | end eof ' "$T/up.log"
	kill -0 "$TP_PID"
}

@test "reset:300 lets bytes pass, then resets both sides about 300 ms after the connection began" {
	server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" reset:300
	conn --send 'hello\n' --until-close --timeout 5
	[ "$(val closed)" = reset ]
	[ "$(val recv)" -eq 6 ]
	at_least 250 "reset after (ms)" "$(ms elapsed)"
	below 3000 "reset after (ms)" "$(ms elapsed)"
	# the server's side was reset too
	wait_for "$T/up.log" '^1 end '
	grep -qE '^1 end reset .* bytes=6 ' "$T/up.log"
}

# --- stall ----------------------------------------------------------------------

@test "stall:500 passes nothing and closes the connection about 500 ms after it began" {
	server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" stall:500
	conn --send 'hello\n' --until-close --timeout 5
	[[ $(val closed) =~ ^(eof|reset)$ ]]
	[ "$(val recv)" -eq 0 ]
	at_least 450 "closed after (ms)" "$(ms elapsed)"
	below 5000 "closed after (ms)" "$(ms elapsed)"
	run -1 grep ' recv ' "$T/up.log"
}

@test "stall without a time passes nothing and keeps the connection open" {
	server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" stall
	conn --send 'hello\n' --until-close --timeout 1
	[ "$(val closed)" = timeout ]
	[ "$(val recv)" -eq 0 ]
	run -1 grep -E ' recv | end ' "$T/up.log"
}

@test "stall,dir=s2c lets the requests through but no reply" {
	server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" stall,dir=s2c
	conn --send 'hello\n' --until-close --timeout 1
	[ "$(val closed)" = timeout ]
	[ "$(val recv)" -eq 0 ]
	grep -qE '^1 recv [0-9.]+ 6$' "$T/up.log"
}

@test "connections ended by reset, stall and limit leave no descriptor behind" {
	server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" reset \
		+ tcp-listen:0 tcp:127.0.0.1:"$SPORT" stall:200 \
		+ tcp-listen:0 tcp:127.0.0.1:"$SPORT" limit:10 \
		+ tcp-listen:0 tcp:127.0.0.1:"$SPORT" reset:200
	local base p i
	base=$(fd_count "$TP_PID")
	for p in $PORTS; do
		PORT=$p
		conn --send 'hello world 123\n' --until-close --timeout 5
		[[ $(val closed) =~ ^(eof|reset)$ ]]
	done
	# the upstream ends of the last ones may take a moment
	for ((i = 0; i < 40; i++)); do
		[ "$(fd_count "$TP_PID")" -eq "$base" ] && break
		sleep 0.05
	done
	[ "$(fd_count "$TP_PID")" -eq "$base" ]
}

# --- loss -----------------------------------------------------------------------

@test "loss:50,seed=1 drops about half of 200 datagrams, and the same seed drops the same ones" {
	bg "$PY" "$UDP" server --echo --log "$T/up.log" "$T/up.port"
	wait_for "$T/up.port" '^[0-9]+$' 10
	start_tproxy udp-listen:0 udp:127.0.0.1:"$(cat "$T/up.port")" loss:50,seed=1,dir=c2s
	local msgs
	mapfile -t msgs < <(seq -f 'n%03g' 1 200)
	# one datagram every 3 ms: no socket buffer ever overflows
	run -0 --separate-stderr "$PY" "$UDP" client --gap 3 --timeout 0.5 127.0.0.1 "$PORT" "${msgs[@]}"
	local first=$output n
	n=$(wc -l <<<"$first")
	at_least 60 "datagrams through" "$n"
	below 141 "datagrams through" "$n"
	# a second session, the same seed: exactly the same datagrams
	run -0 --separate-stderr "$PY" "$UDP" client --gap 3 --timeout 0.5 127.0.0.1 "$PORT" "${msgs[@]}"
	[ "$(sort <<<"$output")" = "$(sort <<<"$first")" ]
	# the dropped ones never reached the server
	[ "$(cut -d ' ' -f 3 "$T/up.log" | sort)" = "$(printf '%s\n%s\n' "$first" "$first" | sort)" ]
}

@test "loss takes a decimal percent: loss:12.5 drops about an eighth, loss:100 every datagram" {
	bg "$PY" "$UDP" server --echo --log "$T/up.log" "$T/up.port"
	wait_for "$T/up.port" '^[0-9]+$' 10
	start_tproxy udp-listen:0 udp:127.0.0.1:"$(cat "$T/up.port")" loss:12.5,seed=3,dir=c2s \
		+ udp-listen:0 udp:127.0.0.1:"$(cat "$T/up.port")" loss:100
	local msgs n
	mapfile -t msgs < <(seq -f 'n%03g' 1 200)
	run -0 --separate-stderr "$PY" "$UDP" client --gap 3 --timeout 0.5 127.0.0.1 "$PORT" "${msgs[@]}"
	n=$(wc -l <<<"$output")
	at_least 150 "datagrams through" "$n"
	below 196 "datagrams through" "$n"
	PORT=$(sed -n 2p <<<"$PORTS")
	run --separate-stderr "$PY" "$UDP" client --gap 3 --timeout 0.5 127.0.0.1 "$PORT" n1 n2 n3
	[ -z "$output" ]
}

# --- keys that aim a fault ------------------------------------------------------

@test "a fault with src= hits only the clients it matches" {
	start_tproxy tcp-listen:0 echo delay:1200,src=127.0.0.2/32
	conn --bind 127.0.0.1 --send 'fast\n' --expect 5
	[ "$(val recv)" -eq 5 ]
	below 900 "round trip from 127.0.0.1 (ms)" "$(ms elapsed)"
	conn --bind 127.0.0.2 --send 'slow\n' --expect 5
	[ "$(val recv)" -eq 5 ]
	at_least 1198 "round trip from 127.0.0.2 (ms)" "$(ms elapsed)"
}

@test "a fault with dport= hits only the connections to that port" {
	local fp
	fp=$(free_port)
	start_tproxy tcp-listen:127.0.0.1:"$fp" echo "delay:1200,dport=$fp" \
		+ tcp-listen:0 echo "delay:1200,dport=$fp"
	PORT=$(sed -n 2p <<<"$PORTS")
	conn --send 'fast\n' --expect 5
	below 900 "round trip on the other port (ms)" "$(ms elapsed)"
	PORT=$fp
	conn --send 'slow\n' --expect 5
	at_least 1198 "round trip on port $fp (ms)" "$(ms elapsed)"
}

@test "on a tls listener a fault works on the decrypted bytes, and sni= aims it at one name" {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$T/key.pem" -out "$T/cert.pem" -days 2 -subj /CN=fault.test \
		-addext subjectAltName=DNS:slow.test,DNS:fast.test 2>"$T/openssl.log"
	server up --echo
	start_tproxy "tcp-listen:0,tls,cert=$T/cert.pem,key=$T/key.pem" tcp:127.0.0.1:"$SPORT" \
		'delay:1200,sni=^slow\.test$' slice:4,dir=c2s log,dir=c2s
	conn --tls-sni fast.test --send 'hello fast\n' --expect 11
	[ "$(val recv)" -eq 11 ]
	[ "$(val sha256)" = "$(printf 'hello fast\n' | sha256sum | cut -d ' ' -f 1)" ]
	below 900 "round trip for fast.test (ms)" "$(ms elapsed)"
	conn --tls-sni slow.test --send 'hello slow\n' --expect 11
	[ "$(val recv)" -eq 11 ]
	at_least 1198 "round trip for slow.test (ms)" "$(ms elapsed)"
	# the server got the plain bytes; slice cut them, not the TLS records
	wait_for "$T/up.log" '^2 recv '
	[ "$(awk '$2 == "recv" { n += $4 } END { print n }' "$T/up.log")" -eq 22 ]
	run -0 grep ' c2s ' "$T/tproxy.out"
	at_least 6 "log lines" "${#lines[@]}"
	[ "$(awk '$(NF - 1) > 4' <<<"$output" | wc -l)" -eq 0 ]
}

# --- held bytes stop nothing else --------------------------------------------------

@test "a connection held by delay:2000 stalls no other route" {
	start_tproxy tcp-listen:0 echo log delay:2000 + tcp-listen:0 echo
	local p1 p2 slow
	read -r p1 p2 <<<"${PORTS//$'\n'/ }"
	[ -n "$p2" ]
	bg "$PY" "$FT" conn 127.0.0.1 "$p1" --send 'held\n' --expect 5 >"$T/slow.out"
	slow=$BG_PID
	# log saw the bytes: delay holds them now
	wait_for "$T/tproxy.out" ' c2s .* 5 bytes$'
	PORT=$p2
	conn --send 'now\n' --expect 4
	[ "$(val recv)" -eq 4 ]
	below 1000 "round trip on route 2 (ms)" "$(ms elapsed)"
	local fast_end=$(($(ms start) + $(ms elapsed)))
	wait "$slow"
	local s
	s=$(cat "$T/slow.out")
	[ "$(val recv "$s")" -eq 5 ]
	at_least 1998 "round trip on route 1 (ms)" "$(ms elapsed "$s")"
	# the held connection was still waiting when route 2 answered
	at_least "$fast_end" "route 1 answered at" $(($(ms start "$s") + $(ms elapsed "$s")))
}

@test "a connection under throttle stalls no other connection" {
	start_tproxy tcp-listen:0 echo log throttle:64k + tcp-listen:0 echo
	local p1 p2
	read -r p1 p2 <<<"${PORTS//$'\n'/ }"
	# 4 MiB at 64 KiB/s: held for a minute; the client gives up after 2 s
	bg "$PY" "$FT" conn 127.0.0.1 "$p1" --send-n 4194304 --shut --until-close --timeout 2 >"$T/slow.out"
	local slow=$BG_PID
	wait_for "$T/tproxy.out" ' c2s '
	sleep 0.2
	PORT=$p2
	conn --send 'now\n' --expect 4
	[ "$(val recv)" -eq 4 ]
	below 1000 "round trip on route 2 (ms)" "$(ms elapsed)"
	wait "$slow"
	local s
	s=$(cat "$T/slow.out")
	[ "$(val closed "$s")" = timeout ]
	below 1048576 "bytes through the throttle in 2 s" "$(val recv "$s")"
}

# --- memory stays bounded -----------------------------------------------------------

@test "memory stays bounded while throttle:64k and delay:2000 hold back clients sending as fast as they can" {
	start_tproxy tcp-listen:0 echo throttle:64k + tcp-listen:0 echo delay:2000
	local p1 p2 base max=0 r a b
	read -r p1 p2 <<<"${PORTS//$'\n'/ }"
	base=$(rss "$TP_PID")
	# each offers 64 MiB for 3 s, reading back what comes
	bg "$PY" "$FT" flood 127.0.0.1 "$p1" 3 67108864 >"$T/flood1.out"
	a=$BG_PID
	bg "$PY" "$FT" flood 127.0.0.1 "$p2" 3 67108864 >"$T/flood2.out"
	b=$BG_PID
	while kill -0 "$a" 2>/dev/null || kill -0 "$b" 2>/dev/null; do
		r=$(rss "$TP_PID")
		[ "$r" -le "$max" ] || max=$r
		sleep 0.2
	done
	wait "$a"
	wait "$b"
	r=$(rss "$TP_PID")
	[ "$r" -le "$max" ] || max=$r
	below 16384 "RSS growth (KiB; from $base)" $((max - base))
	kill -0 "$TP_PID"
	# the faults did hold the bytes back (64 KiB/s; 2 s each way)
	below 1048576 "bytes echoed through throttle:64k in 3 s" "$(val recv "$(cat "$T/flood1.out")")"
	below 1048576 "bytes echoed through delay:2000 in 3 s" "$(val recv "$(cat "$T/flood2.out")")"
}

@test "memory stays bounded when answer: replies 1 MiB to each byte of a client that never reads" {
	head -c 1048576 /dev/zero | tr '\0' 'A' >"$T/answer.txt"
	start_tproxy tcp-listen:0 echo "answer:@$T/answer.txt"
	local base max pid
	base=$(rss "$TP_PID")
	# 300 one-byte writes, 2 ms apart; the client then holds on, unread
	bg "$PY" "$FT" noread 127.0.0.1 "$PORT" 300 2 1 >"$T/noread.out"
	pid=$BG_PID
	max=$(peak_rss "$TP_PID" "$pid")
	wait "$pid"
	[ "$(cat "$T/noread.out")" = sent=300 ]
	echo "RSS $base -> $max KiB at the peak"
	below 32768 "RSS growth (KiB; from $base)" $((max - base))
	kill -0 "$TP_PID"
}

@test "memory stays bounded when slice: cuts one read into pieces that answer: each replies to" {
	head -c 1048576 /dev/zero | tr '\0' 'A' >"$T/answer.txt"
	start_tproxy tcp-listen:0 echo slice:1 "answer:@$T/answer.txt"
	local base max pid
	base=$(rss "$TP_PID")
	# 300 bytes in one write: one read, cut into 300 one-byte pieces
	bg "$PY" -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"x" * 300)
print("sent=300", flush=True)
time.sleep(2)' "$PORT" >"$T/noread.out"
	pid=$BG_PID
	max=$(peak_rss "$TP_PID" "$pid")
	wait "$pid"
	[ "$(cat "$T/noread.out")" = sent=300 ]
	echo "RSS $base -> $max KiB at the peak"
	below 32768 "RSS growth (KiB; from $base)" $((max - base))
	kill -0 "$TP_PID"
}

@test "memory stays bounded when answer:,dir=s2c replies 1 MiB to each byte of a server that never reads" {
	head -c 1048576 /dev/zero | tr '\0' 'A' >"$T/answer.txt"
	# a server that sends a byte every 2 ms, 300 times, and never reads
	bg "$PY" -c 'import socket, sys, time
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(1)
open(sys.argv[1], "w").write("%d\n" % l.getsockname()[1])
s, _ = l.accept()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for i in range(300):
    s.sendall(b"x")
    time.sleep(0.002)
time.sleep(2)' "$T/srv.port"
	wait_for "$T/srv.port" '^[0-9]+$'
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$(cat "$T/srv.port")" "answer:@$T/answer.txt,dir=s2c"
	local base max pid
	base=$(rss "$TP_PID")
	bg "$PY" -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
time.sleep(3)' "$PORT"
	pid=$BG_PID
	max=$(peak_rss "$TP_PID" "$pid")
	echo "RSS $base -> $max KiB at the peak"
	below 32768 "RSS growth (KiB; from $base)" $((max - base))
	kill -0 "$TP_PID"
}

# --- arguments ------------------------------------------------------------------

@test "every fault filter starts with the arguments and keys of the contract" {
	start_tproxy tcp-listen:0 echo delay:10 delay:10,jitter=5 throttle:1000 \
		throttle:64k throttle:1m slice:1 slice:10,delay=5 limit:100 limit:1k \
		limit:1m reset:60000 stall:60000 \
		delay:5,dir=c2s,src=127.0.0.0/8,dst=127.0.0.1/32,dport=1 \
		+ tcp-listen:0 echo reset stall \
		+ udp-listen:0 echo loss:50 loss:0,seed=7 loss:100,seed=1,dir=s2c delay:10,jitter=10
	[ "$(wc -l <<<"$PORTS")" -eq 3 ]
	stop_tproxy
	[ "$TP_STATUS" -eq 0 ]
}

@test "bad arguments of delay, throttle and slice are usage errors that name the argument" {
	usage_error delay:-1 tcp-listen:0 echo delay:-1
	usage_error delay:x tcp-listen:0 echo delay:x
	usage_error delay: tcp-listen:0 echo delay:
	usage_error jitter tcp-listen:0 echo delay:10,jitter=x
	usage_error throttle:0 tcp-listen:0 echo throttle:0
	usage_error throttle:x tcp-listen:0 echo throttle:x
	usage_error throttle:5q tcp-listen:0 echo throttle:5q
	usage_error slice:0 tcp-listen:0 echo slice:0
	usage_error slice:x tcp-listen:0 echo slice:x
	usage_error delay=-1 tcp-listen:0 echo slice:10,delay=-1
}

@test "bad arguments of limit, reset, stall and loss are usage errors that name the argument" {
	usage_error limit:x tcp-listen:0 echo limit:x
	usage_error limit:-5 tcp-listen:0 echo limit:-5
	usage_error reset:x tcp-listen:0 echo reset:x
	usage_error stall:x tcp-listen:0 echo stall:x
	usage_error loss:101 udp-listen:0 echo loss:101
	usage_error loss:-1 udp-listen:0 echo loss:-1
	usage_error seed udp-listen:0 echo loss:50,seed=x
}

@test "loss on a tcp-listen route is a usage error that says it is for UDP" {
	usage_error loss:50 tcp-listen:0 echo loss:50
	[[ ${stderr,,} == *udp* ]]
	# also in a later route, after a UDP route that takes it
	usage_error loss:50 udp-listen:0 echo loss:50 + tcp-listen:0 echo log loss:50
}

@test "an unknown key on a fault filter is a usage error that names the key" {
	usage_error foo tcp-listen:0 echo delay:10,foo=1
	usage_error bogus tcp-listen:0 echo stall,bogus=2
}
