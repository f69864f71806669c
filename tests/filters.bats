#!/usr/bin/env bats
# tests/filters.bats - every filter as a user would use it: log, hexdump,
# s///, drop, answer, redirect, the keys that select connections (src=, dst=,
# dport=, dir=), and the echo target with a chain of filters.  Real upstream
# servers (tests/tools/filt_server.py, socat) and real clients (nc, socat,
# tests/tools/filt_client.py).

# shellcheck disable=SC2154 # $output, $stderr, $lines: set by bats' run
bats_require_minimum_version 1.5.0

load helper

CLIENT=$TOOLS/filt_client.py
SERVER=$TOOLS/filt_server.py

# same_bytes FILE PRINTF-FORMAT: FILE holds exactly the bytes of the format
same_bytes() {
	# shellcheck disable=SC2059
	printf -- "$2" >"$T/expected.bin"
	cmp -s "$T/expected.bin" "$1" && return 0
	echo "bytes differ; expected:" >&2
	od -c "$T/expected.bin" >&2
	echo "got ($1):" >&2
	od -c "$1" >&2
	return 1
}

# start_server NAME ARG...: tests/tools/filt_server.py in the background,
# logging what it receives to $T/NAME.log; sets SPORT once it listens
start_server() {
	local name=$1
	shift
	bg python3 "$SERVER" --log "$T/$name.log" "$@" "$T/$name.port"
	wait_for "$T/$name.port" '^[0-9a-z]+$' 10
	SPORT=$(cat "$T/$name.port")
}

# wait_bytes FILE N: wait (up to 10 s) until FILE holds N bytes
wait_bytes() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -ge "$2" ] && return 0
		sleep 0.05
	done
	echo "$1 did not reach $2 bytes:" >&2
	od -c "$1" >&2
	return 1
}

# client ARG...: run filt_client.py against 127.0.0.1:$PORT, its stdout in
# $output (stderr apart, in $stderr); the test fails if the client does
client() {
	run -0 --separate-stderr python3 "$CLIENT" 127.0.0.1 "$PORT" "$@"
}

# free_port: prints a port nothing listens on
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

TS_ISO='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z'
TS_HEX='[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}'

# --- log ----------------------------------------------------------------------

