#!/usr/bin/env bats
# tests/cli.bats - the command line as a user meets it (../shared/spec/cli.md):
# help and version, usage errors (exit 2, nothing listens), runtime failures
# (exit 1), routes and addresses, output, signals and the connection limits.

# shellcheck disable=SC2154 # $output, $stderr, $lines: set by bats' run
bats_require_minimum_version 1.5.0

load helper

CLIENT=$TOOLS/filt_client.py
SERVER=$TOOLS/filt_server.py

# start_server NAME ARG...: tests/tools/filt_server.py in the background;
# sets SPORT (its port) once it listens
start_server() {
	local name=$1
	shift
	bg python3 "$SERVER" "$@" "$T/$name.port"
	wait_for "$T/$name.port" '^[0-9a-z]+$' 10
	SPORT=$(cat "$T/$name.port")
}

# free_port: prints a port nothing listens on (for routes whose port must be
# known before tproxy runs)
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# listening PORT: something accepts on 127.0.0.1:PORT
listening() {
	[ -n "$(ss -Hltn "sport = :$1")" ] || nc -z 127.0.0.1 "$1" 2>/dev/null
}

# wait_listening PORT: wait (up to 10 s) until 127.0.0.1:PORT listens
wait_listening() {
	local i
	for ((i = 0; i < 200; i++)); do
		listening "$1" && return 0
		sleep 0.05
	done
	echo "nothing listens on 127.0.0.1:$1" >&2
	return 1
}

# usage_error WHAT ARG...: `tproxy ARG...` is a usage error: exit 2, the fixed
# string WHAT (the offending argument) in a `tproxy: ` message on stderr,
# nothing on stdout, and nothing listening: $GP, the port of a good route put
# on the same command line, never bound.
usage_error() {
	local what=$1
	shift
	run -2 --separate-stderr timeout 10 "$TPROXY" "$@"
	[ -z "$output" ] || {
		printf 'expected nothing on stdout, got:\n%s\n' "$output" >&2
		return 1
	}
	matches '^tproxy: ' "$stderr"
	contains "$what" "$stderr"
	lacks 'listening on' "$stderr"
	if [ -n "${GP:-}" ] && listening "$GP"; then
		echo "the good route's port $GP listens" >&2
		return 1
	fi
}

# good_route: sets GP to a free port, for a good route next to a bad one
good_route() {
	GP=$(free_port)
}

# --- help and version -------------------------------------------------------

@test "--help prints the usage with the synopsis on stdout and exits 0" {
	run -0 --separate-stderr "$TPROXY" --help
	contains 'usage: tproxy [OPTION]... LISTEN TARGET [FILTER]... [+ LISTEN TARGET [FILTER]...]...' "$output"
	contains 'tcp-listen' "$output"
	[ -z "$stderr" ]
}

@test "-h is the same as --help" {
	run -0 --separate-stderr "$TPROXY" -h
	contains 'usage: tproxy [OPTION]... LISTEN TARGET [FILTER]...' "$output"
	[ -z "$stderr" ]
}

@test "--version prints tproxy and an X.Y.Z version number and exits 0" {
	run -0 --separate-stderr "$TPROXY" --version
	matches '^tproxy [0-9]+\.[0-9]+\.[0-9]+$' "$output"
	[ "${#lines[@]}" -eq 1 ]
	[ -z "$stderr" ]
}

@test "-V is the same as --version" {
	run -0 "$TPROXY" -V
	matches '^tproxy [0-9]+\.[0-9]+\.[0-9]+$' "$output"
}

# --- usage errors: exit 2, the bad argument named, nothing listens ---------

@test "no arguments at all is a usage error" {
	run -2 --separate-stderr timeout 10 "$TPROXY"
	[ -z "$output" ]
	matches '^tproxy: .*(LISTEN|address)' "$stderr"
}

@test "a LISTEN address without a TARGET is a usage error naming the address" {
	good_route
	usage_error 'tcp-listen:0' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0
}

@test "a lone LISTEN address is a usage error" {
	run -2 --separate-stderr timeout 10 "$TPROXY" tcp-listen:0
	[ -z "$output" ]
	contains 'tcp-listen:0' "$stderr"
	contains 'TARGET' "$stderr"
}

@test "an unknown option is a usage error naming the option" {
	good_route
	usage_error '--bogus' --bogus tcp-listen:127.0.0.1:"$GP" echo
}

