#!/usr/bin/env bats
# tests/proxy.bats - the PROXY protocol (haproxy's proxy-protocol.txt), as a
# user meets it (../shared/spec/cli.md, "PROXY protocol and the two-machine
# relay"): the header written toward proxy-protocol=v1|v2 targets, checked
# byte for byte and by nginx and haproxy; headers read on proxy-protocol
# listeners, from python, curl, haproxy and tproxy itself; the refusals;
# the usage errors; and, as root, the relay across two machines in network
# namespaces that keeps each client's own address.

# shellcheck disable=SC2154 # $output, $stderr, $lines: set by bats' run
bats_require_minimum_version 1.5.0

load helper

# keep the helper's teardown, and remove this test's namespaces after it
eval "helper_$(declare -f teardown)"
teardown() {
	local rc=0
	helper_teardown || rc=$?
	relay_down
	return "$rc"
}

FC=$TOOLS/filt_client.py
FS=$TOOLS/filt_server.py

# upstream NAME: filt_server.py logging every byte it receives to
# $T/NAME.log and echoing it back; sets SPORT
upstream() {
	bg python3 "$FS" --echo --log "$T/$1.log" "$T/$1.port"
	wait_for "$T/$1.port" '^[0-9]+$' 10
	SPORT=$(cat "$T/$1.port")
}

# hex FILE: FILE's bytes as one line of lowercase hex
hex() {
	od -An -tx1 -v "$1" | tr -d ' \n'
}

# accept_field KEY: KEY of the last JSON accept event in $T/tproxy.out
accept_field() {
	jq -r "select(.event == \"accept\") | .$1 // \"none\"" "$T/tproxy.out" | tail -n 1
}

# port_of ADDR: the port of HOST:PORT or [HOST]:PORT
port_of() {
	echo "${1##*:}"
}

# p16 N: N as four hex digits (a port in a v2 header)
p16() {
	printf '%04x' "$1"
}

# free_port: a port nothing listens on
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

V2SIG=0d0a0d0a000d0a515549540a

# --- out: the header tproxy writes ------------------------------------------------

@test "proxy-protocol=v1 starts the upstream stream with the v1 line, then the client's bytes unchanged" {
	upstream up
	start_tproxy --json tcp-listen:0 tcp:127.0.0.1:"$SPORT",proxy-protocol=v1
	run -0 python3 "$FC" 127.0.0.1 "$PORT" 's:hello\x00\r\n' 'u:hello\x00\r\n' shut eof
	wait_for "$T/up.log" 'hello'
	local cport
	cport=$(port_of "$(accept_field src)")
	printf 'PROXY TCP4 127.0.0.1 127.0.0.1 %s %s\r\nhello\0\r\n' "$cport" "$PORT" >"$T/want"
	cmp "$T/want" "$T/up.log"
}

@test "proxy-protocol=v2 writes the binary header for IPv4: signature, PROXY, TCP over IPv4, addresses and ports" {
	upstream up
	start_tproxy --json tcp-listen:0 tcp:127.0.0.1:"$SPORT",proxy-protocol=v2
	run -0 python3 "$FC" 127.0.0.1 "$PORT" 's:abc' 'u:abc' shut eof
	local cport
	cport=$(port_of "$(accept_field src)")
	[ "$(hex "$T/up.log")" = "${V2SIG}2111000c7f0000017f000001$(p16 "$cport")$(p16 "$PORT")616263" ]
}

