#!/usr/bin/env bats
# tests/autotls.bats - TLS wherever it appears (../shared/spec/cli.md):
# tls=auto (a ClientHello first is intercepted, anything else relayed plain,
# a silent client plain after detect=), starttls (plain, then a ClientHello
# after STARTTLS switches both sides to TLS), and a client certificate
# (cert=, key=) toward an upstream that asks for one.
#
# Real clients (curl, openssl s_client -starttls, nc) and real servers
# (nginx, dovecot, openssl s_server), and tests/tools/starttls_server.py for
# SMTP and POP3.  Every CA and certificate is made here with the openssl
# CLI; tproxy trusts the upstream CA through SSL_CERT_FILE.

# shellcheck disable=SC2154 # $output, $stderr, $lines: set by bats' run
bats_require_minimum_version 1.5.0

load helper

F=$BATS_FILE_TMPDIR
STARTTLS_SERVER=$TOOLS/starttls_server.py
TLS_SERVER=$TOOLS/tls_server.py
TLS_CLIENT=$TOOLS/tls_client.py
ICA=(--ca-cert="$F/ica.pem" --ca-key="$F/ica.key")

# --- fixtures -----------------------------------------------------------------

# new_ca NAME SUBJECT: a self-signed CA in $F/NAME.pem, key $F/NAME.key
new_ca() {
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-sha256 -days 3650 -keyout "$F/$1.key" -out "$F/$1.pem" -subj "$2" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>"$F/$1.log"
}

# new_leaf NAME SUBJECT SERIAL EXT: a certificate $F/NAME.pem (key
# $F/NAME.key) issued by uca, with the extension lines EXT
new_leaf() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$F/$1.key" -out "$F/$1.csr" -subj "$2" 2>"$F/$1.log"
	printf '%b\n' "$4" >"$F/$1.ext"
	openssl x509 -req -in "$F/$1.csr" -CA "$F/uca.pem" -CAkey "$F/uca.key" \
		-set_serial "$3" -days 365 -extfile "$F/$1.ext" -out "$F/$1.pem" 2>>"$F/$1.log"
}

setup_file() {
	export XDG_STATE_HOME=$BATS_FILE_TMPDIR/state
	new_ca ica '/O=autotls.bats/CN=tproxy test interception CA'
	new_ca uca '/O=autotls.bats/CN=Upstream Test Root CA'
	new_leaf up /CN=upstream.test 1 'subjectAltName = DNS:upstream.test\nextendedKeyUsage = serverAuth'
	new_leaf client /CN=tproxy.client 2 'extendedKeyUsage = clientAuth'
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
		-keyout "$F/self.key" -out "$F/self.pem" -subj /CN=upstream.test \
		-addext subjectAltName=DNS:upstream.test 2>"$F/self.log"
	local c
	for c in ica uca up client self; do
		[ -s "$F/$c.pem" ] || {
			echo "fixture $c.pem was not made:" >&2
			cat "$F/$c.log" >&2
			return 1
		}
	done
}

# --- helpers ------------------------------------------------------------------

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# route N: PORT becomes the port of the Nth route
route() {
	PORT=$(sed -n "${1}p" <<<"$PORTS")
}

# ok: the command `run` ran exited 0; if not, show its output and tproxy's
ok() {
	[ "$status" -eq 0 ] && return 0
	printf 'exit status %s, output:\n%s\n' "$status" "$output" | tail -n 40 >&2
	[ ! -s "$T/tproxy.err" ] || printf "tproxy's stderr:\n%s\n" "$(tail -n 20 "$T/tproxy.err")" >&2
	return 1
}

# err_logged REGEX: tproxy's stderr gets a line matching the extended REGEX
err_logged() {
	local i
	for ((i = 0; i < 200; i++)); do
		grep -qiE -- "^tproxy: .*$1" "$T/tproxy.err" && return 0
		sleep 0.05
	done
	echo "no stderr line matching /$1/:" >&2
	cat "$T/tproxy.err" >&2
	return 1
}

# issuer_of PEM: the issuer's subject
issuer_of() { openssl x509 -in "$1" -noout -issuer -nameopt RFC2253 | sed 's/^issuer=//'; }
subject_of() { openssl x509 -in "$1" -noout -subject -nameopt RFC2253 | sed 's/^subject=//'; }