@test "an unknown address type is a usage error naming the type" {
	good_route
	usage_error 'foo:1' tcp-listen:127.0.0.1:"$GP" echo + foo:1 echo
	contains "'foo'" "$stderr"
}

@test "an unknown target type is a usage error naming it" {
	good_route
	usage_error 'bar:127.0.0.1:80' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 bar:127.0.0.1:80
}

@test "an unknown address option is a usage error naming the option" {
	good_route
	usage_error 'bogus' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0,bogus echo
	contains 'tcp-listen:0,bogus' "$stderr"
}

@test "an unknown target option is a usage error naming the option" {
	good_route
	usage_error 'frobnicate=1' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 tcp:127.0.0.1:80,frobnicate=1
}

@test "port 0 for a target is a usage error" {
	good_route
	usage_error 'tcp:127.0.0.1:0' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 tcp:127.0.0.1:0
}

@test "port 65536 is a usage error" {
	good_route
	usage_error 'tcp-listen:65536' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:65536 echo
	contains '65536' "$stderr"
}

@test "port 65536 for a target is a usage error" {
	good_route
	usage_error 'tcp:127.0.0.1:65536' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 tcp:127.0.0.1:65536
}

@test "a non-numeric port is a usage error" {
	good_route
	usage_error 'tcp-listen:abc' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:abc echo
	contains "abc" "$stderr"
}

@test "a target without a port is a usage error" {
	good_route
	usage_error 'tcp:127.0.0.1' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 tcp:127.0.0.1
}

@test "an IPv6 host without brackets is a usage error" {
	good_route
	usage_error 'tcp-listen:::1:80' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:::1:80 echo
}

@test "a non-numeric backlog= is a usage error" {
	good_route
	usage_error 'backlog=x' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0,backlog=x echo
}

@test "backlog=0 and an out-of-range backlog= are usage errors" {
	good_route
	usage_error 'backlog=0' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0,backlog=0 echo
	usage_error 'backlog=99999999999' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0,backlog=99999999999 echo
}

@test "ipv6only= other than 0 or 1 is a usage error" {
	good_route
	usage_error 'ipv6only=2' tcp-listen:127.0.0.1:"$GP" echo + 'tcp-listen:[::1]:0,ipv6only=2' echo
	usage_error 'ipv6only=yes' tcp-listen:127.0.0.1:"$GP" echo + 'tcp-listen:[::1]:0,ipv6only=yes' echo
}

@test "allow-loopback= other than 0 or 1, or allow-loopback on a target other than orig, is a usage error" {
	good_route
	usage_error 'allow-loopback=2' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 orig,allow-loopback=2
	usage_error 'allow-loopback' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 tcp:127.0.0.1:80,allow-loopback
	usage_error 'allow-loopback' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0,allow-loopback orig
	# the forms it takes
	run -0 timeout 10 "$TPROXY" --print-rules tcp-listen:0 orig,allow-loopback + \
		tcp-listen:0 orig,allow-loopback=1 + tcp-listen:0 orig,allow-loopback=0
}

@test "a non-numeric --max-conns or --idle-timeout is a usage error" {
	good_route
	usage_error '--max-conns' --max-conns=lots tcp-listen:127.0.0.1:"$GP" echo
	usage_error '--idle-timeout' --idle-timeout=soon tcp-listen:127.0.0.1:"$GP" echo
	usage_error '--idle-timeout' --idle-timeout=-1 tcp-listen:127.0.0.1:"$GP" echo
}

@test "an unknown filter is a usage error naming the filter" {
	good_route
	usage_error 'nosuchfilter' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo log nosuchfilter
}

@test "log with an argument is a usage error" {
	good_route
	usage_error 'log:x' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo log:x
}

@test "redirect without HOST:PORT is a usage error" {
	good_route
	usage_error 'redirect:nohostport' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo redirect:nohostport
}

@test "redirect with a bad port is a usage error" {
	good_route
	usage_error 'redirect:127.0.0.1:99999' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo redirect:127.0.0.1:99999
}

@test "dir= other than c2s, s2c or both is a usage error" {
	good_route
	usage_error 'dir=up' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo log,dir=up
}

@test "src= that is not a CIDR is a usage error" {
	good_route
	usage_error 'src=300.1.1.1/8' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo log,src=300.1.1.1/8
}