@test "over IPv6 the header says TCP6 (v1) and TCP over IPv6 (v2)" {
	python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null ||
		skip "no IPv6 on loopback"
	upstream up1
	local s1=$SPORT
	upstream up2
	start_tproxy --json tcp-listen:[::1]:0 tcp:127.0.0.1:"$s1",proxy-protocol=v1 \
		+ tcp-listen:[::1]:0 tcp:127.0.0.1:"$SPORT",proxy-protocol=v2
	local p1 p2 cport
	p1=$(echo "$PORTS" | sed -n 1p)
	p2=$(echo "$PORTS" | sed -n 2p)
	run -0 python3 "$FC" ::1 "$p1" 's:x' 'u:x' shut eof
	cport=$(port_of "$(accept_field src)")
	printf 'PROXY TCP6 ::1 ::1 %s %s\r\nx' "$cport" "$p1" >"$T/want"
	cmp "$T/want" "$T/up1.log"
	run -0 python3 "$FC" ::1 "$p2" 's:y' 'u:y' shut eof
	cport=$(port_of "$(accept_field src)")
	[ "$(hex "$T/up2.log")" = "${V2SIG}21210024$(printf '%032x' 1)$(printf '%032x' 1)$(p16 "$cport")$(p16 "$p2")79" ]
}

@test "a client on a Unix socket gets PROXY UNKNOWN (v1) and a LOCAL header (v2)" {
	upstream up1
	local s1=$SPORT
	upstream up2
	start_tproxy unix-listen:"$T/a.sock" tcp:127.0.0.1:"$s1",proxy-protocol=v1 \
		+ unix-listen:"$T/b.sock" tcp:127.0.0.1:"$SPORT",proxy-protocol=v2
	run -0 python3 "$FC" unix "$T/a.sock" 's:u1' 'u:u1' shut eof
	run -0 python3 "$FC" unix "$T/b.sock" 's:u2' 'u:u2' shut eof
	printf 'PROXY UNKNOWN\r\nu1' >"$T/want"
	cmp "$T/want" "$T/up1.log"
	[ "$(hex "$T/up2.log")" = "${V2SIG}200000007532" ]
}

# nginx_pp: nginx with a plain and a TLS server, both `listen ...
# proxy_protocol`, logging "$proxy_protocol_addr $remote_addr"; sets NPLAIN
# and NTLS
nginx_pp() {
	NPLAIN=$(free_port)
	NTLS=$(free_port)
	mkdir -p "$T/nginx"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=localhost -keyout "$T/nginx/k.pem" -out "$T/nginx/c.pem" 2>/dev/null
	cat >"$T/nginx/nginx.conf" <<-EOF
		daemon off;
		master_process off;
		worker_processes 1;
		pid $T/nginx/nginx.pid;
		error_log $T/nginx/error.log;
		events { worker_connections 64; }
		http {
			log_format pp '\$proxy_protocol_addr \$proxy_protocol_port \$remote_addr';
			access_log $T/nginx/access.log pp;
			client_body_temp_path $T/nginx/body;
			ssl_certificate $T/nginx/c.pem;
			ssl_certificate_key $T/nginx/k.pem;
			server {
				listen 127.0.0.1:$NPLAIN proxy_protocol;
				location / { return 200 "plain\n"; }
			}
			server {
				listen 127.0.0.1:$NTLS ssl proxy_protocol;
				location / { return 200 "tls\n"; }
			}
		}
	EOF
	bg nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log"
	local i
	for ((i = 0; i < 200; i++)); do
		ss -Htln "sport = :$NTLS" | grep -q . && return 0
		sleep 0.05
	done
	cat "$T/nginx/error.log" >&2
	return 1
}

@test "nginx behind proxy-protocol=v1 and v2 (the v2 one over TLS) logs the client's own address" {
	nginx_pp
	start_tproxy --json tcp-listen:0 tcp:127.0.0.1:"$NPLAIN",proxy-protocol=v1 \
		+ tcp-listen:0 tcp:127.0.0.1:"$NTLS",proxy-protocol=v2,tls,verify=0
	local p1 p2
	p1=$(echo "$PORTS" | sed -n 1p)
	p2=$(echo "$PORTS" | sed -n 2p)
	run -0 curl -sS --interface 127.0.0.5 "http://127.0.0.1:$p1/"
	[ "$output" = plain ]
	run -0 curl -sS --interface 127.0.0.6 "http://127.0.0.1:$p2/"
	[ "$output" = tls ]
	wait_for "$T/nginx/access.log" '^127\.0\.0\.6 '
	run -0 cat "$T/nginx/access.log"
	# the client's address from the header; the real peer is tproxy
	matches '^127\.0\.0\.5 [0-9]+ 127\.0\.0\.1$' "$output"
	matches '^127\.0\.0\.6 [0-9]+ 127\.0\.0\.1$' "$output"
}