@test "log prints one line per chunk with id, direction, endpoints and byte count" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" log
	client 's:hello\n' 'u:hello\n' 's:hi!\n' 'u:hi!\n' shut eof
	[ "$output" = "$(printf 'hello\nhi!')" ]
	wait_for "$T/tproxy.out" ' s2c .* 4 bytes$'
	run -0 cat "$T/tproxy.out"
	[ "${#lines[@]}" -eq 4 ]
	local cp
	cp=$(sed -nE 's/.* c2s 127\.0\.0\.1:([0-9]+) > .*/\1/p' <<<"${lines[0]}")
	[ -n "$cp" ]
	[[ ${lines[0]} =~ ^$TS_ISO\ \#1\ c2s\ 127\.0\.0\.1:$cp\ \>\ 127\.0\.0\.1:$SPORT\ 6\ bytes$ ]]
	[[ ${lines[1]} =~ ^$TS_ISO\ \#1\ s2c\ 127\.0\.0\.1:$SPORT\ \>\ 127\.0\.0\.1:$cp\ 6\ bytes$ ]]
	[[ ${lines[2]} =~ ^$TS_ISO\ \#1\ c2s\ 127\.0\.0\.1:$cp\ \>\ 127\.0\.0\.1:$SPORT\ 4\ bytes$ ]]
	[[ ${lines[3]} =~ ^$TS_ISO\ \#1\ s2c\ 127\.0\.0\.1:$SPORT\ \>\ 127\.0\.0\.1:$cp\ 4\ bytes$ ]]
}

@test "log numbers connections and keeps them apart" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" log
	client 's:one\n' 'u:one\n' shut eof
	client 's:second\n' 'u:second\n' shut eof
	wait_for "$T/tproxy.out" '#2 s2c .* 7 bytes$'
	[ "$(grep -cE '^\S+ #1 (c2s .* 4|s2c .* 4) bytes$' "$T/tproxy.out")" -eq 2 ]
	[ "$(grep -cE '^\S+ #2 (c2s .* 7|s2c .* 7) bytes$' "$T/tproxy.out")" -eq 2 ]
}

@test "log with dir=c2s shows only the client's chunks" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" log,dir=c2s
	client 's:abc\n' 'u:abc\n' shut eof
	stop_tproxy
	run -0 cat "$T/tproxy.out"
	[ "${#lines[@]}" -eq 1 ]
	[[ ${lines[0]} == *" #1 c2s "*" 4 bytes" ]]
}

@test "log with --json gives one data event per chunk" {
	start_server up --echo
	start_tproxy --json tcp-listen:0 tcp:127.0.0.1:"$SPORT" log
	client 's:hello\n' 'u:hello\n' shut eof
	wait_for "$T/tproxy.out" '"event": ?"close"' 10
	run -0 jq -sc '[.[] | select(.event == "data") | [.conn, .dir, .bytes]]' "$T/tproxy.out"
	[ "$output" = '[[1,"c2s",6],[1,"s2c",6]]' ]
	jq -se --arg up "127.0.0.1:$SPORT" 'map(select(.event == "data")) |
		(.[0].dst == $up) and (.[1].src == $up) and (.[0].src == .[1].dst)
		and (.[0].src | startswith("127.0.0.1:")) and (.[0].time | type) == "string"' "$T/tproxy.out"
}

# --- hexdump --------------------------------------------------------------------

@test "hexdump prints the socat -v -x layout for each chunk" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" hexdump
	client 's:0123456789abcdef\x00\x01\xffXYZ' n:22 shut eof
	wait_for "$T/tproxy.out" '^< .* length=22 from=0 to=21$'
	stop_tproxy
	run -0 cat "$T/tproxy.out"
	[ "${#lines[@]}" -eq 8 ]
	[[ ${lines[0]} =~ ^\>\ $TS_HEX\ \ length=22\ from=0\ to=21$ ]]
	[ "${lines[1]}" = ' 30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66  0123456789abcdef' ]
	[ "${lines[2]}" = ' 00 01 ff 58 59 5a                                ...XYZ' ]
	[ "${lines[3]}" = '--' ]
	[[ ${lines[4]} =~ ^\<\ $TS_HEX\ \ length=22\ from=0\ to=21$ ]]
	[ "${lines[5]}" = "${lines[1]}" ]
	[ "${lines[6]}" = "${lines[2]}" ]
	[ "${lines[7]}" = '--' ]
}

@test "hexdump offsets continue across the chunks of each direction" {
	start_server up --greet 'Welcome\r\n'
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" hexdump
	client 'u:Welcome\r\n' 's:hello\n' "F:$T/tproxy.out:length=6" 's:world!\n' "F:$T/tproxy.out:length=7" shut eof
	[ "$output" = "$(printf 'Welcome\r')" ]
	stop_tproxy
	run -0 grep -E '^[<>] ' "$T/tproxy.out"
	[ "${#lines[@]}" -eq 3 ]
	[[ ${lines[0]} =~ ^\<\ $TS_HEX\ \ length=9\ from=0\ to=8$ ]]
	[[ ${lines[1]} =~ ^\>\ $TS_HEX\ \ length=6\ from=0\ to=5$ ]]
	[[ ${lines[2]} =~ ^\>\ $TS_HEX\ \ length=7\ from=6\ to=12$ ]]
	grep -qxF ' 57 65 6c 63 6f 6d 65 0d 0a                       Welcome..' "$T/tproxy.out"
	grep -qxF ' 68 65 6c 6c 6f 0a                                hello.' "$T/tproxy.out"
	grep -qxF ' 77 6f 72 6c 64 21 0a                             world!.' "$T/tproxy.out"
	[ "$(grep -cx -- '--' "$T/tproxy.out")" -eq 3 ]
}

@test "hexdump of an exact multiple of 16 bytes has no empty line" {
	start_tproxy tcp-listen:0 echo hexdump
	client 's:ABCDEFGHIJKLMNOPQRSTUVWXYZ012345' n:32 shut eof
	stop_tproxy
	run -0 cat "$T/tproxy.out"
	[ "${#lines[@]}" -eq 4 ]
	[ "${lines[1]}" = ' 41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50  ABCDEFGHIJKLMNOP' ]
	[ "${lines[2]}" = ' 51 52 53 54 55 56 57 58 59 5a 30 31 32 33 34 35  QRSTUVWXYZ012345' ]
	[ "${lines[3]}" = '--' ]
}

@test "hexdump writes no colour escapes when stdout is not a terminal" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" hexdump log
	client 's:colour?\n' 'u:colour?\n' shut eof
	wait_for "$T/tproxy.out" ' s2c '
	[ -s "$T/tproxy.out" ]
	run -1 grep -c $'\x1b' "$T/tproxy.out"
}

@test "hexdump with --json gives data events with the bytes in hex" {
	start_tproxy --json tcp-listen:0 echo hexdump
	client 's:Hi\n' 'u:Hi\n' shut eof
	wait_for "$T/tproxy.out" '"event": ?"data"'
	jq -se 'map(select(.event == "data")) | length == 1 and .[0].dir == "c2s" and .[0].bytes == 3
		and (.[0].hex | ascii_downcase | gsub("[^0-9a-f]"; "")) == "48690a"' "$T/tproxy.out"
}

@test "--json with log and hexdump writes nothing but JSON events on stdout" {
	start_server up --echo
	start_tproxy --json tcp-listen:0 tcp:127.0.0.1:"$SPORT" log hexdump
	client 's:json\n' 'u:json\n' shut eof
	wait_for "$T/tproxy.out" '"event": ?"close"' 10
	local line n=0
	while IFS= read -r line; do
		n=$((n + 1))
		jq -e 'type == "object" and (.event | type) == "string"' <<<"$line" >/dev/null || {
			echo "stdout line $n is not a JSON event: $line" >&2
			return 1
		}
	done <"$T/tproxy.out"
	# listen, accept, connect, 2 x (log + hexdump) data, close
	[ "$n" -eq 8 ]
	jq -se '[.[] | select(.event == "data" and .hex != null) | .dir] == ["c2s", "s2c"]' "$T/tproxy.out"
}

# --- s/// -------------------------------------------------------------------------

@test "s/// replaces a match in the requests the upstream receives" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/hello/howdy/'
	client 's:say hello\n' 'u:\n' shut eof
	same_bytes "$T/up.log" 'say howdy\n'
}

@test "s/// without g replaces only the first match in each direction of a connection" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/a/b/'
	# c2s: the first "a" only; s2c (the echo): again the first "a" only
	client 's:a a a\n' 'u:\n' 's:a2\n' 'u:2\n' shut eof
	same_bytes "$T/up.log" 'b a a\na2\n'
	[ "$output" = "$(printf 'b b a\na2')" ]
}

@test "s///g replaces every match" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/a/b/g'
	client 's:a a a\n' 'u:\n' 's:a2\n' 'u:2\n' shut eof
	same_bytes "$T/up.log" 'b b b\nb2\n'
	[ "$output" = "$(printf 'b b b\nb2')" ]
}