@test "a CIDR prefix too long for its family is a usage error" {
	good_route
	usage_error 'dst=127.0.0.1/33' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo log,dst=127.0.0.1/33
}

@test "dport=0 is a usage error" {
	good_route
	usage_error 'dport=0' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo log,dport=0
}

@test "an unknown filter key is a usage error" {
	good_route
	usage_error 'colour=1' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo hexdump,colour=1
}

@test "an unterminated s/// is a usage error" {
	good_route
	usage_error 's/abc/def' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo s/abc/def
}

@test "an unknown s/// flag is a usage error naming the flag" {
	good_route
	usage_error 's/a/b/z' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo s/a/b/z
	contains "'z'" "$stderr"
}

@test "a bad regex in s/// is a usage error" {
	good_route
	usage_error 's/(/b/' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo 's/(/b/'
}

@test "a back-reference to a group the regex does not have is a usage error" {
	good_route
	usage_error '\5' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo 's/(a)/\5/'
}

@test "an unknown escape in the replacement is a usage error" {
	good_route
	usage_error '\q' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo 's/a/\q/'
}

@test "a bad regex in drop: and in match= are usage errors" {
	good_route
	usage_error 'drop:[' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo 'drop:['
	usage_error 'match=(' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo 'answer:no,match=('
}

@test "a trailing + without a route is a usage error" {
	good_route
	usage_error 'route 2' tcp-listen:127.0.0.1:"$GP" echo +
}

@test "redirect on the server side (dir=s2c) is a usage error" {
	good_route
	usage_error 'dir=s2c' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo 'redirect:127.0.0.1:80,dir=s2c'
}

@test "a bad escape in answer TEXT is a usage error" {
	good_route
	usage_error 'answer:a\xZZ' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo 'answer:a\xZZ'
	usage_error 'answer:a\q' tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:0 echo 'answer:a\q'
}

@test "a bad argument in the first route stops a good second route from listening" {
	good_route
	usage_error 'log:x' tcp-listen:0 echo log:x + tcp-listen:127.0.0.1:"$GP" echo
}

@test "a bad argument never leaves a unix-listen socket behind" {
	usage_error 'dir=up' unix-listen:"$T/good.sock" echo + tcp-listen:0 echo log,dir=up
	[ ! -e "$T/good.sock" ]
}

# --- runtime failures at start: exit 1 --------------------------------------

@test "a listen port already in use exits 1 with a message naming the address" {
	start_server busy --echo
	run -1 --separate-stderr timeout 10 "$TPROXY" tcp-listen:127.0.0.1:"$SPORT" echo
	contains "127.0.0.1:$SPORT" "$stderr"
	matches '^tproxy: ' "$stderr"
	lacks 'listening on' "$stderr"
}

@test "a port in use in the second route leaves the first route not listening" {
	start_server busy --echo
	good_route
	run -1 --separate-stderr timeout 10 "$TPROXY" tcp-listen:127.0.0.1:"$GP" echo + tcp-listen:127.0.0.1:"$SPORT" echo
	contains "127.0.0.1:$SPORT" "$stderr"
	run ! listening "$GP"
}

@test "a listen host that does not resolve exits 1 with a message naming it" {
	run -1 --separate-stderr timeout 20 "$TPROXY" tcp-listen:no-such-host.invalid:0 echo
	contains 'no-such-host.invalid' "$stderr"
	[ -z "$output" ]
}

@test "unix-listen on a regular file exits 1 and leaves the file alone" {
	echo precious >"$T/file"
	run -1 --separate-stderr timeout 10 "$TPROXY" unix-listen:"$T/file" echo
	contains "$T/file" "$stderr"
	[ "$(cat "$T/file")" = precious ]
}

@test "unix-listen on a socket another server listens on exits 1 and leaves that server alone" {
	bg python3 "$SERVER" --unix "$T/live.sock" --echo --tag live: "$T/live.port"
	wait_for "$T/live.port" '^ready$' 10
	run -1 --separate-stderr timeout 5 "$TPROXY" unix-listen:"$T/live.sock" echo
	contains "$T/live.sock" "$stderr"
	# the server still owns its socket
	run -0 --separate-stderr timeout 10 socat -t 5 - UNIX-CONNECT:"$T/live.sock" <<<"still there"
	[ "$output" = "live:still there" ]
}

