#!/usr/bin/env bats
# tests/pcap.bats - the pcap filter as a user would use it, with tshark as
# the reader: a file of a TCP connection (handshake, sequence numbers, FIN
# or RST, the exact bytes of each side), addresses, UDP, TLS plaintext,
# pcap:- into a pipe, pcap:DIR/, its place in the chain and its keys, and
# the faults (SIGKILL, a full disk, a path that cannot be written, a file
# that exists).

# shellcheck disable=SC2154 # $output, $stderr, $lines: set by bats' run
bats_require_minimum_version 1.5.0

load helper

F=$BATS_FILE_TMPDIR
SERVER=$TOOLS/filt_server.py
CLIENT=$TOOLS/filt_client.py
UDP=$TOOLS/udp_tool.py

setup_file() {
	head -c 1048576 /dev/urandom >"$F/random.bin"
	# the interception CA and a self-signed upstream for the TLS test
	openssl req -x509 -new -newkey rsa:2048 -nodes -days 30 -keyout "$F/ica.key" \
		-out "$F/ica.pem" -subj '/CN=pcap.bats interception CA' \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>"$F/ica.log"
	chmod 600 "$F/ica.key"
	openssl req -x509 -new -newkey rsa:2048 -nodes -days 30 -keyout "$F/up.key" \
		-out "$F/up.pem" -subj /CN=upstream.test \
		-addext subjectAltName=DNS:upstream.test 2>"$F/up.log"
}

# --- helpers ------------------------------------------------------------------

# start_server NAME ARG...: filt_server.py in the background; sets SPORT
start_server() {
	local name=$1
	shift
	bg python3 "$SERVER" --log "$T/$name.log" "$@" "$T/$name.port"
	wait_for "$T/$name.port" '^[0-9a-z]+$' 10
	SPORT=$(cat "$T/$name.port")
}

# send_file HOST PORT FILE OUT: connect, send FILE, shut down the sending
# side, and write everything received until EOF to OUT
send_file() {
	python3 - "$@" <<-'EOF'
		import socket, sys
		host, port, src, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
		s = socket.create_connection((host, port), timeout=20)
		got = bytearray()
		data = open(src, 'rb').read()
		s.setblocking(False)
		import select
		off = 0
		while True:
		    r, w, _ = select.select([s], [s] if off < len(data) else [], [], 20)
		    if not r and not w:
		        sys.exit('timed out')
		    if w:
		        off += s.send(data[off:off + 65536])
		        if off == len(data):
		            s.shutdown(socket.SHUT_WR)
		    if r:
		        b = s.recv(65536)
		        if not b:
		            break
		        got += b
		open(dst, 'wb').write(got)
	EOF
}

# tshark_ok ARG...: run tshark; it must succeed and say nothing on stderr
# but its notice about running as root
tshark_ok() {
	run -0 --separate-stderr tshark "$@"
	local warn
	warn=$(grep -v '^Running as user "root"' <<<"$stderr" || true)
	[ -z "$warn" ] || {
		printf 'tshark %s said:\n%s\n' "$*" "$warn" >&2
		return 1
	}
}

# follow PCAP STREAM c|s OUT: the bytes one side sent in a TCP stream, from
# tshark's follow,tcp,raw (the server's lines are indented)
follow() {
	tshark_ok -r "$1" -q -z "follow,tcp,raw,$2"
	python3 -c '
import sys
side, out = sys.argv[1], sys.argv[2]
data = bytearray()
body = False
for line in sys.stdin.read().split("\n"):
    if line.startswith("Node 1:"):
        body = True
        continue
    if not body or line.startswith("====="):
        continue
    server = line.startswith("\t")
    if (side == "s") == server and line.strip():
        data += bytes.fromhex(line.strip())
open(out, "wb").write(data)
' "$3" "$4" <<<"$output"
}

# fields PCAP FILTER FIELD...: one line per packet matching FILTER
fields() {
	local f=$1 y=$2 a=()
	shift 2
	for x in "$@"; do a+=(-e "$x"); done
	tshark_ok -r "$f" -Y "$y" -T fields -E separator=' ' "${a[@]}"
}