# first_cert FILE: the first PEM certificate in FILE (s_client -showcerts)
first_cert() {
	sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/{p;/-----END CERTIFICATE-----/q}' "$1"
}

# starttls_server NAME PROTO: tests/tools/starttls_server.py with up.pem in
# the background, its log in $T/NAME.log; sets SPORT
starttls_server() {
	bg python3 "$STARTTLS_SERVER" --proto "$2" --cert "$F/up.pem" --key "$F/up.key" \
		--log "$T/$1.log" "$T/$1.port"
	wait_for "$T/$1.port" '^[0-9]+$' 10
	SPORT=$(cat "$T/$1.port")
}

# sclient_starttls PROTO INPUT ARG...: openssl s_client -starttls PROTO to
# tproxy, checking the certificate against the interception CA; sends
# INPUT (printf format) once the TLS is up, prints everything
sclient_starttls() {
	local proto=$1 input=$2
	shift 2
	# shellcheck disable=SC2059 # INPUT is a printf format on purpose
	printf "$input" | timeout 20 openssl s_client -starttls "$proto" -connect 127.0.0.1:"$PORT" \
		-servername upstream.test -CAfile "$F/ica.pem" -verify_return_error -ign_eof -showcerts "$@" 2>&1
}

# nginx_h2 PORT: nginx serving HTTP/2 over TLS with up.pem on 127.0.0.1:PORT
nginx_h2() {
	mkdir -p "$T/nginx"
	cat >"$T/nginx/nginx.conf" <<-EOF
		daemon off;
		master_process off;
		worker_processes 1;
		pid $T/nginx/nginx.pid;
		error_log $T/nginx/error.log;
		events { worker_connections 64; }
		http {
			access_log $T/nginx/access.log;
			client_body_temp_path $T/nginx/body;
			ssl_certificate $F/up.pem;
			ssl_certificate_key $F/up.key;
			server {
				listen 127.0.0.1:$1 ssl http2;
				location / { return 200 "nginx says \$server_protocol\n"; }
			}
		}
	EOF
	bg nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log"
	local i
	for ((i = 0; i < 100; i++)); do
		curl -sk "https://127.0.0.1:$1/" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "nginx did not start:" >&2
	cat "$T/nginx/error.log" >&2
	return 1
}

# --- tls=auto -------------------------------------------------------------------

@test "tls=auto: curl over HTTPS is intercepted with HTTP/2 to nginx, a plain client on the same listener is relayed plain" {
	local np
	np=$(free_port)
	nginx_h2 "$np"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls=auto tcp:127.0.0.1:"$np" hexdump
	run curl -sS --max-time 20 --http2 -w '%{http_version}\n' --cacert "$F/ica.pem" \
		--resolve "upstream.test:$PORT:127.0.0.1" "https://upstream.test:$PORT/"
	ok
	[ "$output" = "$(printf 'nginx says HTTP/2.0\n2')" ]
	# the forged certificate, issued by the interception CA
	timeout 20 openssl s_client -connect 127.0.0.1:"$PORT" -servername upstream.test \
		-alpn h2 </dev/null >"$T/s.txt" 2>&1 || true
	grep -q 'ALPN protocol: h2' "$T/s.txt"
	first_cert "$T/s.txt" >"$T/forged.pem"
	[ "$(issuer_of "$T/forged.pem")" = "$(subject_of "$F/ica.pem")" ]
	# the decrypted HTTP/2 preface in the hexdump
	wait_for "$T/tproxy.out" 'PRI \* HTTP/2\.0' 10
	# a plain HTTP request on the same listener reaches nginx as plain text,
	# which nginx answers in plain text
	run -0 timeout 20 nc -N 127.0.0.1 "$PORT" < <(printf 'GET / HTTP/1.0\r\n\r\n')
	contains 'The plain HTTP request was sent to HTTPS port' "$output"
}

@test "tls=auto: a megabyte of plain bytes is relayed byte-exact, and a TLS client to the same upstream is intercepted" {
	starttls_server echo echo
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls=auto tcp:127.0.0.1:"$SPORT"
	head -c 1048576 /dev/urandom >"$T/in"
	# a first byte that is not a TLS record's
	printf 'x' | cat - "$T/in" >"$T/plain.in"
	timeout 60 nc -N 127.0.0.1 "$PORT" <"$T/plain.in" >"$T/plain.out"
	cmp "$T/plain.in" "$T/plain.out"
	run timeout 60 python3 "$TLS_CLIENT" 127.0.0.1 "$PORT" bulk --sni upstream.test \
		--cafile "$F/ica.pem" --count 1048576 --wait 60
	ok
	[ "$output" = 'echoed 1048576' ]
	wait_for "$T/echo.log" '^echo tls 1048576$' 10
	grep -qx 'echo plain 1048577' "$T/echo.log"
}