# --- routes and addresses ---------------------------------------------------

@test "port 0 picks a free port and the listening line shows it" {
	start_tproxy tcp-listen:0 echo
	matches "^tproxy: listening on tcp 127\.0\.0\.1:$PORT -> echo\$" "$(cat "$T/tproxy.err")"
	[ "$PORT" -gt 0 ]
	listening "$PORT"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:ping\n' 'u:ping\n'
	[ "$output" = ping ]
}

@test "the listening line names both ends of the route" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	matches "^tproxy: listening on tcp 127\.0\.0\.1:$PORT -> tcp 127\.0\.0\.1:$SPORT\$" "$(cat "$T/tproxy.err")"
}

@test "two routes joined by + both listen and both relay" {
	start_server a --echo --tag A:
	local pa=$SPORT
	start_server b --echo --tag B:
	local pb=$SPORT
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$pa" + tcp-listen:0 tcp:127.0.0.1:"$pb"
	local p1 p2
	p1=$(sed -n 1p <<<"$PORTS")
	p2=$(sed -n 2p <<<"$PORTS")
	[ -n "$p1" ] && [ -n "$p2" ] && [ "$p1" != "$p2" ]
	run -0 python3 "$CLIENT" 127.0.0.1 "$p1" 's:one\n' 'u:one\n' shut eof
	[ "$output" = "A:one" ]
	run -0 python3 "$CLIENT" 127.0.0.1 "$p2" 's:two\n' 'u:two\n' shut eof
	[ "$output" = "B:two" ]
}

@test "tcp-l is an alias of tcp-listen" {
	start_tproxy tcp-l:0 echo
	matches "^tproxy: listening on tcp 127\.0\.0\.1:$PORT -> echo\$" "$(cat "$T/tproxy.err")"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:alias\n' 'u:alias\n'
	[ "$output" = alias ]
}

@test "address types are case-insensitive" {
	start_server up --echo
	start_tproxy TCP-LISTEN:0 TCP:127.0.0.1:"$SPORT" + Tcp-L:0 ECHO
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:upper\n' 'u:upper\n' shut eof
	[ "$output" = upper ]
	run -0 python3 "$CLIENT" 127.0.0.1 "$(sed -n 2p <<<"$PORTS")" 's:mixed\n' 'u:mixed\n'
	[ "$output" = mixed ]
}

@test "a listen host name is resolved at start" {
	start_tproxy tcp-listen:localhost:0 echo
	matches "^tproxy: listening on tcp (127\.0\.0\.1|\[::1\]):$PORT -> echo\$" "$(cat "$T/tproxy.err")"
	local host
	host=$(sed -nE 's/^tproxy: listening on tcp \[?([0-9a-f.:]+[0-9])\]?:[0-9]+ -> echo$/\1/p' "$T/tproxy.err")
	run -0 python3 "$CLIENT" "$host" "$PORT" 's:local\n' 'u:local\n'
	[ "$output" = local ]
}

@test "address options reuseaddr and backlog= are accepted on a listener" {
	start_tproxy tcp-listen:0,reuseaddr,backlog=5 echo + 'tcp-listen:[::1]:0,ipv6only=1' echo
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:opts\n' 'u:opts\n'
	[ "$output" = opts ]
	run -0 python3 "$CLIENT" ::1 "$(sed -n 2p <<<"$PORTS")" 's:v6only\n' 'u:v6only\n'
	[ "$output" = v6only ]
}

@test "a listener binds 127.0.0.1 by default, never all interfaces" {
	start_tproxy tcp-listen:0 echo
	local local_addr
	local_addr=$(ss -Hltn "sport = :$PORT" | awk '{ print $4 }')
	[ "$local_addr" = "127.0.0.1:$PORT" ]
}

@test "an IPv6 listener relays to an IPv4 target" {
	start_server up --echo --peer
	start_tproxy 'tcp-listen:[::1]:0' tcp:127.0.0.1:"$SPORT"
	matches "^tproxy: listening on tcp \[::1\]:$PORT -> tcp 127\.0\.0\.1:$SPORT\$" "$(cat "$T/tproxy.err")"
	run -0 python3 "$CLIENT" ::1 "$PORT" 'u:\n' 's:six\n' 'u:six\n' shut eof
	matches '^peer=127\.0\.0\.1:[0-9]+$' "$output"
	[ "${lines[1]}" = six ]
}

