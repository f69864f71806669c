#!/usr/bin/env bats
# tests/explicit.bats - the explicit proxy listeners (../shared/spec/cli.md):
# socks5-listen (RFC 1928 CONNECT, RFC 1929 user/password) and http-listen
# (CONNECT and absolute-URI requests), as curl and browsers use them, with
# the bad input a proxy meets: other SOCKS versions and commands, wrong
# credentials, malformed and oversized requests, slow clients, destinations
# that cannot be reached.
#
# The web server is tests/tools/xp_server.py (HTTP/1.1 keep-alive on
# 127.0.0.1 and ::1, one port); tests/tools/xp_client.py sends raw bytes.

# shellcheck disable=SC2154 # $output, $stderr, $lines: set by bats' run
bats_require_minimum_version 1.5.0

load helper

F=$BATS_FILE_TMPDIR
XS=$TOOLS/xp_server.py
XC=$TOOLS/xp_client.py

setup_file() {
	local d=$BATS_FILE_TMPDIR
	# the interception CA, and an upstream certificate for localhost
	openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 30 \
		-keyout "$d/ica.key" -out "$d/ica.pem" -subj '/CN=Explicit Test CA' \
		-addext basicConstraints=critical,CA:TRUE,pathlen:0 \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
	openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 30 \
		-keyout "$d/up.key" -out "$d/up.pem" \
		-subj '/O=Explicit Upstream Org/CN=localhost' \
		-addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
	/usr/bin/python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)))' >"$d/bin"
}

# web [--tls]: start xp_server.py; sets WEB (its port)
web() {
	local i tls=()
	[ "${1:-}" != --tls ] || tls=(--tls "$F/up.pem" "$F/up.key")
	bg python3 "$XS" --port-file "$T/web.port" --log "$T/web.log" "${tls[@]}"
	for ((i = 0; i < 100; i++)); do
		[ -s "$T/web.port" ] && break
		sleep 0.05
	done
	WEB=$(cat "$T/web.port")
}

# --- socks5-listen ------------------------------------------------------------

@test "socks5h: curl gets the page byte for byte and the hexdump shows the request" {
	web
	start_tproxy socks5-listen:0 orig hexdump
	run curl -sS -o "$T/got" -x "socks5h://127.0.0.1:$PORT" "http://localhost:$WEB/bin"
	[ "$status" -eq 0 ]
	cmp "$F/bin" "$T/got"
	wait_for "$T/tproxy.out" 'GET /bin HTTP/1\.'
}

@test "socks5 (curl resolves): the accept event carries the requested destination" {
	web
	start_tproxy --json socks5-listen:0 orig
	run curl -sS -x "socks5://127.0.0.1:$PORT" "http://localhost:$WEB/x"
	[ "$status" -eq 0 ]
	[ "$output" = "page /x" ]
	wait_for "$T/tproxy.out" '"event":"close"'
	matches "\"event\":\"accept\".*\"dst\":\"127.0.0.1:$WEB\"" "$(cat "$T/tproxy.out")"
}

@test "socks5h: an IPv6 destination is reached" {
	web
	start_tproxy --json socks5-listen:0 orig
	run curl -sS -x "socks5h://127.0.0.1:$PORT" "http://[::1]:$WEB/six"
	[ "$status" -eq 0 ]
	[ "$output" = "page /six" ]
	wait_for "$T/tproxy.out" '"event":"close"'
	matches "\"event\":\"accept\".*\"dst\":\"\\[::1\\]:$WEB\"" "$(cat "$T/tproxy.out")"
}

@test "socks5 auth=USER:PASS: right credentials pass, wrong ones get status 1 and curl fails" {
	web
	start_tproxy socks5-listen:0,auth=alice:s3cr:et orig
	run curl -sS -x "socks5h://alice:s3cr%3Aet@127.0.0.1:$PORT" "http://localhost:$WEB/ok"
	[ "$status" -eq 0 ]
	[ "$output" = "page /ok" ]
	run curl -sS -x "socks5h://alice:wrong@127.0.0.1:$PORT" "http://localhost:$WEB/ok"
	[ "$status" -ne 0 ]
	lacks "page" "$output"
	# greeting (user/password offered) and a wrong password, at once
	run python3 "$XC" "$PORT" 050102''010561''6c696365''0577726f6e67
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = 05020101 ]
	[ "${lines[1]}" = eof ]
	# a client that offers no authentication gets "no acceptable method"
	run python3 "$XC" "$PORT" 050100
	[ "${lines[0]}" = 05ff ]
	[ "${lines[1]}" = eof ]
	wait_for "$T/tproxy.err" 'wrong SOCKS user name or password'
}