# same_file EXPECTED GOT
same_file() {
	cmp -s "$1" "$2" && return 0
	echo "files differ: $1 ($(stat -c %s "$1") bytes) and $2 ($(stat -c %s "$2") bytes)" >&2
	return 1
}

# no_trouble PCAP: tshark's expert information has no lost or unseen
# segment, no malformed packet, no retransmission, no bad checksum
no_trouble() {
	tshark_ok -r "$1" -q -z expert
	lacks 'previous segment not captured' "$output"
	lacks 'ACKed unseen segment' "$output"
	lacks 'Malformed' "$output"
	fields "$1" 'tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment || tcp.analysis.retransmission || tcp.analysis.out_of_order || _ws.malformed || _ws.expert.severity >= "error"' frame.number
	[ -z "$output" ]
	# every checksum is right, with Wireshark's validation turned on
	tshark_ok -r "$1" -o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE \
		-Y 'ip.checksum.status != 1 || tcp.checksum.status != 1 || udp.checksum.status != 1'
	[ -z "$output" ]
}

# --- a TCP connection in a file -----------------------------------------------

@test "pcap:FILE holds a TCP connection tshark reads: handshake, FINs, and exactly the bytes of each side" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" pcap:"$T/c.pcap"
	send_file 127.0.0.1 "$PORT" "$F/random.bin" "$T/got.bin"
	same_file "$F/random.bin" "$T/got.bin"
	stop_tproxy
	[ "$TP_STATUS" -eq 0 ]
	tshark_ok -r "$T/c.pcap"
	# the handshake, then the data, then both FINs and the last ACK
	fields "$T/c.pcap" tcp 'tcp.flags.syn' 'tcp.flags.ack' 'tcp.flags.fin' 'tcp.flags.reset'
	[ "${lines[0]}" = '1 0 0 0' ]
	[ "${lines[1]}" = '1 1 0 0' ]
	[ "${lines[2]}" = '0 1 0 0' ]
	[ "$(grep -c '^0 1 1 0$' <<<"$output")" -eq 2 ]
	[ "${lines[-1]}" = '0 1 0 0' ]
	lacks ' 1$' "$output"
	no_trouble "$T/c.pcap"
	follow "$T/c.pcap" 0 c "$T/c2s.bin"
	follow "$T/c.pcap" 0 s "$T/s2c.bin"
	same_file "$F/random.bin" "$T/c2s.bin"
	same_file "$T/got.bin" "$T/s2c.bin"
	# 64 KiB reads: longer than a packet may be, so split, never truncated
	fields "$T/c.pcap" 'tcp.len > 0' tcp.len
	[ "$(sort -n <<<"$output" | tail -n 1)" -le 65000 ]
	matches '^65000$' "$output"
}

@test "pcap:FILE ends a reset connection with an RST" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" pcap:"$T/r.pcap"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:hello\n' 'u:hello\n' rst
	wait_for "$T/tproxy.err" 'reset|closed' 10 || true
	stop_tproxy
	fields "$T/r.pcap" tcp 'tcp.flags.fin' 'tcp.flags.reset'
	[ "${lines[-1]}" = '0 1' ]
	lacks '1 0' "$output"
	follow "$T/r.pcap" 0 c "$T/c2s.bin"
	[ "$(cat "$T/c2s.bin")" = hello ]
	no_trouble "$T/r.pcap"
}

# --- addresses ------------------------------------------------------------------

@test "pcap: the packets go between the client's address and port and the address it connected to" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" log pcap:"$T/a.pcap"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:hi\n' 'u:hi\n' shut eof
	wait_for "$T/tproxy.out" ' s2c '
	stop_tproxy
	local cp
	cp=$(sed -nE 's/.* c2s 127\.0\.0\.1:([0-9]+) > .*/\1/p' "$T/tproxy.out" | head -n 1)
	[ -n "$cp" ]
	fields "$T/a.pcap" 'tcp.flags.syn == 1 && tcp.flags.ack == 0' ip.src tcp.srcport ip.dst tcp.dstport
	[ "$output" = "127.0.0.1 $cp 127.0.0.1 $PORT" ]
}