@test "an IPv4 listener relays to an IPv6 target" {
	start_server up --echo --peer --host ::1
	start_tproxy tcp-listen:0 "tcp:[::1]:$SPORT"
	matches "^tproxy: listening on tcp 127\.0\.0\.1:$PORT -> tcp \[::1\]:$SPORT\$" "$(cat "$T/tproxy.err")"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 'u:\n' 's:four\n' 'u:four\n' shut eof
	matches '^peer=::1:[0-9]+$' "$output"
	[ "${lines[1]}" = four ]
}

@test "a unix-listen socket relays to a TCP target" {
	start_server up --echo --tag up:
	start_tproxy unix-listen:"$T/front.sock" tcp:127.0.0.1:"$SPORT"
	matches "^tproxy: listening on unix $T/front.sock -> tcp 127\.0\.0\.1:$SPORT\$" "$(cat "$T/tproxy.err")"
	[ -S "$T/front.sock" ]
	run -0 timeout 10 socat -t 5 - UNIX-CONNECT:"$T/front.sock" <<<"over unix"
	[ "$output" = "up:over unix" ]
}

@test "a TCP listener relays to a unix socket target" {
	start_server up --echo --tag unix: --unix "$T/back.sock"
	start_tproxy tcp-listen:0 unix:"$T/back.sock"
	run -0 timeout 10 socat -t 5 - TCP:127.0.0.1:"$PORT" <<<"to unix"
	[ "$output" = "unix:to unix" ]
}

@test "unix-listen to a unix target relays both ways" {
	start_server up --echo --tag both: --unix "$T/back.sock"
	start_tproxy unix-listen:"$T/front.sock" unix:"$T/back.sock"
	run -0 python3 "$CLIENT" unix "$T/front.sock" 's:hello\n' 'u:hello\n' shut eof
	[ "$output" = "both:hello" ]
}

@test "bind= on a target sets the source address the upstream sees" {
	start_server up --peer --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT",bind=127.0.0.2
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 'u:\n' shut eof
	matches '^peer=127\.0\.0\.2:[0-9]+$' "$output"
}

@test "without bind= the upstream sees 127.0.0.1" {
	start_server up --peer --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 'u:\n' shut eof
	matches '^peer=127\.0\.0\.1:[0-9]+$' "$output"
}

@test "a target host name is resolved and connected to" {
	# localhost may resolve to 127.0.0.1 or ::1: serve the port on both
	start_server up4 --peer --echo
	bg python3 "$SERVER" --peer --echo --host ::1 --port "$SPORT" "$T/up6.port"
	wait_for "$T/up6.port" '^[0-9]+$' 10
	start_tproxy tcp-listen:0 tcp:localhost:"$SPORT"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 'u:\n' 's:byname\n' 'u:byname\n' shut eof
	matches '^peer=(127\.0\.0\.1|::1):[0-9]+$' "$output"
	[ "${lines[1]}" = byname ]
}

@test "a target host name is resolved at connect time, not at start" {
	start_tproxy --json tcp-listen:0 tcp:no-such-host.invalid:80
	# the client is closed (EOF or reset); tproxy says why and keeps running
	run --separate-stderr python3 "$CLIENT" 127.0.0.1 "$PORT" eof
	[ -z "$output" ]
	wait_for "$T/tproxy.err" 'no-such-host\.invalid' 10
	wait_for "$T/tproxy.out" '"event": ?"error"' 10
	jq -se 'map(select(.event == "error")) | length == 1 and (.[0].conn | type) == "number"
		and (.[0].reason | contains("no-such-host.invalid"))' "$T/tproxy.out"
	kill -0 "$TP_PID"
	listening "$PORT"
}

@test "a refused upstream closes the client, is logged, and tproxy keeps serving" {
	local dead
	dead=$(free_port)
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$dead"
	run --separate-stderr python3 "$CLIENT" 127.0.0.1 "$PORT" eof
	[ -z "$output" ]
	wait_for "$T/tproxy.err" "127\.0\.0\.1:$dead" 10
	run --separate-stderr python3 "$CLIENT" 127.0.0.1 "$PORT" eof
	[ -z "$output" ]
	kill -0 "$TP_PID"
}