@test "s///i matches regardless of case" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/hello/bye/gi,dir=c2s'
	client 's:Hello HELLO hello hElLo\n' 'u:\n' shut eof
	same_bytes "$T/up.log" 'bye bye bye bye\n'
}

@test "s/// is case-sensitive without i" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/hello/bye/g,dir=c2s'
	client 's:Hello hello\n' 'u:\n' shut eof
	same_bytes "$T/up.log" 'Hello bye\n'
}

@test "s/// replacements take & and \\1..\\9 back-references" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/(\w+)@(\w+)/\2 at \1 [&]/g,dir=c2s'
	client 's:mail joe@host and ann@box\n' 'u:\n' shut eof
	same_bytes "$T/up.log" 'mail host at joe [joe@host] and box at ann [ann@box]\n'
}

@test "s/// takes any delimiter, as in sed: s|/api|/v2|" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's|/api/|/v2/|g,dir=c2s'
	client 's:GET /api/users /api/x HTTP/1.0\r\n' 'u:\n' shut eof
	same_bytes "$T/up.log" 'GET /v2/users /v2/x HTTP/1.0\r\n'
}

@test "s/// with # as delimiter keeps slashes literal" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's#a/b#c/d#,dir=c2s'
	client 's:x a/b y\n' 'u:\n' shut eof
	same_bytes "$T/up.log" 'x c/d y\n'
}

@test "s/// replacements may contain commas" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/;/,/g,dir=c2s' 's/x/a,b,c/'
	client 's:1;2;x\n' 'u:\n' shut eof
	same_bytes "$T/up.log" '1,2,a,b,c\n'
}

@test "s/// replacements understand C escapes \\r \\n \\t \\\\ \\xHH" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/X/\r\n\x41\t\\\x00/,dir=c2s'
	client 's:aXb\n' 'u:b\n' shut eof
	same_bytes "$T/up.log" 'a\r\nA\t\\\000b\n'
}