@test "tls=auto: a server that speaks first is heard after detect= ms, and a plain client's upstream is plain" {
	bg python3 "$TOOLS/filt_server.py" --greet 'SSH-2.0-OpenSSH_9.2\r\n' --echo "$T/ssh.port"
	wait_for "$T/ssh.port" '^[0-9]+$' 10
	local sp
	sp=$(cat "$T/ssh.port")
	start_tproxy "${ICA[@]}" tcp-listen:0,tls=auto tcp:127.0.0.1:"$sp" \
		+ tcp-listen:0,tls=auto,detect=50 tcp:127.0.0.1:"$sp"
	local r t0 ms
	for r in 1 2; do
		route $r
		t0=$(date +%s%N)
		run -0 timeout 10 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print(s.recv(100).decode().strip())
s.sendall(b"SSH-2.0-client\r\n")
print(s.recv(100).decode().strip())' "$PORT"
		ms=$((($(date +%s%N) - t0) / 1000000))
		[ "${lines[0]}" = 'SSH-2.0-OpenSSH_9.2' ]
		[ "${lines[1]}" = 'SSH-2.0-client' ]
		# generous: the default detect= is 300 ms
		[ "$ms" -lt 5000 ] || {
			echo "the greeting took $ms ms" >&2
			return 1
		}
	done
}

@test "tls=auto: a client whose first bytes begin like a ClientHello but are not one is closed with a reason" {
	starttls_server echo echo
	SSL_CERT_FILE=$F/uca.pem start_tproxy --json "${ICA[@]}" tcp-listen:0,tls=auto tcp:127.0.0.1:"$SPORT"
	run timeout 15 python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"\x16\x03\x01\x00\x08notahello")
t = time.monotonic()
s.settimeout(12)
try:
    d = s.recv(100)
except ConnectionResetError:
    d = b""
print("closed" if d == b"" else "got %r" % d)' "$PORT"
	ok
	[ "$output" = closed ]
	err_logged 'not a TLS ClientHello'
	# the next plain client is served
	run -0 timeout 20 nc -N 127.0.0.1 "$PORT" < <(printf 'still here\n')
	[ "$output" = 'still here' ]
}

@test "tls=auto keeps what tls does: verify by default, passthrough=, keylog=, filters on the plain text" {
	bg python3 "$TLS_SERVER" --cert "$F/self.pem" --key "$F/self.key" --log "$T/self.log" "$T/self.port"
	wait_for "$T/self.port" '^[0-9]+$' 10
	local selfp
	selfp=$(cat "$T/self.port")
	bg python3 "$TLS_SERVER" --cert "$F/up.pem" --key "$F/up.key" --log "$T/up.log" "$T/up.port"
	wait_for "$T/up.port" '^[0-9]+$' 10
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" \
		"tcp-listen:0,tls=auto,keylog=$T/keys.log,passthrough=^pass\." tcp:127.0.0.1:"$(cat "$T/up.port")" \
		's/tls_server page/TLS_SERVER PAGE/' \
		+ tcp-listen:0,tls=auto tcp:127.0.0.1:"$selfp" \
		+ tcp-listen:0,tls=auto tcp:127.0.0.1:"$selfp",verify=0
	route 1
	run curl -sS --max-time 20 --cacert "$F/ica.pem" --resolve "upstream.test:$PORT:127.0.0.1" "https://upstream.test:$PORT/"
	ok
	contains 'TLS_SERVER PAGE' "$output"
	grep -q '^CLIENT_TRAFFIC_SECRET_0 ' "$T/keys.log"
	# passthrough: the real certificate, and nothing rewritten
	run curl -sS --max-time 20 --cacert "$F/uca.pem" --resolve "pass.test:$PORT:127.0.0.1" "https://pass.test:$PORT/" -k
	ok
	contains 'tls_server page' "$output"
	contains 'sni=pass.test' "$output"
	route 2
	run ! curl -sS --max-time 20 --cacert "$F/ica.pem" --resolve "upstream.test:$PORT:127.0.0.1" "https://upstream.test:$PORT/"
	err_logged '#3 .*verify=0'
	route 3
	run curl -sS --max-time 20 --cacert "$F/ica.pem" --resolve "upstream.test:$PORT:127.0.0.1" "https://upstream.test:$PORT/"
	ok
	contains 'tls_server page' "$output"
}