@test "pcap: an IPv6 connection is captured as IPv6" {
	start_server up --echo --host ::1
	start_tproxy tcp-listen:[::1]:0 tcp:[::1]:"$SPORT" log pcap:"$T/v6.pcap"
	run -0 python3 "$CLIENT" ::1 "$PORT" 's:six\n' 'u:six\n' shut eof
	wait_for "$T/tproxy.out" ' s2c '
	stop_tproxy
	local cp
	cp=$(sed -nE 's/.* c2s \[::1\]:([0-9]+) > .*/\1/p' "$T/tproxy.out" | head -n 1)
	[ -n "$cp" ]
	fields "$T/v6.pcap" 'tcp.flags.syn == 1 && tcp.flags.ack == 0' ipv6.src tcp.srcport ipv6.dst tcp.dstport
	[ "$output" = "::1 $cp ::1 $PORT" ]
	fields "$T/v6.pcap" ip frame.number
	[ -z "$output" ]
	no_trouble "$T/v6.pcap"
}

@test "pcap behind an nft redirect: the destination is the original one, not tproxy's port or the server's" {
	# a network namespace of our own, with its loopback only
	unshare -n true 2>/dev/null || skip "cannot make a network namespace (unshare -n)"
	command -v nft >/dev/null || skip "nft not installed"
	cat >"$T/ns.sh" <<-'EOF'
		set -eu
		S='' P=''
		trap 'kill $S $P 2>/dev/null || true' EXIT
		trap 'exit 1' TERM INT
		ip link set lo up
		# the client's 127.0.0.1:9999 goes to tproxy on 18080, which sends
		# it on to the server on 9998 (port-map: not redirected again)
		nft -f - <<-'NFT'
			table ip pcapbats {
				chain out {
					type nat hook output priority -100; policy accept;
					ip daddr 127.0.0.1 tcp dport 9999 redirect to :18080
				}
			}
		NFT
		python3 "$SERVER" --echo --port 9998 "$T/srv.port" & S=$!
		"$TPROXY" tcp-listen:18080 orig,allow-loopback,port-map=9999:9998 log pcap:"$T/rd.pcap" >"$T/tproxy.out" 2>"$T/tproxy.err" & P=$!
		for i in $(seq 100); do
			[ -s "$T/srv.port" ] && grep -q '^tproxy: listening' "$T/tproxy.err" && break
			sleep 0.05
		done
		python3 "$CLIENT" 127.0.0.1 9999 's:redirected\n' 'u:redirected\n' shut eof
		kill $P
		wait $P || true
	EOF
	run -0 timeout 60 env T="$T" SERVER="$SERVER" CLIENT="$CLIENT" TPROXY="$TPROXY" unshare -n bash "$T/ns.sh"
	[ "$output" = redirected ]
	# tproxy talked to the server on 9998; the capture shows where the client went
	matches ' c2s 127\.0\.0\.1:[0-9]+ > 127\.0\.0\.1:9998 ' "$(cat "$T/tproxy.out")"
	fields "$T/rd.pcap" 'tcp.flags.syn == 1 && tcp.flags.ack == 0' ip.dst tcp.dstport
	[ "$output" = '127.0.0.1 9999' ]
	follow "$T/rd.pcap" 0 c "$T/c.bin"
	[ "$(cat "$T/c.bin")" = redirected ]
	no_trouble "$T/rd.pcap"
}

@test "pcap on a UDP route: datagrams are UDP packets, one over 65,000 bytes is split, not truncated" {
	bg python3 "$UDP" server --echo "$T/u.port"
	wait_for "$T/u.port" '^[0-9]+$' 10
	start_tproxy udp-listen:0 udp:127.0.0.1:"$(cat "$T/u.port")" pcap:"$T/u.pcap"
	run -0 python3 "$UDP" client --size 65507 --expect 1 --timeout 10 127.0.0.1 "$PORT"
	local sent got
	sent=$(sed -n 's/^sent 65507 //p' <<<"$output")
	got=$(sed -n 's/^got 65507 //p' <<<"$output")
	[ -n "$sent" ] && [ "$sent" = "$got" ]
	run -0 python3 "$UDP" client --expect 1 --timeout 10 127.0.0.1 "$PORT" 'small one'
	stop_tproxy
	tshark_ok -r "$T/u.pcap"
	fields "$T/u.pcap" udp udp.srcport udp.dstport udp.length
	[ "${#lines[@]}" -eq 6 ]
	# client to tproxy's port: 65000 + 507 bytes, then the echo the same way
	matches " $PORT 65008$" "${lines[0]}"
	matches " $PORT 515$" "${lines[1]}"
	matches "^$PORT [0-9]+ 65008$" "${lines[2]}"
	fields "$T/u.pcap" "udp.dstport == $PORT" udp.payload
	[ "$(head -n 2 <<<"$output" | tr -d '\n' | xxd -r -p | sha256sum | cut -d' ' -f1)" = "$sent" ]
	[ "$(sed -n 3p <<<"$output" | xxd -r -p)" = 'small one' ]
	no_trouble "$T/u.pcap"
}

