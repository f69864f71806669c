#!/usr/bin/env bats
# tests/udp.bats - UDP routes as a user runs them: dig through tproxy in front
# of a real dnsmasq, one session per client address, session expiry and
# --max-conns, every filter on datagrams, IPv4/IPv6 crossings, UDP and TCP
# routes in one process, and faults (ICMP port unreachable, 65,507-byte
# datagrams, usage errors).  Upstream servers and clients are
# tests/tools/udp_tool.py, dnsmasq and dig.

# shellcheck disable=SC2154 # $stderr is set by run --separate-stderr
bats_require_minimum_version 1.5.0

load helper

UDP=$TOOLS/udp_tool.py

TS_HEX='[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}'

# udp_server NAME ARG...: udp_tool.py server in the background, logging each
# datagram it receives to $T/NAME.log; sets SPORT once it is bound
udp_server() {
	local name=$1
	shift
	bg python3 "$UDP" server --log "$T/$name.log" "$@" "$T/$name.port"
	wait_for "$T/$name.port" '^[0-9]+$' 10
	SPORT=$(cat "$T/$name.port")
	touch "$T/$name.log"
}

# udp_client ARG...: udp_tool.py client; its stdout in $output, its stderr
# apart in $stderr; the test fails unless the client exits 0
udp_client() {
	run -0 --separate-stderr python3 "$UDP" client "$@"
}

# received NAME: the datagrams server NAME received, one escaped per line
received() {
	cut -d ' ' -f 3- "$T/$1.log"
}