# --- starttls --------------------------------------------------------------------

@test "starttls: SMTP and POP3 clients are intercepted after STARTTLS, the decrypted commands in the hexdump" {
	starttls_server smtp smtp
	local smtp=$SPORT
	starttls_server pop3 pop3
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,starttls tcp:127.0.0.1:"$smtp" hexdump \
		+ tcp-listen:0,starttls tcp:127.0.0.1:"$SPORT" log
	route 1
	run sclient_starttls smtp 'NOOP smtp-secret\r\nQUIT\r\n'
	ok
	contains 'Verify return code: 0 (ok)' "$output"
	contains '250 ok NOOP smtp-secret' "$output"
	contains '221 bye' "$output"
	sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/{p;/-----END CERTIFICATE-----/q}' <<<"$output" >"$T/forged.pem"
	[ "$(issuer_of "$T/forged.pem")" = "$(subject_of "$F/ica.pem")" ]
	wait_for "$T/tproxy.out" 'NOOP smtp-secr' 10
	# the server saw STARTTLS in plain text, then the command over TLS
	grep -qx 'plain STARTTLS' "$T/smtp.log"
	grep -qx 'tls NOOP smtp-secret' "$T/smtp.log"
	route 2
	run sclient_starttls pop3 'NOOP pop-secret\r\nQUIT\r\n'
	ok
	contains '+OK NOOP pop-secret' "$output"
	grep -qx 'tls NOOP pop-secret' "$T/pop3.log"
	wait_for "$T/tproxy.out" '#2 c2s .* 23 bytes$' 10
}

@test "starttls: IMAP to dovecot is intercepted after STARTTLS" {
	local ip pp
	ip=$(free_port)
	pp=$(free_port)
	mkdir -p "$T/dv/run" "$T/dv/state" "$T/dv/home"
	cat >"$T/dv/dovecot.conf" <<-EOF
		base_dir = $T/dv/run
		state_dir = $T/dv/state
		log_path = $T/dv/dovecot.log
		protocols = imap pop3
		listen = 127.0.0.1
		ssl = required
		ssl_cert = <$F/up.pem
		ssl_key = <$F/up.key
		passdb {
			driver = static
			args = password=not-this-one
		}
		userdb {
			driver = static
			args = uid=nobody gid=nogroup home=$T/dv/home
		}
		service imap-login {
			inet_listener imap {
				address = 127.0.0.1
				port = $ip
			}
			inet_listener imaps {
				port = 0
			}
		}
		service pop3-login {
			inet_listener pop3 {
				address = 127.0.0.1
				port = $pp
			}
			inet_listener pop3s {
				port = 0
			}
		}
		service anvil {
			chroot =
		}
	EOF
	bg dovecot -F -c "$T/dv/dovecot.conf"
	local i
	for ((i = 0; i < 200; i++)); do
		nc -z 127.0.0.1 "$ip" 2>/dev/null && nc -z 127.0.0.1 "$pp" 2>/dev/null && break
		sleep 0.05
	done
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,starttls tcp:127.0.0.1:"$ip" hexdump \
		+ tcp-listen:0,starttls tcp:127.0.0.1:"$pp"
	route 1
	run sclient_starttls imap 'x1 NOOP\r\nx2 LOGOUT\r\n'
	ok
	contains 'Verify return code: 0 (ok)' "$output"
	contains 'x1 OK NOOP completed' "$output"
	sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/{p;/-----END CERTIFICATE-----/q}' <<<"$output" >"$T/forged.pem"
	[ "$(issuer_of "$T/forged.pem")" = "$(subject_of "$F/ica.pem")" ]
	wait_for "$T/tproxy.out" 'x1 NOOP' 10
	# dovecot says the session was secured
	wait_for "$T/dv/dovecot.log" 'imap-login: .*TLS' 10
	route 2
	run sclient_starttls pop3 'QUIT\r\n'
	ok
	contains 'Verify return code: 0 (ok)' "$output"
	contains '+OK Logging out' "$output"
}