# --- TLS --------------------------------------------------------------------------

@test "pcap on a tls listener holds the plaintext: curl's HTTPS request is an HTTP request in tshark" {
	bg openssl s_server -accept 127.0.0.1:0 -cert "$F/up.pem" -key "$F/up.key" -www \
		>"$T/s.out" 2>"$T/s.err" </dev/null
	wait_for "$T/s.out" '^ACCEPT ' 10
	SPORT=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$T/s.out")
	XDG_STATE_HOME=$T/state start_tproxy --ca-cert="$F/ica.pem" --ca-key="$F/ica.key" \
		tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0 pcap:"$T/tls.pcap"
	run -0 curl -sS --max-time 20 --cacert "$F/ica.pem" --resolve "upstream.test:$PORT:127.0.0.1" \
		"https://upstream.test:$PORT/pcap-test"
	stop_tproxy
	fields "$T/tls.pcap" http.request http.request.method http.request.uri http.host
	[ "$output" = "GET /pcap-test upstream.test:$PORT" ]
	fields "$T/tls.pcap" http.response http.response.code
	[ "$output" = 200 ]
	no_trouble "$T/tls.pcap"
}

# --- stdout, DIR/ -----------------------------------------------------------------

@test "pcap:- into a pipe: the reader gets the packets while the connection is still open" {
	start_server up --echo
	mkfifo "$T/pipe"
	bg sh -c "cat '$T/pipe' >'$T/live.pcap'"
	TP_STDOUT=$T/pipe start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" pcap:-
	bg python3 "$CLIENT" 127.0.0.1 "$PORT" 's:live bytes\n' 'u:live bytes\n' "f:$T/go" shut eof
	local i hex
	hex=$(printf 'live bytes\n' | xxd -p)
	for ((i = 0; i < 100; i++)); do
		tshark -r "$T/live.pcap" -T fields -e tcp.payload 2>/dev/null | grep -q "$hex" && break
		sleep 0.1
	done
	[ "$i" -lt 100 ]
	# both directions are there, and the connection has not ended
	fields "$T/live.pcap" "tcp.payload == $hex" tcp.srcport
	[ "${#lines[@]}" -eq 2 ]
	fields "$T/live.pcap" 'tcp.flags.fin == 1' frame.number
	[ -z "$output" ]
	touch "$T/go"
	wait "$BG_PID"
	stop_tproxy
	no_trouble "$T/live.pcap"
	fields "$T/live.pcap" 'tcp.flags.fin == 1' frame.number
	[ "${#lines[@]}" -eq 2 ]
}

@test "pcap:- with another writer of stdout (log, hexdump, --json) is a usage error" {
	run -2 "$TPROXY" tcp-listen:0 echo pcap:- log
	contains "pcap:-: standard output carries the capture; 'log' cannot write there too" "$output"
	run -2 "$TPROXY" tcp-listen:0 echo hexdump + tcp-listen:0 echo pcap:-
	contains "'hexdump' cannot write there too" "$output"
	run -2 "$TPROXY" --json tcp-listen:0 echo pcap:-
	contains "pcap:-: standard output carries the capture; --json cannot write there too" "$output"
	run -2 "$TPROXY" tcp-listen:0 echo pcap:- pcap:-,dir=c2s
	contains "writes there already, in the same route" "$output"
}