@test "socks5: BIND and UDP ASSOCIATE get reply 0x07 and a close" {
	start_tproxy socks5-listen:0 orig
	run python3 "$XC" "$PORT" 050100''05020001''7f000001''0050
	[ "${lines[0]}" = 050005070001000000000000 ]
	[ "${lines[1]}" = eof ]
	run python3 "$XC" "$PORT" 050100''05030001''7f000001''0050
	[ "${lines[0]}" = 050005070001000000000000 ]
	[ "${lines[1]}" = eof ]
	# an unknown address type: 0x08
	run python3 "$XC" "$PORT" 050100''05010009''7f000001''0050
	[ "${lines[0]}" = 050005080001000000000000 ]
	kill -0 "$TP_PID"
}

@test "socks5: another version is closed at once, with no reply" {
	start_tproxy socks5-listen:0 orig
	run python3 "$XC" "$PORT" 040100507f00000100
	[ "$output" = $'\neof' ]
	wait_for "$T/tproxy.err" 'not SOCKS version 5'
	kill -0 "$TP_PID"
}

@test "socks5: a refused destination gets 0x05, curl says so" {
	start_tproxy socks5-listen:0 orig
	run python3 "$XC" "$PORT" 050100''05010001''7f000001''0001
	[ "${lines[0]:0:8}" = 05000505 ]
	run curl -sS -x "socks5h://127.0.0.1:$PORT" "http://127.0.0.1:1/"
	[ "$status" -ne 0 ]
	contains "(5)" "$output"
}

@test "a SOCKS or HTTP request that does not come whole within 5 s is closed" {
	start_tproxy --json socks5-listen:0 orig + http-listen:0 orig
	local hport
	hport=$(echo "$PORTS" | sed -n 2p)
	python3 "$XC" "$hport" 474554 --wait 9 >"$T/http.res" &
	local slow=$!
	run python3 "$XC" "$PORT" 0501 --wait 9
	[ "$output" = $'\neof' ]
	wait "$slow"
	[ "$(cat "$T/http.res")" = $'\neof' ]
	[ "$(grep -c '"event":"error".*no whole proxy request from the client in 5 s' "$T/tproxy.out")" -eq 2 ]
}

@test "socks5-listen,tls: curl through socks5h is intercepted, the forged certificate copying the upstream's" {
	web --tls
	SSL_CERT_FILE=$F/up.pem start_tproxy --ca-cert="$F/ica.pem" --ca-key="$F/ica.key" \
		socks5-listen:0,tls orig hexdump
	run --separate-stderr curl -sS -v --cacert "$F/ica.pem" -o "$T/got" \
		-x "socks5h://127.0.0.1:$PORT" "https://localhost:$WEB/bin"
	[ "$status" -eq 0 ]
	cmp "$F/bin" "$T/got"
	contains "Explicit Upstream Org" "$stderr"
	contains "Explicit Test CA" "$stderr"
	wait_for "$T/tproxy.out" 'GET /bin HTTP/1\.'
}

@test "socks5-listen and http-listen with tls=auto: a TLS client is intercepted, a plain one relayed, on one listener" {
	web --tls
	local tlsweb=$WEB
	rm -f "$T/web.port"
	web
	SSL_CERT_FILE=$F/up.pem start_tproxy --ca-cert="$F/ica.pem" --ca-key="$F/ica.key" \
		socks5-listen:0,tls=auto orig hexdump + http-listen:0,tls=auto orig
	local hp
	hp=$(echo "$PORTS" | sed -n 2p)
	run --separate-stderr curl -sS -v --cacert "$F/ica.pem" -o "$T/got" \
		-x "socks5h://127.0.0.1:$PORT" "https://localhost:$tlsweb/bin"
	[ "$status" -eq 0 ]
	cmp "$F/bin" "$T/got"
	contains "Explicit Test CA" "$stderr"
	wait_for "$T/tproxy.out" 'GET /bin HTTP/1\.'
	run curl -sS -o "$T/plain" -x "socks5h://127.0.0.1:$PORT" "http://127.0.0.1:$WEB/bin"
	[ "$status" -eq 0 ]
	cmp "$F/bin" "$T/plain"
	run --separate-stderr curl -sS -v --cacert "$F/ica.pem" -p \
		-x "http://127.0.0.1:$hp" "https://localhost:$tlsweb/s"
	[ "$status" -eq 0 ]
	[ "$output" = "page /s" ]
	contains "Explicit Test CA" "$stderr"
	run curl -sS -p -x "http://127.0.0.1:$hp" "http://127.0.0.1:$WEB/p"
	[ "$status" -eq 0 ]
	[ "$output" = "page /p" ]
}