@test "starttls: bytes that never become a ClientHello stay plain, byte-exact" {
	starttls_server echo echo
	start_tproxy "${ICA[@]}" tcp-listen:0,starttls tcp:127.0.0.1:"$SPORT" log
	# a chunk that begins like a TLS record but is none, and one that stops
	# in the middle of one (passed on after detect=)
	run -0 timeout 20 python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"plain\r\n")
time.sleep(0.3)
s.sendall(b"\x16\x03\x01\x00\x05hello, not TLS\r\n")
time.sleep(0.3)
s.sendall(b"\x16\x03\x01\x02\x00cut short")
time.sleep(1.0)
s.shutdown(socket.SHUT_WR)
d = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    d += b
sys.stdout.write(repr(d))' "$PORT"
	[ "$output" = "b'plain\\r\\n\\x16\\x03\\x01\\x00\\x05hello, not TLS\\r\\n\\x16\\x03\\x01\\x02\\x00cut short'" ]
	wait_for "$T/echo.log" '^echo plain 42$' 10
}

# --- a client certificate toward the upstream ---------------------------------------

@test "cert= and key= on the target: an upstream that requires a client certificate accepts tproxy's; without it the reason says so" {
	# shellcheck disable=SC2217 # s_server is to read nothing from the test's stdin
	bg openssl s_server -accept 127.0.0.1:0 -cert "$F/up.pem" -key "$F/up.key" \
		-Verify 1 -verify_return_error -CAfile "$F/uca.pem" -www >"$T/ss.out" 2>"$T/ss.err" </dev/null
	wait_for "$T/ss.out" '^ACCEPT ' 10
	local sp
	sp=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$T/ss.out")
	SSL_CERT_FILE=$F/uca.pem start_tproxy --json "${ICA[@]}" \
		tcp-listen:0,tls "tcp:127.0.0.1:$sp,tls,cert=$F/client.pem,key=$F/client.key" \
		+ tcp-listen:0,tls tcp:127.0.0.1:"$sp",tls \
		+ tcp-listen:0,starttls "tcp:127.0.0.1:$sp,cert=$F/client.pem,key=$F/client.key"
	route 1
	run curl -sS --max-time 20 --cacert "$F/ica.pem" --resolve "upstream.test:$PORT:127.0.0.1" "https://upstream.test:$PORT/"
	ok
	contains 'Client certificate' "$output"
	contains 'CN=tproxy.client' "$output"
	route 2
	run ! curl -sS --max-time 20 --cacert "$F/ica.pem" --resolve "upstream.test:$PORT:127.0.0.1" "https://upstream.test:$PORT/"
	err_logged '#2 .*client certificate'
	grep -q '"event":"close".*"conn":2\|"conn":2.*"event":"close"' "$T/tproxy.out"
	# a starttls listener whose client starts TLS at once: the upstream's
	# TLS follows, with the target's certificate
	route 3
	run curl -sS --max-time 20 --cacert "$F/ica.pem" --resolve "upstream.test:$PORT:127.0.0.1" "https://upstream.test:$PORT/"
	ok
	contains 'CN=tproxy.client' "$output"
	kill -0 "$TP_PID"
}

@test "a cert= on the target that cannot be loaded is a runtime failure naming it" {
	run -1 --separate-stderr timeout 10 "$TPROXY" tcp-listen:0 "tcp:127.0.0.1:443,tls,cert=$T/missing.pem"
	contains "$T/missing.pem" "$stderr"
	lacks 'listening on' "$stderr"
	run -1 --separate-stderr timeout 10 "$TPROXY" tcp-listen:0 "tcp:127.0.0.1:443,tls,cert=$F/client.pem,key=$F/up.key"
	contains "$F/up.key" "$stderr"
	lacks 'listening on' "$stderr"
}

# --- the command line ------------------------------------------------------------------