# free_udp_port: prints a UDP port on 127.0.0.1 that nothing is bound to
free_udp_port() {
	python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# events NAME: the JSON events called NAME in $T/tproxy.out, one per line
events() {
	jq -c --arg e "$1" 'select(.event == $e)' "$T/tproxy.out"
}

# count_events NAME: how many JSON events NAME $T/tproxy.out holds
count_events() {
	jq -c --arg e "$1" 'select(.event == $e)' "$T/tproxy.out" | wc -l
}

# wait_events NAME N [SECONDS]: wait until $T/tproxy.out holds N events NAME
wait_events() {
	local i
	for ((i = 0; i < ${3:-10} * 20; i++)); do
		[ "$(count_events "$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	echo "timed out waiting for $2 '$1' events:" >&2
	cat "$T/tproxy.out" >&2
	return 1
}

# dump_hex DIR FILE: the bytes of every hexdump block of direction DIR
# (">" or "<") in FILE, in hex, one block per line
dump_hex() {
	awk -v d="$1" '
		/^[<>] / { cur = substr($0, 1, 1); hex = ""; next }
		$0 == "--" { if (cur == d) print hex; cur = ""; next }
		cur != "" { h = substr($0, 1, 48); gsub(/ /, "", h); hex = hex h }
	' "$2"
}

# start_dnsmasq: dnsmasq on 127.0.0.1 answering example.test with 192.0.2.7;
# sets DNSPORT once it answers.  dnsmasq takes the port for TCP too, which
# free_udp_port() does not check and another test's socket may hold: on
# "Address already in use" it tries another port (three tries).
start_dnsmasq() {
	local i try
	for ((try = 0; try < 3; try++)); do
		DNSPORT=$(free_udp_port)
		bg dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts \
			--port="$DNSPORT" --listen-address=127.0.0.1 --bind-interfaces \
			--address=/example.test/192.0.2.7 --pid-file="$T/dnsmasq.pid" \
			--user=root >"$T/dnsmasq.log" 2>&1
		for ((i = 0; i < 20; i++)); do
			[ "$(dig @127.0.0.1 -p "$DNSPORT" example.test +short +tries=1 \
				+time=1 2>/dev/null)" = 192.0.2.7 ] && return 0
			kill -0 "$BG_PID" 2>/dev/null || break
			sleep 0.1
		done
		grep -q 'Address already in use' "$T/dnsmasq.log" || break
		wait_gone "$BG_PID" 3 || kill -KILL "$BG_PID" 2>/dev/null || true
	done
	echo "dnsmasq does not answer on port $DNSPORT:" >&2
	cat "$T/dnsmasq.log" >&2
	return 1
}

# --- a real DNS exchange -------------------------------------------------------

@test "dig through udp-listen in front of dnsmasq gets the address, and hexdump shows query and reply" {
	start_dnsmasq
	start_tproxy udp-listen:0 udp:127.0.0.1:"$DNSPORT" hexdump
	contains "listening on udp 127.0.0.1:$PORT -> udp 127.0.0.1:$DNSPORT" "$(cat "$T/tproxy.err")"
	run -0 dig @127.0.0.1 -p "$PORT" example.test +short +tries=1 +time=2
	[ "$output" = 192.0.2.7 ]
	wait_for "$T/tproxy.out" '^< '
	wait_for "$T/tproxy.out" '^--$'
	stop_tproxy
	[ "$TP_STATUS" -eq 0 ]
	# one query, one reply, each a whole block in the socat -v -x layout
	run -0 grep -E '^[<>] ' "$T/tproxy.out"
	[ "${#lines[@]}" -eq 2 ]
	[[ ${lines[0]} =~ ^\>\ $TS_HEX\ \ length=([0-9]+)\ from=0\ to=([0-9]+)$ ]]
	qlen=${BASH_REMATCH[1]}
	[ "${BASH_REMATCH[2]}" -eq $((qlen - 1)) ]
	[[ ${lines[1]} =~ ^\<\ $TS_HEX\ \ length=([0-9]+)\ from=0\ to=([0-9]+)$ ]]
	rlen=${BASH_REMATCH[1]}
	[ "$rlen" -gt "$qlen" ]
	# the dumped bytes: the query name both ways, 192.0.2.7 in the reply
	run -0 dump_hex '>' "$T/tproxy.out"
	[ "${#lines[@]}" -eq 1 ]
	[ "${#lines[0]}" -eq $((qlen * 2)) ]
	contains 076578616d706c650474657374000001 "${lines[0]}"
	run -0 dump_hex '<' "$T/tproxy.out"
	[ "${#lines[@]}" -eq 1 ]
	[ "${#lines[0]}" -eq $((rlen * 2)) ]
	contains 076578616d706c650474657374000001 "${lines[0]}"
	contains 0004c0000207 "${lines[0]}"
}

# --- sessions ------------------------------------------------------------------

@test "two clients talking at once each get only their own replies, through a session each" {
	udp_server up --peer
	start_tproxy --json udp-listen:0 udp:127.0.0.1:"$SPORT"
	bg python3 "$UDP" client --repeat 40 --gap 10 --expect 40 --linger 0.3 \
		127.0.0.1 "$PORT" from-A >"$T/a.out"
	a=$BG_PID
	bg python3 "$UDP" client --repeat 40 --gap 10 --expect 40 --linger 0.3 \
		127.0.0.1 "$PORT" from-B >"$T/b.out"
	b=$BG_PID
	wait "$a"
	wait "$b"
	# every reply is the client's own datagram, and all of a client's
	# datagrams reached the server from one upstream address (its session)
	run -0 sort -u "$T/a.out"
	[ "${#lines[@]}" -eq 1 ]
	[[ ${lines[0]} =~ ^peer=127\.0\.0\.1:([0-9]+)\ from-A$ ]]
	pa=${BASH_REMATCH[1]}
	[ "$(wc -l <"$T/a.out")" -eq 40 ]
	run -0 sort -u "$T/b.out"
	[ "${#lines[@]}" -eq 1 ]
	[[ ${lines[0]} =~ ^peer=127\.0\.0\.1:([0-9]+)\ from-B$ ]]
	pb=${BASH_REMATCH[1]}
	[ "$(wc -l <"$T/b.out")" -eq 40 ]
	[ "$pa" != "$pb" ]
	# two sessions, each connected upstream from the port the server saw
	[ "$(count_events accept)" -eq 2 ]
	run -0 jq -s -r '[.[] | select(.event == "connect") | .src] | sort | join(" ")' "$T/tproxy.out"
	[ "$output" = "$(printf '127.0.0.1:%s\n' "$pa" "$pb" | sort | paste -sd ' ')" ]
}

@test "--udp-timeout=1 ends an idle session with a close event counting bytes and datagrams per direction" {
	udp_server up --echo --tag 'ok:'
	start_tproxy --json --udp-timeout=1 udp-listen:0 udp:127.0.0.1:"$SPORT"
	base=$(fd_count "$TP_PID")
	udp_client --expect 3 --gap 50 --portfile "$T/c.port" 127.0.0.1 "$PORT" one two three
	[ "$output" = "$(printf 'ok:one\nok:two\nok:three')" ]
	cport=$(cat "$T/c.port")
	wait_events close 1 10
	run -0 events close
	[ "${#lines[@]}" -eq 1 ]
	echo "${lines[0]}" | jq -e --arg src "127.0.0.1:$cport" '
		.conn == 1 and .src == $src and
		.bytes_c2s == 11 and .bytes_s2c == 20 and
		.chunks_c2s == 3 and .chunks_s2c == 3 and
		.duration_ms >= 900'
	# the session's upstream socket is gone
	[ "$(fd_count "$TP_PID")" -eq "$base" ]
	# the same client comes back: a new session serves it
	udp_client --expect 1 --bind "$cport" 127.0.0.1 "$PORT" again
	[ "$output" = ok:again ]
	[ "$(count_events accept)" -eq 2 ]
	events accept | tail -n 1 | jq -e '.conn == 2'
}

@test "--max-conns=2 drops a third client's datagram with a reason, and serves it once the others expire" {
	udp_server up --echo
	start_tproxy --json --max-conns=2 --udp-timeout=3 udp-listen:0 udp:127.0.0.1:"$SPORT"
	base=$(fd_count "$TP_PID")
	udp_client --expect 1 127.0.0.1 "$PORT" first
	[ "$output" = first ]
	udp_client --expect 1 127.0.0.1 "$PORT" second
	[ "$output" = second ]
	# the third client gets nothing back, and nothing reaches the server
	run -1 --separate-stderr python3 "$UDP" client --expect 1 --timeout 1 \
		--portfile "$T/c3.port" 127.0.0.1 "$PORT" third
	[ "$output" = "" ]
	c3=$(cat "$T/c3.port")
	wait_for "$T/tproxy.err" "127\.0\.0\.1:$c3.*max-conns"
	kill -0 "$TP_PID"
	[ "$(received up)" = "$(printf 'first\nsecond')" ]
	[ "$(count_events accept)" -eq 2 ]
	# no socket for the third (on a slow machine the first two may have
	# expired already: at most two sessions' sockets)
	[ "$(fd_count "$TP_PID")" -le $((base + 2)) ]
	# both sessions expire; their upstream sockets go
	wait_events close 2 15
	[ "$(fd_count "$TP_PID")" -eq "$base" ]
	# now the third client, from the same address, is served
	udp_client --expect 1 --bind "$c3" 127.0.0.1 "$PORT" third
	[ "$output" = third ]
	events accept | tail -n 1 | jq -e --arg src "127.0.0.1:$c3" '.src == $src'
}

@test "a session with a datagram at least every 300 ms outlives --udp-timeout=1" {
	udp_server up --echo
	start_tproxy --json --udp-timeout=1 udp-listen:0 udp:127.0.0.1:"$SPORT"
	udp_client --expect 8 --repeat 8 --gap 300 127.0.0.1 "$PORT" tick
	[ "$(echo "$output" | grep -cx tick)" -eq 8 ]
	[ "$(count_events accept)" -eq 1 ]
	[ "$(count_events close)" -eq 0 ]
	wait_events close 1 10
	events close | jq -e '.chunks_c2s == 8 and .chunks_s2c == 8'
}

@test "a hundred clients at once each get their own replies, and every session expires" {
	udp_server up --echo --tag 'srv:'
	start_tproxy --json --udp-timeout=1 udp-listen:0 udp:127.0.0.1:"$SPORT"
	base=$(fd_count "$TP_PID")
	udp_client --sockets 100 --expect 2 --gap 20 127.0.0.1 "$PORT" ping pong
	[ "${#lines[@]}" -eq 200 ]
	# socket I got back exactly its own two datagrams
	[ "$(echo "$output" | awk '$2 != "srv:ping#" $1 && $2 != "srv:pong#" $1' | wc -l)" -eq 0 ]
	[ "$(echo "$output" | cut -d ' ' -f 1 | sort -u | wc -l)" -eq 100 ]
	[ "$(count_events accept)" -eq 100 ]
	wait_events close 100 20
	[ "$(fd_count "$TP_PID")" -eq "$base" ]
	[ "$(jq -s '[.[] | select(.event == "close") | .chunks_c2s] | unique' "$T/tproxy.out" | jq -c .)" = '[2]' ]
}

@test "an empty datagram is forwarded both ways as a datagram" {
	udp_server up --echo --tag 'e:'
	start_tproxy --json udp-listen:0 udp:127.0.0.1:"$SPORT"
	udp_client --expect 2 --gap 50 127.0.0.1 "$PORT" '' x
	[ "$output" = "$(printf 'e:\ne:x')" ]
	[ "$(cut -d ' ' -f 1 "$T/up.log" | paste -sd ' ')" = '0 1' ]
}

# --- filters: one datagram is one chunk ------------------------------------------

@test "log prints one line per datagram, even for datagrams read in one batch" {
	udp_server up --echo
	start_tproxy udp-listen:0 udp:127.0.0.1:"$SPORT" log
	udp_client --expect 3 --portfile "$T/c.port" 127.0.0.1 "$PORT" ab cdef ghijkl
	[ "$output" = "$(printf 'ab\ncdef\nghijkl')" ]
	c=127.0.0.1:$(cat "$T/c.port")
	wait_for "$T/tproxy.out" ' s2c .* 6 bytes$'
	run -0 grep ' c2s ' "$T/tproxy.out"
	[ "${#lines[@]}" -eq 3 ]
	[[ ${lines[0]} == *" #1 c2s $c > 127.0.0.1:$SPORT 2 bytes" ]]
	[[ ${lines[1]} == *" #1 c2s $c > 127.0.0.1:$SPORT 4 bytes" ]]
	[[ ${lines[2]} == *" #1 c2s $c > 127.0.0.1:$SPORT 6 bytes" ]]
	run -0 grep ' s2c ' "$T/tproxy.out"
	[ "${#lines[@]}" -eq 3 ]
	[[ ${lines[0]} == *" #1 s2c 127.0.0.1:$SPORT > $c 2 bytes" ]]
	[[ ${lines[2]} == *" #1 s2c 127.0.0.1:$SPORT > $c 6 bytes" ]]
}

@test "hexdump dumps each datagram as a block of its own" {
	udp_server up --echo
	start_tproxy udp-listen:0 udp:127.0.0.1:"$SPORT" hexdump
	udp_client --expect 2 127.0.0.1 "$PORT" hello 'world!\x00'
	wait_for "$T/tproxy.out" '^< .* length=7 '
	wait_for "$T/tproxy.out" '^--$'
	stop_tproxy
	run -0 grep -E '^> ' "$T/tproxy.out"
	[ "${#lines[@]}" -eq 2 ]
	[[ ${lines[0]} =~ ^\>\ $TS_HEX\ \ length=5\ from=0\ to=4$ ]]
	[[ ${lines[1]} =~ ^\>\ $TS_HEX\ \ length=7\  ]]
	run -0 grep -E '^< ' "$T/tproxy.out"
	[ "${#lines[@]}" -eq 2 ]
	[[ ${lines[0]} =~ ^\<\ $TS_HEX\ \ length=5\ from=0\ to=4$ ]]
	[[ ${lines[1]} =~ ^\<\ $TS_HEX\ \ length=7\  ]]
	[ "$(grep -cxF ' 68 65 6c 6c 6f                                   hello' "$T/tproxy.out")" -eq 2 ]
	[ "$(grep -cxF ' 77 6f 72 6c 64 21 00                             world!.' "$T/tproxy.out")" -eq 2 ]
	[ "$(grep -cx -- '--' "$T/tproxy.out")" -eq 4 ]
}

@test "s/a/b/ without g replaces the first match of each datagram, both ways" {
	udp_server up --echo
	start_tproxy udp-listen:0 udp:127.0.0.1:"$SPORT" s/a/b/
	udp_client --expect 3 --gap 50 127.0.0.1 "$PORT" banana aaa xyz
	# c2s: the server got each datagram with its first a replaced
	[ "$(received up)" = "$(printf 'bbnana\nbaa\nxyz')" ]
	# s2c: the echoes had their own first a replaced again
	[ "$output" = "$(printf 'bbnbna\nbba\nxyz')" ]
}

@test "s/a/b/g replaces every match in each datagram" {
	udp_server up --echo
	start_tproxy udp-listen:0 udp:127.0.0.1:"$SPORT" s/a/b/g,dir=c2s
	udp_client --expect 2 --gap 50 127.0.0.1 "$PORT" banana aaa
	[ "$(received up)" = "$(printf 'bbnbnb\nbbb')" ]
	[ "$output" = "$(printf 'bbnbnb\nbbb')" ]
}

@test "s/// holds nothing back on UDP: a partial match passes at once and unchanged" {
	udp_server up --echo
	start_tproxy udp-listen:0 udp:127.0.0.1:"$SPORT" 's/hello/bye/,flush=60000'
	# a datagram that could start a match arrives whole, well before the
	# minute a stream would hold it for
	udp_client --expect 1 --timeout 5 127.0.0.1 "$PORT" hel
	[ "$output" = hel ]
	# two datagrams that together spell the pattern are not joined
	udp_client --expect 3 --timeout 5 127.0.0.1 "$PORT" hel lo hello
	[ "$output" = "$(printf 'hel\nlo\nbye')" ]
	[ "$(received up)" = "$(printf 'hel\nhel\nlo\nbye')" ]
}

@test "drop:REGEX discards matching datagrams and the session goes on" {
	udp_server up --echo
	start_tproxy --json udp-listen:0 udp:127.0.0.1:"$SPORT" drop:secret,dir=c2s
	udp_client --expect 2 --gap 50 --linger 0.5 127.0.0.1 "$PORT" keep1 'a secret' keep2
	[ "$output" = "$(printf 'keep1\nkeep2')" ]
	[ "$(received up)" = "$(printf 'keep1\nkeep2')" ]
	[ "$(count_events accept)" -eq 1 ]
	[ "$(count_events close)" -eq 0 ]
}

@test "answer:TEXT,match=REGEX replies from the listening address and forwards the rest" {
	udp_server up --echo --tag 'srv:'
	start_tproxy udp-listen:0 udp:127.0.0.1:"$SPORT" 'answer:pong\n,match=^ping'
	udp_client --expect 3 --gap 50 --from-addr 127.0.0.1 "$PORT" ping hello ping
	[ "$output" = "$(printf '127.0.0.1:%s pong\\n\n127.0.0.1:%s srv:hello\n127.0.0.1:%s pong\\n' "$PORT" "$PORT" "$PORT")" ]
	# the answered datagrams never reached the server
	[ "$(received up)" = hello ]
}

@test "redirect:HOST:PORT,match=REGEX sends a session elsewhere, decided on its first datagram" {
	udp_server main --echo --tag 'main:'
	main=$SPORT
	udp_server other --echo --tag 'other:'
	other=$SPORT
	start_tproxy --json udp-listen:0 udp:127.0.0.1:"$main" "redirect:127.0.0.1:$other,match=^special"
	# first datagram matches: the whole session goes to the other server
	udp_client --expect 2 --gap 50 127.0.0.1 "$PORT" 'special 1' 'plain 2'
	[ "$output" = "$(printf 'other:special 1\nother:plain 2')" ]
	# first datagram does not match: a later match changes nothing
	udp_client --expect 2 --gap 50 127.0.0.1 "$PORT" 'plain 1' 'special 2'
	[ "$output" = "$(printf 'main:plain 1\nmain:special 2')" ]
	[ "$(received other)" = "$(printf 'special 1\nplain 2')" ]
	[ "$(received main)" = "$(printf 'plain 1\nspecial 2')" ]
	run -0 jq -s -r '[.[] | select(.event == "connect") | "\(.conn) \(.dst)"] | join(",")' "$T/tproxy.out"
	[ "$output" = "1 127.0.0.1:$other,2 127.0.0.1:$main" ]
}

@test "--json events carry the session id of their client" {
	udp_server up --echo
	start_tproxy --json udp-listen:0 udp:127.0.0.1:"$SPORT" log
	udp_client --expect 2 --portfile "$T/a.port" 127.0.0.1 "$PORT" a1 a2
	udp_client --expect 1 --portfile "$T/b.port" 127.0.0.1 "$PORT" b1
	a=127.0.0.1:$(cat "$T/a.port")
	b=127.0.0.1:$(cat "$T/b.port")
	wait_events data 6
	jq -se --arg a "$a" --arg b "$b" '
		([.[] | select(.event == "accept" and .src == $a)][0].conn) as $ca |
		([.[] | select(.event == "accept" and .src == $b)][0].conn) as $cb |
		([.[] | select(.event == "accept")] | length == 2) and
		$ca != null and $cb != null and $ca != $cb and
		([.[] | select(.event == "connect") | .conn] | sort == ([$ca, $cb] | sort)) and
		([.[] | select(.event == "data" and .conn == $ca)] |
			length == 4 and all(.dir == "c2s" and .src == $a or .dir == "s2c" and .dst == $a)) and
		([.[] | select(.event == "data" and .conn == $cb)] |
			length == 2 and all(.dir == "c2s" and .src == $b or .dir == "s2c" and .dst == $b))
	' "$T/tproxy.out"
}

# --- address families and several routes ---------------------------------------

@test "an IPv4 client reaches an IPv6 server through udp:[::1]:PORT" {
	udp_server up --host ::1 --peer
	start_tproxy udp-listen:0 udp:[::1]:"$SPORT"
	contains "-> udp [::1]:$SPORT" "$(cat "$T/tproxy.err")"
	udp_client --expect 1 --from-addr 127.0.0.1 "$PORT" hi6
	[[ $output =~ ^127\.0\.0\.1:$PORT\ peer=\[::1\]:[0-9]+\ hi6$ ]]
}

@test "an IPv6 listener udp-listen:[::1]:0 serves an IPv4 server" {
	udp_server up --peer
	start_tproxy udp-listen:[::1]:0 udp:127.0.0.1:"$SPORT"
	contains "listening on udp [::1]:$PORT" "$(cat "$T/tproxy.err")"
	udp_client --expect 1 --from-addr ::1 "$PORT" hi4
	[[ $output =~ ^\[::1\]:$PORT\ peer=127\.0\.0\.1:[0-9]+\ hi4$ ]]
}

@test "udp-l and an upper-case UDP-LISTEN are the same listener, and echo serves as target" {
	start_tproxy udp-l:0 echo s/a/b/ + UDP-LISTEN:0 ECHO
	read -r p1 p2 <<<"$(echo $PORTS)"
	[ -n "$p2" ]
	udp_client --expect 2 --gap 50 --from-addr 127.0.0.1 "$p1" banana aaa
	[ "$output" = "$(printf '127.0.0.1:%s bbnana\n127.0.0.1:%s baa' "$p1" "$p1")" ]
	udp_client --expect 1 127.0.0.1 "$p2" banana
	[ "$output" = banana ]
}

@test "UDP and TCP routes joined with + run in one process" {
	udp_server u1 --echo --tag 'u1:'
	u1=$SPORT
	udp_server u2 --echo --tag 'u2:'
	u2=$SPORT
	bg python3 "$TOOLS/filt_server.py" --echo --tag 'tcp:' "$T/tcp.port"
	wait_for "$T/tcp.port" '^[0-9]+$' 10
	tcp=$(cat "$T/tcp.port")
	start_tproxy --json udp-listen:0 udp:127.0.0.1:"$u1" log + \
		tcp-listen:0 tcp:127.0.0.1:"$tcp" log + \
		udp-listen:0 udp:127.0.0.1:"$u2" log
	read -r p1 p2 p3 <<<"$(echo $PORTS)"
	[ -n "$p3" ]
	[ "$(count_events listen)" -eq 3 ]
	jq -se --argjson p1 "$p1" --argjson p2 "$p2" --argjson p3 "$p3" '
		[.[] | select(.event == "listen") | [.proto, .port]] ==
		[["udp", $p1], ["tcp", $p2], ["udp", $p3]]' "$T/tproxy.out"
	udp_client --expect 1 127.0.0.1 "$p1" one
	[ "$output" = u1:one ]
	run -0 socat -t 5 -T 5 - TCP:127.0.0.1:"$p2" <<<two
	[ "$output" = tcp:two ]
	udp_client --expect 1 127.0.0.1 "$p3" three
	[ "$output" = u2:three ]
	kill -0 "$TP_PID"
}

# --- faults --------------------------------------------------------------------

@test "an upstream with nothing listening is logged as an error, and the process and its sessions go on" {
	udp_server live --echo --tag 'live:'
	dead=$(free_udp_port)
	start_tproxy --json udp-listen:0 udp:127.0.0.1:"$dead" + udp-listen:0 udp:127.0.0.1:"$SPORT"
	read -r p1 p2 <<<"$(echo $PORTS)"
	run -0 --separate-stderr python3 "$UDP" client --timeout 1 --portfile "$T/c.port" \
		127.0.0.1 "$p1" 'anyone there?'
	[ "$output" = "" ]
	wait_events error 1
	grep -E "127\.0\.0\.1:$dead.*(refused|unreachable)" "$T/tproxy.err"
	events error | head -n 1 | jq -e --arg d "127.0.0.1:$dead" '
		.conn == 1 and (.reason | contains($d)) and
		(.reason | test("refused|unreachable"; "i"))'
	kill -0 "$TP_PID"
	# another route's sessions are served
	udp_client --expect 1 127.0.0.1 "$p2" hello
	[ "$output" = live:hello ]
	# the session itself stays: once the upstream is up, it passes
	udp_server late --port "$dead" --echo --tag 'late:'
	udp_client --expect 1 --bind "$(cat "$T/c.port")" 127.0.0.1 "$p1" 'now?'
	[ "$output" = 'late:now?' ]
	events accept | jq -se 'map(.conn) == [1, 2]'
	[ "$(count_events close)" -eq 0 ]
}

@test "a datagram of 65,507 bytes passes intact both ways" {
	udp_server up --echo
	start_tproxy udp-listen:0 udp:127.0.0.1:"$SPORT" log
	udp_client --expect 1 --size 65507 127.0.0.1 "$PORT"
	[ "${#lines[@]}" -eq 2 ]
	[[ ${lines[0]} =~ ^sent\ 65507\ ([0-9a-f]{64})$ ]]
	sum=${BASH_REMATCH[1]}
	[ "${lines[1]}" = "got 65507 $sum" ]
	[ "$(cut -d ' ' -f 1-2 "$T/up.log")" = "65507 $sum" ]
	wait_for "$T/tproxy.out" ' s2c .* 65507 bytes$'
	[ "$(grep -c ' c2s .* 65507 bytes$' "$T/tproxy.out")" -eq 1 ]
}

@test "a 65,507-byte datagram passes intact through a chain that rewrites it" {
	udp_server up --echo
	start_tproxy udp-listen:0 udp:127.0.0.1:"$SPORT" 's/NOSUCHTEXT/x/g' hexdump
	udp_client --expect 1 --size 65507 127.0.0.1 "$PORT"
	[[ ${lines[0]} =~ ^sent\ 65507\ ([0-9a-f]{64})$ ]]
	[ "${lines[1]}" = "got 65507 ${BASH_REMATCH[1]}" ]
	wait_for "$T/tproxy.out" '^< .* length=65507 '
}

@test "a datagram of 65,527 bytes passes intact over IPv6" {
	udp_server up --host ::1 --echo
	start_tproxy udp-listen:[::1]:0 udp:[::1]:"$SPORT"
	udp_client --expect 1 --size 65527 ::1 "$PORT"
	[[ ${lines[0]} =~ ^sent\ 65527\ ([0-9a-f]{64})$ ]]
	[ "${lines[1]}" = "got 65527 ${BASH_REMATCH[1]}" ]
	[ "$(cut -d ' ' -f 1-2 "$T/up.log")" = "65527 ${BASH_REMATCH[1]}" ]
}

@test "a UDP listener with a tcp: target is a usage error" {
	run -2 --separate-stderr "$TPROXY" udp-listen:0 tcp:127.0.0.1:80
	contains tcp:127.0.0.1:80 "$stderr"
	contains udp: "$stderr"
	[ "$output" = "" ]
}

@test "a TCP listener with a udp: target is a usage error" {
	run -2 --separate-stderr "$TPROXY" tcp-listen:0 udp:127.0.0.1:53
	contains udp:127.0.0.1:53 "$stderr"
	contains tcp: "$stderr"
	[ "$output" = "" ]
}

@test "a usage error in a later route means nothing listens" {
	run -2 --separate-stderr "$TPROXY" udp-listen:0 udp:127.0.0.1:53 + udp-listen:0 tcp:127.0.0.1:53
	contains tcp:127.0.0.1:53 "$stderr"
	lacks 'listening on' "$stderr"
}

@test "backlog= on a udp-listen address is a usage error" {
	run -2 --separate-stderr "$TPROXY" udp-listen:0,backlog=5 udp:127.0.0.1:53
	contains udp-listen:0,backlog=5 "$stderr"
	contains backlog "$stderr"
	[ "$output" = "" ]
}

@test "the usage error for backlog= on udp-listen does not offer backlog or target options as expected ones" {
	run -2 --separate-stderr "$TPROXY" udp-listen:0,backlog=5 udp:127.0.0.1:53
	# what a UDP listener takes, without the option just rejected and
	# without options of the target side (spoof, port-map)
	lacks 'backlog=N' "$stderr"
	lacks spoof "$stderr"
	lacks port-map "$stderr"
}

@test "--udp-timeout=0 and --udp-timeout=x are usage errors" {
	run -2 --separate-stderr "$TPROXY" --udp-timeout=0 udp-listen:0 udp:127.0.0.1:53
	contains udp-timeout "$stderr"
	contains "'0'" "$stderr"
	run -2 --separate-stderr "$TPROXY" --udp-timeout=x udp-listen:0 udp:127.0.0.1:53
	contains udp-timeout "$stderr"
	contains "'x'" "$stderr"
	run -2 --separate-stderr "$TPROXY" --udp-timeout= udp-listen:0 udp:127.0.0.1:53
	contains udp-timeout "$stderr"
}