@test "a half-closed client still receives the upstream's reply" {
	local fp
	fp=$(free_port)
	# sort answers only once it has read everything: after the client's FIN
	bg socat TCP-LISTEN:"$fp",bind=127.0.0.1,reuseaddr,fork SYSTEM:sort
	wait_listening "$fp"
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$fp"
	run -0 --separate-stderr timeout 10 nc -N 127.0.0.1 "$PORT" < <(printf 'pear\napple\nfig\n')
	[ "$output" = "$(printf 'apple\nfig\npear')" ]
}

@test "a megabyte of random bytes passes both ways unchanged" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	head -c 1048576 /dev/urandom >"$T/in.bin"
	timeout 60 nc -N 127.0.0.1 "$PORT" <"$T/in.bin" >"$T/out.bin"
	cmp "$T/in.bin" "$T/out.bin"
}

@test "a client that resets its connection does not end tproxy" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:first\n' 'u:first\n' rst
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:abort' rst
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:after\n' 'u:after\n' shut eof
	[ "$output" = after ]
	kill -0 "$TP_PID"
}

@test "an upstream that goes away mid-connection does not end tproxy" {
	start_server up --greet 'bye\n' --close
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 'u:bye\n' eof
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 'u:bye\n' eof
	[ "$output" = bye ]
	kill -0 "$TP_PID"
}

# --- output -----------------------------------------------------------------

@test "-q prints nothing on stderr at start or while relaying" {
	local fp
	fp=$(free_port)
	"$TPROXY" -q tcp-listen:127.0.0.1:"$fp" echo >"$T/tproxy.out" 2>"$T/tproxy.err" &
	TP_PID=$!
	PIDS+=("$TP_PID")
	wait_listening "$fp"
	run -0 python3 "$CLIENT" 127.0.0.1 "$fp" 's:quiet\n' 'u:quiet\n' shut eof
	[ "$output" = quiet ]
	kill -0 "$TP_PID"
	[ ! -s "$T/tproxy.err" ] || {
		echo "stderr with -q:" >&2
		cat "$T/tproxy.err" >&2
		return 1
	}
	[ ! -s "$T/tproxy.out" ]
}

@test "-v prints each connection's accept and close on stderr" {
	start_server up --echo
	start_tproxy -v tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:verbose\n' 'u:verbose\n' shut eof
	wait_for "$T/tproxy.err" '#1 .*close' 10
	grep -E '^tproxy: #1 .*accept.*127\.0\.0\.1:' "$T/tproxy.err"
	[ ! -s "$T/tproxy.out" ]
}

@test "without -v a clean connection prints nothing on stderr" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:plain\n' 'u:plain\n' shut eof
	run -0 cat "$T/tproxy.err"
	# the start-up lines only: where it listens, and as root, that it
	# runs as root
	if [ "$(id -u)" -eq 0 ]; then
		[ "${#lines[@]}" -eq 2 ]
		matches '^tproxy: running as root' "$output"
	else
		[ "${#lines[@]}" -eq 1 ]
	fi
	matches '^tproxy: listening on ' "$output"
	[ ! -s "$T/tproxy.out" ]
}

@test "run as root without --user, tproxy says once on stderr that it runs as root and how not to" {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	start_tproxy tcp-listen:0 echo + tcp-listen:0 echo
	run -0 grep -c 'running as root' "$T/tproxy.err"
	[ "$output" -eq 1 ]
	run -0 grep 'running as root' "$T/tproxy.err"
	matches '^tproxy: running as root: .*--user=NAME' "$output"
}

@test "with -q or --user, or as another user, nothing is said about root" {
	local fp real
	[ "$(id -u)" -eq 0 ] || skip "needs root (to start tproxy as root and as nobody)"
	fp=$(free_port)
	"$TPROXY" -q tcp-listen:127.0.0.1:"$fp" echo >"$T/tproxy.out" 2>"$T/tproxy.err" &
	TP_PID=$!
	PIDS+=("$TP_PID")
	wait_listening "$fp"
	run -0 python3 "$CLIENT" 127.0.0.1 "$fp" 's:q\n' 'u:q\n' shut eof
	[ ! -s "$T/tproxy.err" ] || {
		cat "$T/tproxy.err" >&2
		return 1
	}
	stop_tproxy
	start_tproxy --user=nobody tcp-listen:0 echo
	run -1 grep 'as root' "$T/tproxy.err"
	stop_tproxy
	# start_tproxy runs "$TPROXY" ARGS: here setpriv, which runs tproxy
	real=$TPROXY
	TPROXY=setpriv start_tproxy --reuid=nobody --regid=nogroup --clear-groups \
		"$real" tcp-listen:0 echo
	run -1 grep 'as root' "$T/tproxy.err"
	grep -q '^tproxy: listening on ' "$T/tproxy.err"
}