@test "pcap:DIR/ creates DIR and writes one file per connection, named by id, client and destination" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" log pcap:"$T/caps/sub/"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:one\n' 'u:one\n' shut eof
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:two\n' 'u:two\n' shut eof
	wait_for "$T/tproxy.out" '#2 s2c '
	stop_tproxy
	[ "$(stat -c %a "$T/caps/sub")" = 700 ]
	run -0 ls "$T/caps/sub"
	[ "${#lines[@]}" -eq 2 ]
	local n cp f
	for n in 1 2; do
		cp=$(sed -nE "s/.* #$n c2s 127\.0\.0\.1:([0-9]+) > .*/\1/p" "$T/tproxy.out" | head -n 1)
		f=$(ls "$T/caps/sub" | grep -E "^[0-9]{8}T[0-9]{6}Z-$n-127\.0\.0\.1_$cp-127\.0\.0\.1_$PORT\.pcap$")
		[ "$(stat -c %a "$T/caps/sub/$f")" = 600 ]
		follow "$T/caps/sub/$f" 0 c "$T/c2s.bin"
		[ "$(cat "$T/c2s.bin")" = "$([ "$n" = 1 ] && echo one || echo two)" ]
		no_trouble "$T/caps/sub/$f"
	done
}

# --- its place in the chain, its keys ---------------------------------------------

@test "pcap captures what passes its place in the chain: after s/// the rewritten bytes, before it the original" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" pcap:"$T/before.pcap" 's/apple/PEAR/' pcap:"$T/after.pcap"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:an apple\n' 'u:PEAR\n' shut eof
	stop_tproxy
	follow "$T/before.pcap" 0 c "$T/b.bin"
	follow "$T/after.pcap" 0 c "$T/a.bin"
	[ "$(cat "$T/b.bin")" = 'an apple' ]
	[ "$(cat "$T/a.bin")" = 'an PEAR' ]
}

@test "pcap with dir=c2s captures the client's bytes only; src= that does not match captures nothing" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" pcap:"$T/c2s.pcap",dir=c2s pcap:"$T/none.pcap",src=10.9.9.9
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:ping\n' 'u:ping\n' shut eof
	stop_tproxy
	follow "$T/c2s.pcap" 0 c "$T/c.bin"
	follow "$T/c2s.pcap" 0 s "$T/s.bin"
	[ "$(cat "$T/c.bin")" = ping ]
	[ ! -s "$T/s.bin" ]
	no_trouble "$T/c2s.pcap"
	# no connection matched: the file was never opened
	[ ! -e "$T/none.pcap" ]
}

@test "pcap: bad arguments are usage errors that say what is expected" {
	run -2 "$TPROXY" tcp-listen:0 echo pcap
	contains "filter 'pcap' needs an argument (pcap:FILE|-|DIR/[,overwrite=1])" "$output"
	run -2 "$TPROXY" tcp-listen:0 echo pcap:
	contains "pcap: empty argument (expected FILE, - for standard output, or DIR/)" "$output"
	run -2 "$TPROXY" tcp-listen:0 echo pcap:"$T/x.pcap",overwrite=yes
	contains "pcap: bad overwrite 'yes' (expected 0 or 1)" "$output"
	# an unknown key belongs to the value before it, as in every filter
	run -2 "$TPROXY" tcp-listen:0 echo pcap:"$T/x.pcap",overwrite=1,snaplen=100
	contains "pcap: bad overwrite '1,snaplen=100' (expected 0 or 1)" "$output"
	run -2 "$TPROXY" tcp-listen:0 echo pcap:-,overwrite=1
	contains "overwrite= is for a FILE or DIR/, not for standard output" "$output"
	run -2 "$TPROXY" tcp-listen:0 echo pcap:"$T"
	contains "is a directory (pcap:$T/ writes a file per connection in it)" "$output"
	touch "$T/plain"
	run -2 "$TPROXY" tcp-listen:0 echo pcap:"$T/plain/"
	contains "exists and is not a directory" "$output"
	[ ! -e "$T/x.pcap" ]
}

# --- faults -------------------------------------------------------------------------