# --- http-listen --------------------------------------------------------------

@test "http-listen: two absolute-URI requests go over one kept-alive upstream connection, in origin form" {
	web
	start_tproxy http-listen:0 orig log
	run curl -sS -x "http://127.0.0.1:$PORT" "http://127.0.0.1:$WEB/a" "http://127.0.0.1:$WEB/b"
	[ "$status" -eq 0 ]
	[ "$output" = "page /a
page /b" ]
	run cat "$T/web.log"
	[ "${#lines[@]}" -eq 2 ]
	[ "${lines[0]#* }" = "GET /a HTTP/1.1" ]
	[ "${lines[1]#* }" = "GET /b HTTP/1.1" ]
	[ "${lines[0]%% *}" = "${lines[1]%% *}" ]
	wait_for "$T/tproxy.out" 'c2s'
}

@test "http-listen: bodies are framed (Content-Length, chunked) so the next request follows" {
	web
	start_tproxy http-listen:0 orig
	printf 'hello body' >"$T/body"
	run curl -sS -x "http://127.0.0.1:$PORT" -H 'Transfer-Encoding: chunked' \
		--data-binary @"$T/body" "http://127.0.0.1:$WEB/echo" \
		--next -x "http://127.0.0.1:$PORT" --data-binary @"$T/body" "http://127.0.0.1:$WEB/echo" \
		--next -x "http://127.0.0.1:$PORT" "http://127.0.0.1:$WEB/c"
	[ "$status" -eq 0 ]
	[ "$output" = "hello bodyhello bodypage /c" ]
	run cat "$T/web.log"
	[ "${#lines[@]}" -eq 3 ]
	[ "${lines[0]%% *}" = "${lines[2]%% *}" ]
}

@test "http-listen: CONNECT gets 200 Connection established, then the tunnel" {
	web
	start_tproxy --json http-listen:0 orig
	run --separate-stderr curl -sS -v -p -x "http://127.0.0.1:$PORT" "http://localhost:$WEB/t"
	[ "$status" -eq 0 ]
	[ "$output" = "page /t" ]
	contains "HTTP/1.1 200 Connection established" "$stderr"
	wait_for "$T/tproxy.out" '"event":"close"'
	matches "\"event\":\"accept\".*\"dst\":\"127.0.0.1:$WEB\",\"host\":\"localhost\"" "$(cat "$T/tproxy.out")"
}

@test "http-listen,tls: CONNECT to an https server is intercepted" {
	web --tls
	SSL_CERT_FILE=$F/up.pem start_tproxy --ca-cert="$F/ica.pem" --ca-key="$F/ica.key" \
		http-listen:0,tls orig hexdump
	run --separate-stderr curl -sS -v --cacert "$F/ica.pem" -x "http://127.0.0.1:$PORT" "https://localhost:$WEB/s"
	[ "$status" -eq 0 ]
	[ "$output" = "page /s" ]
	contains "Explicit Upstream Org" "$stderr"
	wait_for "$T/tproxy.out" 'GET /s HTTP/1\.1'
}

@test "http-listen: an unreachable destination gets 502 with a one-line reason" {
	start_tproxy http-listen:0 orig
	run curl -sS -i -x "http://127.0.0.1:$PORT" "http://127.0.0.1:1/"
	contains "HTTP/1.1 502 Bad Gateway" "$output"
	matches "^connect 127.0.0.1:1: Connection refused" "$output"
	run curl -sS -p -x "http://127.0.0.1:$PORT" "http://127.0.0.1:1/"
	[ "$status" -ne 0 ]
	contains "502" "$output"
}

@test "http-listen: a malformed request gets 400, a 1 MiB head 431, another host 400 and a close" {
	web
	start_tproxy http-listen:0 orig
	run python3 "$XC" "$PORT" "$(printf 'BLAH\r\n\r\n' | od -An -tx1 | tr -d ' \n')"
	[ "$(echo "${lines[0]}" | xxd -r -p | head -n 1)" = $'HTTP/1.1 400 Bad Request\r' ]
	[ "${lines[1]}" = eof ]
	{
		printf 'GET http://127.0.0.1:%s/ HTTP/1.1\r\nX-Big: ' "$WEB"
		head -c 1048576 /dev/zero | tr '\0' a
		printf '\r\n\r\n'
	} >"$T/big"
	run python3 "$XC" "$PORT" --file "$T/big"
	[ "$(echo "${lines[0]}" | xxd -r -p | head -n 1)" = $'HTTP/1.1 431 Request Header Fields Too Large\r' ]
	[ "${lines[1]}" = eof ]
	[ ! -s "$T/web.log" ]
	req="GET http://127.0.0.1:$WEB/1 HTTP/1.1\r\nHost: x\r\n\r\nGET http://127.0.0.1:1/2 HTTP/1.1\r\nHost: x\r\n\r\n"
	run python3 "$XC" "$PORT" "$(printf "$req" | od -An -tx1 | tr -d ' \n')"
	echo "${lines[0]}" | xxd -r -p >"$T/resp"
	contains "page /1" "$(cat "$T/resp")"
	contains "HTTP/1.1 400 Bad Request" "$(cat "$T/resp")"
	contains "Connection: close" "$(cat "$T/resp")"
	[ "${lines[1]}" = eof ]
	kill -0 "$TP_PID"
}

# --- with the rest of tproxy ----------------------------------------------------

@test "redirect with dport= sends a SOCKS client elsewhere" {
	web
	start_tproxy socks5-listen:0 orig "redirect:127.0.0.1:$WEB,dport=9"
	run curl -sS -x "socks5h://127.0.0.1:$PORT" "http://localhost:9/r"
	[ "$status" -eq 0 ]
	[ "$output" = "page /r" ]
}

@test "PROXY protocol out carries the client and the destination it asked for" {
	# a server that keeps the first bytes of its one connection
	cat >"$T/pp.py" <<-'PY'
		import socket, sys
		s = socket.socket()
		s.bind(('127.0.0.1', 0))
		s.listen(1)
		open(sys.argv[1] + '.tmp', 'w').write('%d\n' % s.getsockname()[1])
		__import__('os').rename(sys.argv[1] + '.tmp', sys.argv[1])
		c, _ = s.accept()
		got = b''
		while b'\r\n\r\n' not in got:
		    d = c.recv(4096)
		    if not d:
		        break
		    got += d
		open(sys.argv[2], 'wb').write(got)
		c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\npp\n')
		c.close()
	PY
	bg python3 "$T/pp.py" "$T/pp.port" "$T/pp.got"
	for ((i = 0; i < 100; i++)); do [ -s "$T/pp.port" ] && break; sleep 0.05; done
	local pp
	pp=$(cat "$T/pp.port")
	start_tproxy socks5-listen:0 orig,proxy-protocol=v1
	run curl -sS -x "socks5h://127.0.0.1:$PORT" "http://localhost:$pp/h"
	[ "$output" = pp ]
	matches "^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 [0-9]+ $pp"$'\r'"\$" "$(cat "$T/pp.got")"
	contains "GET /h HTTP/1.1" "$(cat "$T/pp.got")"
}

@test "bad explicit listener arguments are usage errors" {
	run -2 "$TPROXY" http-listen:0,auth=a:b orig
	contains "unknown option 'auth'" "$output"
	run -2 "$TPROXY" socks5-listen:0,auth=nocolon orig
	contains "USER:PASS" "$output"
	run -2 "$TPROXY" socks5-listen:0,proxy-protocol orig
	contains "proxy-protocol" "$output"
	run -2 "$TPROXY" socks5-listen: orig
	contains "socks5-listen" "$output"
}