@test "s/// replaces a match split across two writes" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" log 's/hello/HOWDY/,dir=c2s'
	# the log line proves "hel" went through tproxy as a chunk of its own
	client 's:say hel' "F:$T/tproxy.out:7 bytes" w:0.2 's:lo there\n' 'u:\n' shut eof
	same_bytes "$T/up.log" 'say HOWDY there\n'
	[ "$(grep -c ' c2s ' "$T/tproxy.out")" -eq 2 ]
}

@test "s/// flushes held bytes after a short time so a prompt is never held" {
	start_server up --greet 'login: hel'
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/hello/HELLO/'
	# "hel" may begin "hello": held back, then flushed (well within 3 s)
	client t:3 'u:login: hel'
	[ "$output" = 'login: hel' ]
}

@test "s/// flushes held client bytes after a short time too" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/hello/HELLO/,dir=c2s'
	client 's:hel' t:3 'u:hel'
	same_bytes "$T/up.log" 'hel'
}

@test "s/// flushes held bytes at EOF" {
	start_server up --echo
	# flush=60000: the idle flush cannot be what sends "hel" on
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/hello/HELLO/,flush=60000'
	client 's:hel' shut t:10 eof
	[ "$output" = hel ]
	same_bytes "$T/up.log" 'hel'
}

@test "s/// with dir=c2s rewrites requests only" {
	start_server up --greet 'secret from server\n'
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/secret/XXXXXX/g,dir=c2s'
	client 'u:\n' 's:my secret\n' shut eof
	[ "$output" = 'secret from server' ]
	same_bytes "$T/up.log" 'my XXXXXX\n'
}

@test "s/// with dir=s2c rewrites responses only" {
	start_server up --greet 'secret from server\n'
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/secret/XXXXXX/g,dir=s2c'
	client 'u:\n' 's:my secret\n' shut eof
	[ "$output" = 'XXXXXX from server' ]
	same_bytes "$T/up.log" 'my secret\n'
}

@test "s/// replacements may change the length of a stream relayed to the end" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/o/ooo/g,dir=c2s'
	python3 -c 'import sys; sys.stdout.write("foo\n" * 20000)' >"$T/big.txt"
	timeout 20 nc -N 127.0.0.1 "$PORT" <"$T/big.txt" >"$T/back.txt"
	[ "$(stat -c %s "$T/back.txt")" -eq 160000 ]
	wait_bytes "$T/up.log" 160000
	[ "$(stat -c %s "$T/up.log")" -eq 160000 ]
	[ "$(sort -u "$T/up.log")" = foooooo ]
}

# --- drop ---------------------------------------------------------------------------

@test "drop:REGEX discards matching chunks and the connection stays open" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" log 'drop:^DROP,dir=c2s'
	client 's:keep1\n' 'u:keep1\n' 's:DROPME\n' "F:$T/tproxy.out:7 bytes" 's:keep2\n' 'u:keep2\n' shut eof
	[ "$output" = "$(printf 'keep1\nkeep2')" ]
	same_bytes "$T/up.log" 'keep1\nkeep2\n'
}

@test "drop without a regex discards every chunk in its direction" {
	start_server up --greet 'banner\n' --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" drop,dir=s2c
	# nothing comes back, yet the requests reach the upstream
	client 's:one\n' t:10 "F:$T/up.log:one" quiet:0.3 's:two\n' "F:$T/up.log:two" shut eof
	[ -z "$output" ]
	same_bytes "$T/up.log" 'one\ntwo\n'
}

@test "drop on the client side keeps the connection usable for the server" {
	start_server up --greet 'hello\n' --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" drop,dir=c2s
	client 'u:hello\n' 's:ignored\n' quiet:0.3 shut eof
	[ "$output" = hello ]
	[ ! -s "$T/up.log" ]
}

# --- answer -------------------------------------------------------------------------

@test "answer:TEXT with match= replies instead of forwarding and the connection stays open" {
	start_server up --echo --tag 'up:'
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" \
		'answer:HTTP/1.0 403 Forbidden\r\n\r\n,match=^GET /admin'
	client 's:GET /admin HTTP/1.0\r\n\r\n' 'u:\r\n\r\n' 's:GET /ok\n' 'u:/ok\n' shut eof
	[ "$output" = "$(printf 'HTTP/1.0 403 Forbidden\r\n\r\nup:GET /ok')" ]
	same_bytes "$T/up.log" 'GET /ok\n'
}