@test "tls=auto, starttls, detect= and a target's cert= in the wrong place are usage errors" {
	while IFS='|' read -r l t want; do
		run -2 --separate-stderr timeout 10 "$TPROXY" "$l" "$t"
		contains "$want" "$stderr"
		lacks 'listening on' "$stderr"
	done <<-EOF
		tcp-listen:0|tcp:127.0.0.1:1,tls=auto|tls
		tcp-listen:0,tls=auto,detect=0|tcp:127.0.0.1:1|detect
		tcp-listen:0,tls=auto,detect=x|tcp:127.0.0.1:1|detect
		tcp-listen:0,detect=100|tcp:127.0.0.1:1|detect= needs
		tcp-listen:0,tls,starttls|tcp:127.0.0.1:1|choose one
		tcp-listen:0,tls=auto,starttls|tcp:127.0.0.1:1|choose one
		tcp-listen:0,tls=auto|echo|tls=auto and starttls need
		udp-listen:0,starttls|udp:127.0.0.1:1|starttls
		unix-listen:$T/s,tls=auto|tcp:127.0.0.1:1|tls
		tcp-listen:0|tcp:127.0.0.1:1,cert=$F/client.pem|need the tls option
		tcp-listen:0|tcp:127.0.0.1:1,verify=0|need the tls option
		tcp-listen:0,starttls=2|tcp:127.0.0.1:1|starttls
	EOF
}

@test "verify=0 and cert= on a plain target are accepted behind tls=auto and starttls" {
	start_tproxy "${ICA[@]}" tcp-listen:0,tls=auto tcp:127.0.0.1:9,verify=0 \
		+ tcp-listen:0,starttls "tcp:127.0.0.1:9,cert=$F/client.pem,key=$F/client.key"
	kill -0 "$TP_PID"
}

# --- resuming upstream sessions -----------------------------------------------------------

@test "the next connection to the same upstream resumes its TLS session, and the client still gets the forged certificate" {
	# shellcheck disable=SC2217 # s_server is to read nothing from the test's stdin
	bg openssl s_server -accept 127.0.0.1:0 -cert "$F/up.pem" -key "$F/up.key" -www \
		>"$T/ss.out" 2>"$T/ss.err" </dev/null
	wait_for "$T/ss.out" '^ACCEPT ' 10
	local sp i
	sp=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$T/ss.out")
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$sp",tls \
		+ tcp-listen:0,tls=auto tcp:127.0.0.1:"$sp" + tcp-listen:0,tls tcp:127.0.0.1:"$sp",tls,verify=0
	for i in 1 2; do
		route $i
		run curl -sS --max-time 20 --cacert "$F/ica.pem" --resolve "upstream.test:$PORT:127.0.0.1" "https://upstream.test:$PORT/"
		ok
		contains 'New, TLSv1.3' "$output"
		# s_server's page says whether the session was resumed
		run curl -sS --max-time 20 --cacert "$F/ica.pem" --resolve "upstream.test:$PORT:127.0.0.1" "https://upstream.test:$PORT/"
		ok
		contains 'Reused, TLSv1.3' "$output"
		timeout 20 openssl s_client -connect 127.0.0.1:"$PORT" -servername upstream.test \
			-CAfile "$F/ica.pem" -verify_return_error </dev/null >"$T/s.txt" 2>&1 || true
		grep -q 'Verify return code: 0 (ok)' "$T/s.txt"
		first_cert "$T/s.txt" >"$T/forged.pem"
		[ "$(issuer_of "$T/forged.pem")" = "$(subject_of "$F/ica.pem")" ]
		[ "$(subject_of "$T/forged.pem")" = "CN=upstream.test" ]
	done
	# a session is kept per route and name: another makes a full handshake
	route 3
	run curl -sS --max-time 20 -k --resolve "upstream.test:$PORT:127.0.0.1" "https://upstream.test:$PORT/"
	ok
	contains 'New, TLSv1.3' "$output"
	run curl -sS --max-time 20 -k --resolve "other.test:$PORT:127.0.0.1" "https://other.test:$PORT/"
	ok
	contains 'New, TLSv1.3' "$output"
}

@test "starttls: a ClientHello sent before the STARTTLS reply waits until the bytes a filter holds went on" {
	starttls_server smtp smtp
	# the c2s delay still holds STARTTLS when the ClientHello comes
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,starttls tcp:127.0.0.1:"$SPORT" \
		'delay:300,dir=c2s' log
	run timeout 30 python3 "$TOOLS/starttls_client.py" "$PORT" "$F/ica.pem" upstream.test
	ok
	[ "${lines[0]}" = 'plain reply: 220 Ready to start TLS' ]
	[ "${lines[1]}" = 'handshake TLSv1.3' ]
	contains 'tls reply: 250 ok NOOP eager' "$output"
	contains 'tls reply: 221 bye' "$output"
	grep -qx 'plain STARTTLS' "$T/smtp.log"
	grep -qx 'tls NOOP eager' "$T/smtp.log"
}