@test "long options also take their value as the next argument" {
	start_server up --echo
	start_tproxy --idle-timeout 1 --max-conns 4 tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:hi\n' 'u:hi\n' t:10 eof
	[ "$output" = hi ]
}

@test "-q still reports a connection that fails" {
	local dead fp
	dead=$(free_port)
	fp=$(free_port)
	"$TPROXY" -q tcp-listen:127.0.0.1:"$fp" tcp:127.0.0.1:"$dead" >"$T/tproxy.out" 2>"$T/tproxy.err" &
	TP_PID=$!
	PIDS+=("$TP_PID")
	wait_listening "$fp"
	run --separate-stderr python3 "$CLIENT" 127.0.0.1 "$fp" eof
	wait_for "$T/tproxy.err" "127\.0\.0\.1:$dead" 10
	run -0 cat "$T/tproxy.err"
	lacks 'listening on' "$output"
}

@test "SIGTERM ends tproxy with status 0 and a summary line on stderr" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:hello\n' 'u:hello\n' shut eof
	[ "$output" = hello ]
	stop_tproxy
	[ "$TP_STATUS" -eq 0 ]
	matches '^tproxy: exiting on SIGTERM: 1 connections, 6 bytes c2s, 6 bytes s2c$' "$(cat "$T/tproxy.err")"
}

@test "SIGINT ends tproxy with status 0 and a summary line on stderr" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:abc\n' 'u:abc\n' shut eof
	kill -INT "$TP_PID"
	TP_STATUS=0
	wait "$TP_PID" || TP_STATUS=$?
	[ "$TP_STATUS" -eq 0 ]
	matches '^tproxy: exiting on SIGINT: 1 connections, 4 bytes c2s, 4 bytes s2c$' "$(cat "$T/tproxy.err")"
}

@test "SIGTERM closes the open connections and still exits 0" {
	start_server up --echo
	start_tproxy --json tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	python3 "$CLIENT" 127.0.0.1 "$PORT" 's:open\n' 'u:open\n' t:20 eof >"$T/client.out" 2>"$T/client.err" &
	local client=$!
	PIDS+=("$client")
	wait_for "$T/tproxy.out" '"event": ?"connect"' 10
	stop_tproxy
	[ "$TP_STATUS" -eq 0 ]
	# the client saw its connection end (EOF or reset), long before its 20 s
	wait_gone "$client" 10
	[ "$(cat "$T/client.out")" = open ]
	matches '^tproxy: exiting on SIGTERM: ' "$(cat "$T/tproxy.err")"
}

@test "--json gives listen, accept, connect and close events with the byte counts" {
	start_server up --echo
	start_tproxy --json tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:hello\n' 'u:hello\n' 's:world!!\n' 'u:world!!\n' shut eof
	wait_for "$T/tproxy.out" '"event": ?"close"' 10
	local line n=0
	while IFS= read -r line; do
		n=$((n + 1))
		jq -e 'type == "object" and (.event | type) == "string" and (.time | type) == "string"' <<<"$line" >/dev/null || {
			echo "stdout line $n is not a JSON event: $line" >&2
			return 1
		}
	done <"$T/tproxy.out"
	[ "$n" -eq 4 ]
	run -0 jq -sc '[.[].event]' "$T/tproxy.out"
	[ "$output" = '["listen","accept","connect","close"]' ]
	# listen: the bound port, so scripts can use port 0
	jq -se --argjson p "$PORT" '.[0] | .port == $p and .addr == "127.0.0.1"' "$T/tproxy.out"
	# one connection id throughout
	jq -se '[.[1:][] | .conn] | (.[0] | type) == "number" and (unique | length) == 1' "$T/tproxy.out"
	jq -se --arg d "127.0.0.1:$PORT" '.[1] | .dst == $d and (.src | startswith("127.0.0.1:"))' "$T/tproxy.out"
	jq -se --arg d "127.0.0.1:$SPORT" '.[2] | .dst == $d' "$T/tproxy.out"
	jq -se '.[3] | .bytes_c2s == 14 and .bytes_s2c == 14 and .chunks_c2s == 2 and .chunks_s2c == 2
		and (.duration_ms | type) == "number" and .duration_ms >= 0' "$T/tproxy.out"
	jq -se '.[0].time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")' "$T/tproxy.out"
}