@test "answer TEXT may contain commas; match= after it is still a key" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" \
		'answer:HTTP/1.0 200 OK\r\nVary: a,b\r\n\r\n,match=^GET'
	client 's:GET / HTTP/1.0\r\n\r\n' 'u:\r\n\r\n' 's:PUT\n' 'u:PUT\n' shut eof
	[ "$output" = "$(printf 'HTTP/1.0 200 OK\r\nVary: a,b\r\n\r\nPUT')" ]
	same_bytes "$T/up.log" 'PUT\n'
}

@test "answer:@FILE replies with the contents of FILE" {
	start_server up --echo --tag 'up:'
	printf 'canned reply\nline two\n' >"$T/reply.txt"
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" "answer:@$T/reply.txt,match=ping"
	client 's:ping\n' 'u:two\n' 's:pong\n' 'u:up:pong\n' shut eof
	[ "$output" = "$(printf 'canned reply\nline two\nup:pong')" ]
	same_bytes "$T/up.log" 'pong\n'
}

@test "answer:@FILE of a missing file is an error at start that names the file" {
	run --separate-stderr timeout 10 "$TPROXY" tcp-listen:0 echo "answer:@$T/missing.txt"
	[ "$status" -eq 1 ] || [ "$status" -eq 2 ]
	contains "$T/missing.txt" "$stderr"
	lacks 'listening on' "$stderr"
}

@test "answer without match= answers every chunk" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 'answer:nope\n'
	client 's:a\n' 'u:nope\n' 's:b\n' 'u:nope\nnope\n' shut eof
	[ "$output" = "$(printf 'nope\nnope')" ]
	[ ! -s "$T/up.log" ]
}

@test "answer with dir=s2c replies to the server, which sent the chunk" {
	start_server up --greet 'PING\n'
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 'answer:PONG\n,dir=s2c,match=^PING'
	# the server's PING is answered by tproxy and never reaches the client
	client "F:$T/up.log:PONG" quiet:0.3 's:after\n' "F:$T/up.log:after" shut eof
	[ -z "$output" ]
	same_bytes "$T/up.log" 'PONG\nafter\n'
}

@test "answer with the echo target replies to the client" {
	start_tproxy tcp-listen:0 echo 'answer:PONG\n,match=^PING'
	client 's:PING\n' 'u:PONG\n' 's:other\n' 'u:other\n' shut eof
	[ "$output" = "$(printf 'PONG\nother')" ]
}

# --- redirect -----------------------------------------------------------------------

@test "redirect with match= sends a connection to another upstream on its first bytes" {
	start_server a --echo --tag A:
	local pa=$SPORT
	start_server b --echo --tag B:
	local pb=$SPORT
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$pa" "redirect:127.0.0.1:$pb,match=^SSH-"
	client 's:SSH-2.0-test\n' 'u:\n' shut eof
	[ "$output" = 'B:SSH-2.0-test' ]
	client 's:GET / HTTP/1.0\n' 'u:\n' shut eof
	[ "$output" = 'A:GET / HTTP/1.0' ]
	same_bytes "$T/b.log" 'SSH-2.0-test\n'
	same_bytes "$T/a.log" 'GET / HTTP/1.0\n'
}

@test "redirect with match= keeps the whole stream on the chosen upstream" {
	start_server a --echo --tag A:
	local pa=$SPORT
	start_server b --echo --tag B:
	local pb=$SPORT
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$pa" "redirect:127.0.0.1:$pb,match=^SSH-"
	client 's:SSH-2.0\n' 'u:\n' 's:more\n' 'u:more\n' 's:SSH-again\n' 'u:again\n' shut eof
	[ "$output" = "$(printf 'B:SSH-2.0\nB:more\nB:SSH-again')" ]
	[ ! -s "$T/a.log" ]
}

@test "redirect with match= and a silent client falls back to the normal target" {
	start_server a --greet 'A-banner\n'
	local pa=$SPORT
	start_server b --greet 'B-banner\n'
	local pb=$SPORT
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$pa" "redirect:127.0.0.1:$pb,match=^SSH-"
	client t:10 'u:\n' shut eof
	[ "$output" = A-banner ]
}