# haproxy_run NAME CONFIG: haproxy in the foreground (in the background of
# the test) with CONFIG; waits for each "bind 127.0.0.1:PORT" to listen
haproxy_run() {
	local name=$1 conf=$2 p i
	printf '%s\n' "$conf" >"$T/$name.cfg"
	haproxy -c -q -f "$T/$name.cfg" >&2
	bg haproxy -db -f "$T/$name.cfg"
	for p in $(sed -n 's/^ *bind 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/$name.cfg"); do
		for ((i = 0; i < 200; i++)); do
			ss -Htln "sport = :$p" | grep -q . && break
			sleep 0.05
		done
	done
}

@test "haproxy's accept-proxy takes tproxy's header and passes the client's address on" {
	command -v haproxy >/dev/null || skip "haproxy is not installed (tests/deps.sh installs it)"
	upstream up
	local hp
	hp=$(free_port)
	# haproxy takes our v2 header and writes its own v1 toward the upstream:
	# what it believed is what the upstream sees
	haproxy_run h "$(printf '%s\n' global '  maxconn 64' defaults '  mode tcp' \
		'  timeout connect 5s' '  timeout client 5s' '  timeout server 5s' \
		'frontend f' "  bind 127.0.0.1:$hp accept-proxy" '  default_backend b' \
		'backend b' "  server s 127.0.0.1:$SPORT send-proxy")"
	start_tproxy --json tcp-listen:0 tcp:127.0.0.1:"$hp",proxy-protocol=v2
	FILT_BIND=127.0.0.7 run -0 python3 "$FC" 127.0.0.1 "$PORT" 's:ping' 'u:ping' shut eof
	wait_for "$T/up.log" ping
	local cport
	cport=$(port_of "$(accept_field src)")
	printf 'PROXY TCP4 127.0.0.7 127.0.0.1 %s %s\r\nping' "$cport" "$PORT" >"$T/want"
	cmp "$T/want" "$T/up.log"
}

# --- in: the header tproxy reads --------------------------------------------------

@test "a proxy-protocol listener takes a v1 header: the header's client in the accept event, the real peer beside it, the bytes after it relayed" {
	upstream up
	start_tproxy --json tcp-listen:0,proxy-protocol tcp:127.0.0.1:"$SPORT"
	# the header and the first bytes in one segment: none may be lost
	run -0 python3 "$FC" 127.0.0.1 "$PORT" \
		's:PROXY TCP4 192.0.2.7 198.51.100.9 40000 443\r\nhello' 'u:hello' shut eof
	[ "$output" = hello ]
	[ "$(cat "$T/up.log")" = hello ]
	[ "$(accept_field src)" = 192.0.2.7:40000 ]
	[ "$(accept_field dst)" = 198.51.100.9:443 ]
	matches '^127\.0\.0\.1:[0-9]+$' "$(accept_field peer)"
	# the close event names the header's client too
	run -0 jq -r 'select(.event == "close") | .src' "$T/tproxy.out"
	[ "$output" = 192.0.2.7:40000 ]
}

@test "a v2 header with TLVs, sent in pieces, is read whole and the TLVs skipped" {
	upstream up
	start_tproxy --json tcp-listen:0,proxy-protocol tcp:127.0.0.1:"$SPORT"
	# PROXY, TCP over IPv6, 2001:db8::1 port 4242 -> 2001:db8::2 port 80, then
	# an AUTHORITY TLV and a NOOP TLV (36 + 14 + 5 = 55 bytes)
	local a1='\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
	run -0 python3 "$FC" 127.0.0.1 "$PORT" \
		's:\r\n\r\n\x00\r\nQU' w:0.2 's:IT\n\x21\x21\x00\x37' w:0.2 \
		"s:${a1}\\x01${a1}\\x02\\x10\\x92\\x00\\x50" w:0.2 \
		's:\x02\x00\x0bexample.com\x04\x00\x02\x00\x00after' 'u:after' shut eof
	[ "$(cat "$T/up.log")" = after ]
	[ "$(accept_field src)" = '[2001:db8::1]:4242' ]
	[ "$(accept_field dst)" = '[2001:db8::2]:80' ]
}

@test "a LOCAL v2 header and a PROXY UNKNOWN line mean the real peer" {
	upstream up
	start_tproxy --json tcp-listen:0,proxy-protocol tcp:127.0.0.1:"$SPORT"
	run -0 python3 "$FC" 127.0.0.1 "$PORT" 's:\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00one' 'u:one' shut eof
	matches '^127\.0\.0\.1:[0-9]+$' "$(accept_field src)"
	[ "$(accept_field peer)" = none ]
	run -0 python3 "$FC" 127.0.0.1 "$PORT" 's:PROXY UNKNOWN whatever follows\r\ntwo' 'u:two' shut eof
	matches '^127\.0\.0\.1:[0-9]+$' "$(accept_field src)"
	[ "$(accept_field peer)" = none ]
	[ "$(cat "$T/up.log")" = onetwo ]
}

@test "haproxy's send-proxy and send-proxy-v2 feed a proxy-protocol listener the client's address" {
	command -v haproxy >/dev/null || skip "haproxy is not installed (tests/deps.sh installs it)"
	upstream up
	start_tproxy --json tcp-listen:0,proxy-protocol tcp:127.0.0.1:"$SPORT"
	local h1 h2
	h1=$(free_port)
	h2=$(free_port)
	haproxy_run h "$(printf '%s\n' global '  maxconn 64' defaults '  mode tcp' \
		'  timeout connect 5s' '  timeout client 5s' '  timeout server 5s' \
		'listen one' "  bind 127.0.0.1:$h1" "  server s 127.0.0.1:$PORT send-proxy" \
		'listen two' "  bind 127.0.0.1:$h2" "  server s 127.0.0.1:$PORT send-proxy-v2")"
	FILT_BIND=127.0.0.8 run -0 python3 "$FC" 127.0.0.1 "$h1" 's:v1' 'u:v1' shut eof
	matches '^127\.0\.0\.8:[0-9]+$' "$(accept_field src)"
	[ "$(accept_field dst)" = "127.0.0.1:$h1" ]
	FILT_BIND=127.0.0.9 run -0 python3 "$FC" 127.0.0.1 "$h2" 's:v2' 'u:v2' shut eof
	matches '^127\.0\.0\.9:[0-9]+$' "$(accept_field src)"
	[ "$(accept_field dst)" = "127.0.0.1:$h2" ]
	[ "$(cat "$T/up.log")" = v1v2 ]
}

@test "tproxy to tproxy: the second one's filters and keys see the first one's client" {
	upstream up
	# the second tproxy: src= and dport= match the header's client and port
	start_tproxy tcp-listen:0,proxy-protocol tcp:127.0.0.1:"$SPORT" \
		log,src=127.0.0.11/32 'answer:no\n,src=127.0.0.1/32'
	local second=$PORT first_out
	mv "$T/tproxy.out" "$T/second.out"
	TP_STDOUT=$T/first.out start_tproxy tcp-listen:0 tcp:127.0.0.1:"$second",proxy-protocol=v2
	FILT_BIND=127.0.0.11 run -0 python3 "$FC" 127.0.0.1 "$PORT" 's:through' 'u:through' shut eof
	[ "$output" = through ]
	wait_for "$T/second.out" ' c2s 127\.0\.0\.11:[0-9]+ > '
	first_out=$(cat "$T/first.out")
	[ -z "$first_out" ]
}

@test "a TLS listener with proxy-protocol reads the header first, then the ClientHello (curl --haproxy-protocol)" {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=ppca -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign -keyout "$T/ca.key" -out "$T/ca.pem" 2>/dev/null
	chmod 600 "$T/ca.key"
	bg python3 "$FS" --greet 'HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n' \
		--log "$T/up.log" "$T/up.port"
	wait_for "$T/up.port" '^[0-9]+$' 10
	start_tproxy --json --ca-cert="$T/ca.pem" --ca-key="$T/ca.key" \
		tcp-listen:0,proxy-protocol,tls tcp:127.0.0.1:"$(cat "$T/up.port")"
	run -0 curl -sS --max-time 10 --cacert "$T/ca.pem" --interface 127.0.0.12 \
		--haproxy-protocol --resolve "pp.test:$PORT:127.0.0.1" "https://pp.test:$PORT/"
	[ "$output" = ok ]
	wait_for "$T/up.log" '^GET / HTTP/1.1'
	matches '^127\.0\.0\.12:[0-9]+$' "$(accept_field src)"
}

@test "orig:HOST with a proxy-protocol listener connects to the header's port (after port-map) on HOST" {
	upstream up
	start_tproxy tcp-listen:0,proxy-protocol "orig:127.0.0.1,port-map=80:$SPORT"
	run -0 python3 "$FC" 127.0.0.1 "$PORT" 's:PROXY TCP4 192.0.2.7 198.51.100.9 40000 80\r\nmapped' 'u:mapped' shut eof
	run -0 python3 "$FC" 127.0.0.1 "$PORT" "s:PROXY TCP4 192.0.2.7 198.51.100.9 40001 $SPORT\\r\\nsame" 'u:same' shut eof
	[ "$(cat "$T/up.log")" = mappedsame ]
}

# --- refusals ------------------------------------------------------------------------

@test "a header from outside proxy-from= closes that connection with a reason; allowed sources go on" {
	upstream up
	start_tproxy tcp-listen:0,proxy-protocol,proxy-from=192.0.2.0/24\;127.0.0.13/32 tcp:127.0.0.1:"$SPORT"
	run python3 "$FC" 127.0.0.1 "$PORT" 's:PROXY TCP4 192.0.2.7 198.51.100.9 40000 443\r\nnope' eof
	wait_for "$T/tproxy.err" '127\.0\.0\.1 may not send a PROXY header \(not in proxy-from=\)'
	FILT_BIND=127.0.0.13 run -0 python3 "$FC" 127.0.0.1 "$PORT" \
		's:PROXY TCP4 192.0.2.7 198.51.100.9 40000 443\r\nyes' 'u:yes' shut eof
	[ "$(cat "$T/up.log")" = yes ]
}

@test "the default proxy-from is loopback only" {
	run -0 ip -o addr show scope global
	local other
	other=$(echo "$output" | awk '$3 == "inet" { sub(/\/.*/, "", $4); print $4; exit }')
	[ -n "$other" ] || skip "no non-loopback IPv4 address on this machine"
	upstream up
	start_tproxy tcp-listen:0.0.0.0:0,proxy-protocol tcp:127.0.0.1:"$SPORT"
	run python3 "$FC" "$other" "$PORT" 's:PROXY TCP4 192.0.2.7 198.51.100.9 40000 443\r\nnope' eof
	wait_for "$T/tproxy.err" "$(echo "$other" | sed 's/\./\\./g') may not send a PROXY header"
	run -0 python3 "$FC" 127.0.0.1 "$PORT" 's:PROXY TCP4 192.0.2.7 198.51.100.9 40000 443\r\nyes' 'u:yes' shut eof
}

@test "malformed headers close their connection with a reason, and tproxy goes on" {
	upstream up
	start_tproxy tcp-listen:0,proxy-protocol tcp:127.0.0.1:"$SPORT"
	local long
	long=$(printf 'PROXY TCP4 %0100d' 0)
	run python3 "$FC" 127.0.0.1 "$PORT" 's:GET / HTTP/1.0\r\n\r\n' eof
	wait_for "$T/tproxy.err" 'refused: not a PROXY protocol header'
	run python3 "$FC" 127.0.0.1 "$PORT" "s:$long" eof
	wait_for "$T/tproxy.err" 'refused: PROXY v1 line longer than 107 bytes'
	run python3 "$FC" 127.0.0.1 "$PORT" 's:PROXY TCP4 192.0.2.777 198.51.100.9 1 2\r\n' eof
	wait_for "$T/tproxy.err" 'refused: PROXY v1: bad address or port'
	run python3 "$FC" 127.0.0.1 "$PORT" 's:PROXY TCP4 192.0.2.7 198.51.100.9 65536 2\r\n' eof
	wait_for "$T/tproxy.err" 'refused: PROXY v1: bad address or port'
	# a v2 length past what we read (5000 bytes of TLVs)
	run python3 "$FC" 127.0.0.1 "$PORT" 's:\r\n\r\n\x00\r\nQUIT\n\x21\x11\x13\x88' eof
	wait_for "$T/tproxy.err" 'refused: PROXY v2 header longer than 4096 bytes'
	# addresses that do not fit the length given
	run python3 "$FC" 127.0.0.1 "$PORT" 's:\r\n\r\n\x00\r\nQUIT\n\x21\x21\x00\x0c123456789012' eof
	wait_for "$T/tproxy.err" 'refused: PROXY v2: addresses longer than the header'
	run python3 "$FC" 127.0.0.1 "$PORT" 's:\r\n\r\n\x00\r\nQUIT\n\x22\x11\x00\x00' eof
	wait_for "$T/tproxy.err" 'refused: PROXY v2: unknown version or command'
	run -0 python3 "$FC" 127.0.0.1 "$PORT" 's:PROXY TCP4 192.0.2.7 198.51.100.9 1 2\r\nstill' 'u:still' shut eof
	kill -0 "$TP_PID"
	[ "$(cat "$T/up.log")" = still ]
}

@test "a header that is not whole within 3 s closes its connection; others are served meanwhile" {
	upstream up
	start_tproxy tcp-listen:0,proxy-protocol tcp:127.0.0.1:"$SPORT"
	bg python3 "$FC" 127.0.0.1 "$PORT" 's:PROXY TCP4 192.0.2.7' t:10 eof
	local slow=$BG_PID
	run -0 python3 "$FC" 127.0.0.1 "$PORT" 's:PROXY TCP4 192.0.2.8 198.51.100.9 1 2\r\nquick' 'u:quick' shut eof
	wait_for "$T/tproxy.err" 'no whole PROXY header from the client in 3 s' 10
	# closed (with a reset): the client's wait for the end fails (not
	# through run: wait needs this shell's child)
	local st=0
	wait "$slow" || st=$?
	[ "$st" -eq 1 ]
	[ "$(cat "$T/up.log")" = quick ]
}

# --- usage -----------------------------------------------------------------------------

@test "proxy-protocol options with bad values or in the wrong place are usage errors" {
	local bad
	for bad in 'udp-listen:0,proxy-protocol udp:127.0.0.1:53' \
		'udp-listen:0 udp:127.0.0.1:53,proxy-protocol=v2' \
		'tcp-listen:0 tcp:127.0.0.1:80,proxy-protocol=v3' \
		'tcp-listen:0 tcp:127.0.0.1:80,proxy-protocol' \
		'tcp-listen:0,proxy-protocol=v2 tcp:127.0.0.1:80' \
		'tcp-listen:0,proxy-from=127.0.0.1/32 tcp:127.0.0.1:80' \
		'tcp-listen:0,proxy-protocol,proxy-from=nonsense tcp:127.0.0.1:80' \
		'tcp-listen:0,proxy-protocol,proxy-from=10.0.0.0/8; tcp:127.0.0.1:80' \
		'tcp-listen:0 echo,proxy-protocol=v1' \
		'tcp-listen:0 orig:' \
		'unix-listen:/tmp/x.sock echo,proxy-protocol=v1'; do
		# shellcheck disable=SC2086 # each case is two words
		run -2 "$TPROXY" $bad
		matches 'proxy-protocol|proxy-from|orig' "$output"
	done
	run -2 "$TPROXY" udp-listen:0,proxy-protocol udp:127.0.0.1:53
	contains 'UDP routes do not take' "$output"
	run -2 "$TPROXY" tcp-listen:0 tcp:127.0.0.1:80,proxy-protocol=v3
	contains 'expected v1 or v2' "$output"
}

@test "--print-rules for the service machine's command prints the local routing that spoofing toward a local service needs" {
	run -0 "$TPROXY" --print-rules tcp-listen:0.0.0.0:12345,proxy-protocol,proxy-from=198.51.100.1/32 \
		'orig:127.0.0.1,spoof,port-map=80:10080;443:10443'
	contains 'ip rule add from 127.0.0.1/8 iif lo table 123' "$output"
	contains 'ip route add local 0.0.0.0/0 dev lo table 123' "$output"
	contains 'ip -6 rule add from ::1/128 iif lo table 123' "$output"
	contains 'ip -6 route add local ::/0 dev lo table 123' "$output"
	lacks 'redirect' "$output"
}

# --- the relay across two machines (root, network namespaces) ----------------------
#
#   client 192.0.2.10/24         entry machine M1            service machine M2
#          2001:db8:10::10/64  veth-c         veth-s         198.51.100.2/24
#               eth0 ----------- 192.0.2.1  198.51.100.1 ----- eth0
#                                2001:db8:10::1  2001:db8:20::1  2001:db8:20::2/64
#
# M1 relays ports 80 and 443 to M2:12345 with a v2 header; M2 connects to
# its local service (127.0.0.1 or ::1, ports 10080 and 10443) from the
# client's own address, with the rules --print-rules gives.

# relay_up: the three namespaces, their links and addresses, the service
relay_up() {
	local n
	NS_C=tpp-c-$$-$BATS_TEST_NUMBER
	NS_1=tpp-1-$$-$BATS_TEST_NUMBER
	NS_2=tpp-2-$$-$BATS_TEST_NUMBER
	for n in "$NS_C" "$NS_1" "$NS_2"; do
		ip netns add "$n"
		ip -n "$n" link set lo up
	done
	ip link add veth-c netns "$NS_1" type veth peer name eth0 netns "$NS_C"
	ip link add veth-s netns "$NS_1" type veth peer name eth0 netns "$NS_2"
	ip -n "$NS_C" addr add 192.0.2.10/24 dev eth0
	ip -n "$NS_C" addr add 2001:db8:10::10/64 dev eth0 nodad
	ip -n "$NS_1" addr add 192.0.2.1/24 dev veth-c
	ip -n "$NS_1" addr add 2001:db8:10::1/64 dev veth-c nodad
	ip -n "$NS_1" addr add 198.51.100.1/24 dev veth-s
	ip -n "$NS_1" addr add 2001:db8:20::1/64 dev veth-s nodad
	ip -n "$NS_2" addr add 198.51.100.2/24 dev eth0
	ip -n "$NS_2" addr add 2001:db8:20::2/64 dev eth0 nodad
	ip -n "$NS_C" link set eth0 up
	ip -n "$NS_1" link set veth-c up
	ip -n "$NS_1" link set veth-s up
	ip -n "$NS_2" link set eth0 up
	bg ip netns exec "$NS_2" python3 "$TOOLS/tpx_server.py" --tcp 10080 --tcp 10443 \
		--addr 127.0.0.1 --addr ::1 --ready "$T/service.ready" --log "$T/service.log"
	wait_for "$T/service.ready" ready 10
}

relay_down() {
	local n p
	for n in "${NS_C:-}" "${NS_1:-}" "${NS_2:-}"; do
		[ -n "$n" ] && [ -e "/run/netns/$n" ] || continue
		for p in $(ip netns pids "$n" 2>/dev/null); do
			kill -KILL "$p" 2>/dev/null || true
		done
		ip netns del "$n" 2>/dev/null || true
	done
}

# in_ns NS NAME ARGS...: tproxy in namespace NS (its stdout and stderr in
# $T/NAME.out and $T/NAME.err), waiting until every route listens
in_ns() {
	local ns=$1 name=$2 routes=1 a i
	shift 2
	for a in "$@"; do [ "$a" = + ] && routes=$((routes + 1)); done
	ip netns exec "$ns" "$TPROXY" "$@" >"$T/$name.out" 2>"$T/$name.err" &
	PIDS+=("$!")
	for ((i = 0; i < 200; i++)); do
		[ "$(grep -c '^tproxy: listening on' "$T/$name.err")" -ge "$routes" ] && return 0
		kill -0 "$!" 2>/dev/null || break
		sleep 0.025
	done
	cat "$T/$name.err" >&2
	return 1
}

@test "the two-machine relay: the service on M2 sees the client's own address, for both ports, over IPv4 and IPv6" {
	[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
	relay_up
	in_ns "$NS_1" m1 tcp-listen:0.0.0.0:80 tcp:198.51.100.2:12345,proxy-protocol=v2 \
		+ tcp-listen:0.0.0.0:443 tcp:198.51.100.2:12345,proxy-protocol=v2 \
		+ tcp-listen:[2001:db8:10::1]:80 tcp:[2001:db8:20::2]:12346,proxy-protocol=v1
	local m2=(tcp-listen:0.0.0.0:12345,proxy-protocol,proxy-from=198.51.100.1
		'orig:127.0.0.1,spoof,port-map=80:10080;443:10443'
		+ tcp-listen:[::]:12346,proxy-protocol,proxy-from=2001:db8:20::1
		'orig:[::1],spoof,port-map=80:10080')
	# the service machine's routing, exactly as --print-rules gives it
	run -0 "$TPROXY" --print-rules "${m2[@]}"
	echo "$output" | grep -E '^ip (-6 )?(rule|route) add' >"$T/rules"
	[ "$(wc -l <"$T/rules")" = 4 ]
	while read -r line; do
		# shellcheck disable=SC2086 # the words of one printed command
		ip -n "$NS_2" ${line#ip }
	done <"$T/rules"
	in_ns "$NS_2" m2 -v "${m2[@]}"

	run -0 timeout 20 ip netns exec "$NS_C" python3 "$TOOLS/tpx_client.py" tcp 192.0.2.1:80
	local me
	me=$(echo "$output" | sed -n 's/^client=//p')
	contains "peer=$me local=127.0.0.1:10080" "$output"
	run -0 timeout 20 ip netns exec "$NS_C" python3 "$TOOLS/tpx_client.py" tcp 192.0.2.1:443
	me=$(echo "$output" | sed -n 's/^client=//p')
	contains "peer=$me local=127.0.0.1:10443" "$output"
	run -0 timeout 20 ip netns exec "$NS_C" python3 "$TOOLS/tpx_client.py" tcp '[2001:db8:10::1]:80'
	me=$(echo "$output" | sed -n 's/^client=//p')
	contains "peer=$me local=[::1]:10080" "$output"
}