@test "--json close events count each direction separately" {
	start_server up --greet 'banner!\n'
	start_tproxy --json tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 'u:banner!\n' 's:abc' shut eof
	wait_for "$T/tproxy.out" '"event": ?"close"' 10
	jq -se '[.[] | select(.event == "close")] | length == 1 and .[0].bytes_c2s == 3 and .[0].bytes_s2c == 8
		and .[0].chunks_c2s == 1 and .[0].chunks_s2c == 1' "$T/tproxy.out"
}

@test "--json listen events carry the bound port of every route" {
	start_tproxy --json tcp-listen:0 echo + tcp-listen:0 echo
	run -0 jq -sc '[.[] | select(.event == "listen") | .port]' "$T/tproxy.out"
	[ "$output" = "[$(sed -n 1p <<<"$PORTS"),$(sed -n 2p <<<"$PORTS")]" ]
}

# --- connection limits ------------------------------------------------------

@test "--max-conns=1 makes a second client wait until the first closes" {
	start_server up --echo --log "$T/up.log"
	start_tproxy --json --max-conns=1 tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	python3 "$CLIENT" 127.0.0.1 "$PORT" 's:first\n' 'u:first\n' "f:$T/go" shut t:20 eof >"$T/c1.out" 2>"$T/c1.err" &
	local c1=$!
	PIDS+=("$c1")
	wait_for "$T/up.log" '^first$' 10
	python3 "$CLIENT" 127.0.0.1 "$PORT" 's:second\n' t:30 'u:second\n' shut eof >"$T/c2.out" 2>"$T/c2.err" &
	local c2=$!
	PIDS+=("$c2")
	# while the first is open, the second is not served (a negative check
	# needs a wait: 1 s is ample for a proxy that would accept at once)
	sleep 1
	[ "$(jq -s '[.[] | select(.event == "accept")] | length' "$T/tproxy.out")" -eq 1 ]
	run ! grep -q second "$T/up.log"
	kill -0 "$c2"
	# the first closes: the second is served
	touch "$T/go"
	wait "$c1"
	wait "$c2"
	[ "$(cat "$T/c1.out")" = first ]
	[ "$(cat "$T/c2.out")" = second ]
	run -0 jq -sc '[.[] | select(.event == "accept" or .event == "close") | "\(.event)\(.conn)"]' "$T/tproxy.out"
	[ "$output" = '["accept1","close1","accept2","close2"]' ]
}

@test "--idle-timeout=1 closes a connection with no traffic" {
	start_server up --echo
	start_tproxy --json --idle-timeout=1 tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	# the client never closes: only tproxy can end this connection
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:hi\n' 'u:hi\n' t:10 eof
	[ "$output" = hi ]
	wait_for "$T/tproxy.out" '"event": ?"close"' 10
	kill -0 "$TP_PID"
}

@test "--idle-timeout spares a connection with traffic more often than the timeout" {
	start_server up --echo
	start_tproxy --idle-timeout=2 tcp-listen:0 tcp:127.0.0.1:"$SPORT"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" \
		's:1' u:1 w:0.6 's:2' u:2 w:0.6 's:3' u:3 w:0.6 's:4' u:4 w:0.6 's:5' u:5 shut eof
	[ "$output" = 12345 ]
}

@test "s and S:ARG without an s-expression are usage errors, not a substitution" {
	local spec
	for spec in 's' 'S:\' 's:' 'S:/a/b/'; do
		run -2 --separate-stderr "$TPROXY" tcp-listen:0 echo "$spec"
		contains "$spec" "$stderr"
	done
}

@test "--json listen names the bound address even when the host was a name" {
	start_tproxy --json tcp-listen:localhost:0 echo
	wait_for "$T/tproxy.out" '"event":"listen"'
	jq -se --argjson p "$PORT" '.[0] | (.addr == "127.0.0.1" or .addr == "::1") and .port == $p' "$T/tproxy.out"
}