@test "redirect with dport= sends connections to that port elsewhere" {
	start_server a --echo --tag A:
	local pa=$SPORT
	start_server b --echo --tag B:
	local pb=$SPORT
	local fp
	fp=$(free_port)
	start_tproxy tcp-listen:127.0.0.1:"$fp" tcp:127.0.0.1:"$pa" "redirect:127.0.0.1:$pb,dport=$fp" \
		+ tcp-listen:0 tcp:127.0.0.1:"$pa" "redirect:127.0.0.1:$pb,dport=$fp"
	# the first route's port is $fp: redirected
	PORT=$fp
	client 's:x\n' 'u:\n' shut eof
	[ "$output" = B:x ]
	# the second route's port is not: the normal target
	PORT=$(sed -n 2p <<<"$PORTS")
	client 's:y\n' 'u:\n' shut eof
	[ "$output" = A:y ]
}

# --- keys that select connections: src=, dst= ---------------------------------------

@test "src= and dst= that match the connection let the filter act" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" \
		's/a/A/g,dir=c2s,src=127.0.0.0/8' 's/b/B/g,dir=c2s,dst=127.0.0.1/32' 's/c/C/g,dir=c2s,src=127.0.0.1'
	client 's:abc\n' 'u:\n' shut eof
	same_bytes "$T/up.log" 'ABC\n'
}

@test "src= and dst= that do not match the connection leave the bytes alone" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" \
		's/a/A/g,dir=c2s,src=10.0.0.0/8' 's/b/B/g,dir=c2s,dst=127.0.0.2/32' 's/c/C/g,dir=c2s,src=::1/128' log,src=192.168.0.0/16
	client 's:abc\n' 'u:\n' shut eof
	same_bytes "$T/up.log" 'abc\n'
	[ ! -s "$T/tproxy.out" ]
}

@test "src= tells clients apart by their own address" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/hi/HI/,dir=c2s,src=127.0.0.2/32'
	run -0 --separate-stderr timeout 10 socat -t 5 - TCP:127.0.0.1:"$PORT",bind=127.0.0.2 <<<"hi"
	[ "$output" = 'HI' ]
	run -0 --separate-stderr timeout 10 socat -t 5 - TCP:127.0.0.1:"$PORT",bind=127.0.0.1 <<<"hi"
	[ "$output" = 'hi' ]
}

@test "dport= selects connections by the port the client connected to" {
	start_server up --echo
	local fp
	fp=$(free_port)
	start_tproxy tcp-listen:127.0.0.1:"$fp" tcp:127.0.0.1:"$SPORT" "s/x/y/,dir=c2s,dport=$fp" "s/x/z/,dir=c2s,dport=1"
	PORT=$fp
	client 's:xx\n' 'u:\n' shut eof
	[ "$output" = yx ]
}

# --- the echo target and filter chains -----------------------------------------------

@test "the echo target runs several filters in the order given" {
	start_tproxy tcp-listen:0 echo log 's/a/b/g' 's/b/c/g' hexdump
	run -0 --separate-stderr timeout 10 nc -N 127.0.0.1 "$PORT" <<<"ab"
	# in this order: ab -> bb -> cc; the other way round would give bc
	[ "$output" = cc ]
	wait_for "$T/tproxy.out" '^--$'
	run -0 cat "$T/tproxy.out"
	[ "${#lines[@]}" -eq 4 ]
	[[ ${lines[0]} =~ ^$TS_ISO\ \#1\ c2s\ .*\ 3\ bytes$ ]]
	[[ ${lines[1]} =~ ^\>\ $TS_HEX\ \ length=3\ from=0\ to=2$ ]]
	[ "${lines[2]}" = ' 63 63 0a                                         cc.' ]
	[ "${lines[3]}" = '--' ]
}

@test "filters see what the filters before them produced" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" 's/secret/[redacted]/g,dir=c2s' log,dir=c2s 'drop:redacted,dir=c2s'
	client 's:a secret\n' "F:$T/tproxy.out:bytes" 's:public\n' 'u:public\n' shut eof
	[ "$output" = public ]
	same_bytes "$T/up.log" 'public\n'
	grep -qE ' c2s .* 13 bytes$' "$T/tproxy.out"
}

@test "the echo target with nc: the client's bytes come back through the filters" {
	start_tproxy tcp-listen:0 echo 's/ping/pong/'
	run -0 --separate-stderr timeout 10 nc -N 127.0.0.1 "$PORT" <<<"ping ping"
	[ "$output" = 'pong ping' ]
}