@test "an existing capture is kept unless overwrite=1 asks to replace it" {
	echo 'an earlier capture' >"$T/old.pcap"
	run -2 "$TPROXY" tcp-listen:0 echo pcap:"$T/old.pcap"
	contains "pcap: '$T/old.pcap' exists and is not empty (overwrite=1 replaces it)" "$output"
	[ "$(cat "$T/old.pcap")" = 'an earlier capture' ]
	start_tproxy tcp-listen:0 echo pcap:"$T/old.pcap",overwrite=1
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:new\n' 'u:new\n' shut eof
	stop_tproxy
	follow "$T/old.pcap" 0 c "$T/c.bin"
	[ "$(cat "$T/c.bin")" = new ]
	# an empty file holds nothing to lose
	: >"$T/empty.pcap"
	start_tproxy tcp-listen:0 echo pcap:"$T/empty.pcap"
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:into empty\n' 'u:into empty\n' shut eof
	stop_tproxy
	follow "$T/empty.pcap" 0 c "$T/c.bin"
	[ "$(cat "$T/c.bin")" = 'into empty' ]
}

@test "tproxy killed with SIGKILL mid-connection leaves a file tshark reads, with the bytes of the last second" {
	start_server up --echo
	start_tproxy tcp-listen:0 tcp:127.0.0.1:"$SPORT" pcap:"$T/k.pcap"
	bg python3 "$CLIENT" 127.0.0.1 "$PORT" 's:before the kill\n' 'u:before the kill\n' "f:$T/never"
	local i hex
	hex=$(printf 'before the kill\n' | xxd -p)
	for ((i = 0; i < 100; i++)); do
		[ "$(tshark -r "$T/k.pcap" -T fields -e tcp.payload 2>/dev/null | grep -c "$hex")" -eq 2 ] && break
		sleep 0.1
	done
	[ "$i" -lt 100 ]
	kill -KILL "$TP_PID"
	wait "$TP_PID" || true
	tshark_ok -r "$T/k.pcap"
	follow "$T/k.pcap" 0 c "$T/c.bin"
	[ "$(cat "$T/c.bin")" = 'before the kill' ]
	no_trouble "$T/k.pcap"
}

@test "a full disk is reported once on stderr and the traffic goes on uncaptured" {
	start_tproxy tcp-listen:0 echo pcap:/dev/full
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:one\n' 'u:one\n' shut eof
	[ "$output" = one ]
	run -0 python3 "$CLIENT" 127.0.0.1 "$PORT" 's:two\n' 'u:two\n' shut eof
	[ "$output" = two ]
	stop_tproxy
	[ "$TP_STATUS" -eq 0 ]
	run -0 grep -c 'pcap:/dev/full: ' "$T/tproxy.err"
	[ "$output" = 1 ]
	contains 'tproxy: pcap:/dev/full: write: No space left on device; the traffic goes on uncaptured' "$(cat "$T/tproxy.err")"
}

@test "a capture path that cannot be written is reported once and the traffic goes on" {
	touch "$T/plain"
	start_tproxy tcp-listen:0 echo pcap:"$T/plain/x.pcap" + tcp-listen:0 echo pcap:"$T/plain/d/"
	local p n
	for p in $PORTS; do
		for n in one two; do
			run -0 python3 "$CLIENT" 127.0.0.1 "$p" "s:$n\\n" "u:$n\\n" shut eof
			[ "$output" = "$n" ]
		done
	done
	stop_tproxy
	[ "$TP_STATUS" -eq 0 ]
	run -0 grep -c "pcap:$T/plain/x.pcap: cannot open: Not a directory; the traffic goes on uncaptured" "$T/tproxy.err"
	[ "$output" = 1 ]
	run -0 grep -c "pcap:$T/plain/d/: cannot create: Not a directory; the traffic goes on uncaptured" "$T/tproxy.err"
	[ "$output" = 1 ]
}

@test "pcap: a capture file that is a symbolic link is not followed; traffic goes on" {
	ln -s "$T/elsewhere.pcap" "$T/link.pcap"
	start_tproxy tcp-listen:0 echo pcap:"$T/link.pcap"
	run -0 python3 "$TOOLS/filt_client.py" 127.0.0.1 "$PORT" 's:hi' 'u:hi' shut eof
	[ "$output" = hi ]
	wait_for "$T/tproxy.err" 'link\.pcap'
	[ ! -e "$T/elsewhere.pcap" ]
}
