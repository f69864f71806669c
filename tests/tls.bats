#!/usr/bin/env bats
# tests/tls.bats - TLS interception as a user meets it (../shared/spec/cli.md,
# "TLS interception"): the tls listener and target options, forged
# certificates (what they copy, what they never add, the cache), cert=/key=,
# verify=, passthrough=, keylog=, the interception CA given or generated,
# TLS 1.2 and 1.3, ALPN, and the faults a proxy in the middle meets.
#
# Real clients (curl, openssl s_client, tests/tools/tls_client.py) and real
# servers (openssl s_server, nginx, tests/tools/tls_server.py).  Every CA and
# certificate is made here with the openssl CLI, in setup_file; tproxy trusts
# the test upstream CA through SSL_CERT_FILE, never a system trust store.

# shellcheck disable=SC2154 # $output, $stderr, $lines: set by bats' run
bats_require_minimum_version 1.5.0

load helper

F=$BATS_FILE_TMPDIR
TLS_SERVER=$TOOLS/tls_server.py
TLS_CLIENT=$TOOLS/tls_client.py
# the interception CA, for the tests that give one
ICA=(--ca-cert="$F/ica.pem" --ca-key="$F/ica.key")

# The upstream certificate the forging tests look at: a subject with several
# attributes, three subject alternative names, a validity period nobody
# would pick by accident, and a serial of its own.
UP_SUBJ='/C=DE/O=Upstream Test Org/OU=Edge/CN=upstream.test'
UP_SAN='DNS:upstream.test,DNS:alt.upstream.test,IP:192.0.2.7'
UP_START=20200102030405Z
UP_END=20400607080910Z
UP_SERIAL=7E57C0DE0001

# --- fixtures -----------------------------------------------------------------

# new_ca NAME SUBJECT: a self-signed CA in $F/NAME.pem and $F/NAME.key, with
# its openssl ca database in $F/NAME.db
new_ca() {
	openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
		-keyout "$F/$1.key" -out "$F/$1.pem" -subj "$2" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign \
		-addext subjectKeyIdentifier=hash 2>"$F/$1.log"
	mkdir -p "$F/$1.db/new"
	: >"$F/$1.db/index.txt"
}

# new_leaf NAME CA SUBJECT SAN [SERIAL [START END]]: a server certificate
# $F/NAME.pem (key $F/NAME.key) signed by the CA $F/CA.pem; a SAN of - means
# no subjectAltName extension
new_leaf() {
	local name=$1 ca=$2 subj=$3 san=$4 serial=${5:-01} dates=(-days 365)
	[ -z "${6:-}" ] || dates=(-startdate "$6" -enddate "$7")
	openssl req -new -newkey rsa:2048 -nodes -keyout "$F/$name.key" \
		-out "$F/$name.csr" -subj "$subj" 2>"$F/$name.log"
	printf '%s\n' 'basicConstraints = critical,CA:FALSE' \
		'keyUsage = critical,digitalSignature,keyEncipherment' \
		'extendedKeyUsage = serverAuth' >"$F/$name.ext"
	[ "$san" = - ] || echo "subjectAltName = $san" >>"$F/$name.ext"
	echo "$serial" >"$F/$ca.db/serial"
	CADIR=$F/$ca.db openssl ca -batch -config "$F/ca.cnf" -notext -preserveDN \
		-cert "$F/$ca.pem" -keyfile "$F/$ca.key" -in "$F/$name.csr" \
		-out "$F/$name.pem" -extfile "$F/$name.ext" "${dates[@]}" 2>>"$F/$name.log"
}

# new_sub_ca NAME CA SUBJECT SERIAL: an intermediate CA $F/NAME.pem (key
# $F/NAME.key, database $F/NAME.db) signed by the CA $F/CA.pem
new_sub_ca() {
	openssl req -new -newkey rsa:2048 -nodes -keyout "$F/$1.key" \
		-out "$F/$1.csr" -subj "$3" 2>"$F/$1.log"
	printf '%s\n' 'basicConstraints = critical,CA:TRUE,pathlen:0' \
		'keyUsage = critical,keyCertSign,cRLSign' >"$F/$1.ext"
	echo "$4" >"$F/$2.db/serial"
	CADIR=$F/$2.db openssl ca -batch -config "$F/ca.cnf" -notext -preserveDN \
		-cert "$F/$2.pem" -keyfile "$F/$2.key" -in "$F/$1.csr" \
		-out "$F/$1.pem" -extfile "$F/$1.ext" -days 365 2>>"$F/$1.log"
	mkdir -p "$F/$1.db/new"
	: >"$F/$1.db/index.txt"
}

setup_file() {
	# a CA that tproxy generates lands here, never in root's home
	export XDG_STATE_HOME=$BATS_FILE_TMPDIR/state
	cat >"$F/ca.cnf" <<-'EOF'
		[ca]
		default_ca = test_ca
		[test_ca]
		dir = $ENV::CADIR
		database = $dir/index.txt
		new_certs_dir = $dir/new
		serial = $dir/serial
		default_md = sha256
		policy = any_dn
		unique_subject = no
		[any_dn]
		countryName = optional
		organizationName = optional
		organizationalUnitName = optional
		commonName = supplied
	EOF
	# ica: the interception CA; uca: the CA of the upstream servers
	new_ca ica '/O=tls.bats/CN=tproxy test interception CA'
	new_ca uca '/O=tls.bats/CN=Upstream Test Root CA'
	new_leaf up uca "$UP_SUBJ" "$UP_SAN" "$UP_SERIAL" "$UP_START" "$UP_END"
	new_leaf localhost uca /CN=localhost DNS:localhost 02
	new_leaf other uca /CN=other.test DNS:other.test 03
	new_leaf served uca '/O=tls.bats/CN=served.test' DNS:served.test 04
	new_leaf nosan uca /CN=nosan.test - 06
	new_leaf ip uca /CN=127.0.0.1 IP:127.0.0.1 07
	# an intermediate CA under uca, and a server certificate it issued
	new_sub_ca inter uca '/O=tls.bats/CN=Upstream Test Intermediate CA' 08
	new_leaf chained inter /CN=upstream.test DNS:upstream.test 09
	# an upstream certificate issued by the interception CA itself
	new_leaf icaup ica /CN=upstream.test DNS:upstream.test 05
	# a partial wildcard that must not match upstream.test
	new_leaf pwild uca /CN=pwild.test 'DNS:up*.wild.test' 0A
	# a self-signed upstream certificate nobody trusts
	# (valid for longer than icaup, which has the same names)
	openssl req -x509 -new -newkey rsa:2048 -nodes -days 400 -keyout "$F/self.key" \
		-out "$F/self.pem" -subj /CN=upstream.test \
		-addext subjectAltName=DNS:upstream.test 2>"$F/self.log"
	local c
	for c in ica uca up localhost other served nosan ip inter chained icaup self pwild; do
		[ -s "$F/$c.pem" ] || {
			echo "fixture $c.pem was not made:" >&2
			cat "$F/$c.log" >&2
			return 1
		}
	done
}

# --- helpers ------------------------------------------------------------------

# same WHAT EXPECTED GOT: EXPECTED and GOT are equal; WHAT names them
same() {
	[ "$2" = "$3" ] && return 0
	printf '%s differ:\n  expected: %s\n  got:      %s\n' "$1" "$2" "$3" >&2
	return 1
}

# free_port: prints a port nothing listens on
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# sserver NAME CERT ARG...: `openssl s_server -www` with $F/CERT.pem on
# 127.0.0.1 and a port of its choosing, in the background; sets SPORT
sserver() {
	local name=$1 cert=$2
	shift 2
	# shellcheck disable=SC2217 # s_server is to read nothing from the test's stdin
	bg openssl s_server -accept 127.0.0.1:0 -cert "$F/$cert.pem" -key "$F/$cert.key" \
		-www "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null
	wait_for "$T/$name.out" '^ACCEPT ' 10
	SPORT=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$T/$name.out")
}

# pyserver NAME ARG...: tests/tools/tls_server.py in the background, its
# log in $T/NAME.log; sets SPORT
pyserver() {
	local name=$1
	shift
	bg python3 "$TLS_SERVER" --log "$T/$name.log" "$@" "$T/$name.port"
	wait_for "$T/$name.port" '^[0-9]+$' 10
	SPORT=$(cat "$T/$name.port")
}

# route N: PORT becomes the port of the Nth route
route() {
	PORT=$(sed -n "${1}p" <<<"$PORTS")
}

# tls_client MODE ARG...: tests/tools/tls_client.py against tproxy
tls_client() {
	timeout 120 python3 "$TLS_CLIENT" 127.0.0.1 "$PORT" "$@"
}

# curl_up ARG...: curl https://upstream.test:$PORT/ - tproxy's port, the name
# resolved to 127.0.0.1
curl_up() {
	curl -sS --max-time 20 --resolve "upstream.test:$PORT:127.0.0.1" "$@" "https://upstream.test:$PORT/"
}

# sclient ARG...: openssl s_client to tproxy, sending an HTTP/1.0 GET and
# printing everything (the handshake report and the reply)
sclient() {
	printf 'GET / HTTP/1.0\r\n\r\n' |
		timeout 20 openssl s_client -connect 127.0.0.1:"$PORT" -ign_eof "$@" 2>&1
}

# leaf SNI FILE ARG...: connect to tproxy with s_client -showcerts, asking
# for the name SNI; save the first certificate the server sends in FILE
leaf() {
	local sni=$1 out=$2
	shift 2
	timeout 20 openssl s_client -connect 127.0.0.1:"$PORT" -servername "$sni" -showcerts "$@" \
		</dev/null >"$out.txt" 2>&1 || true
	sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/{p;/-----END CERTIFICATE-----/q}' \
		"$out.txt" >"$out"
	[ -s "$out" ] && return 0
	echo "no certificate from tproxy:" >&2
	cat "$out.txt" >&2
	return 1
}

# Fields of the certificate in a PEM file
subject_of() { openssl x509 -in "$1" -noout -subject -nameopt RFC2253 | sed 's/^subject=//'; }
issuer_of() { openssl x509 -in "$1" -noout -issuer -nameopt RFC2253 | sed 's/^issuer=//'; }
san_of() { openssl x509 -in "$1" -noout -ext subjectAltName | sed '1d; s/^ *//'; }
serial_of() { openssl x509 -in "$1" -noout -serial; }
dates_of() { openssl x509 -in "$1" -noout -startdate -enddate | tr '\n' ' '; }
fingerprint_of() { openssl x509 -in "$1" -noout -fingerprint -sha256; }
pubkey_of() { openssl x509 -in "$1" -noout -pubkey; }

# verified_by CA PEM: the certificate in PEM verifies against the CA alone
verified_by() {
	run openssl verify -no-CApath -no-CAstore -CAfile "$1" "$2"
	[ "$status" -eq 0 ] && return 0
	printf 'certificate %s does not verify with CA %s:\n%s\n' "$2" "$1" "$output" >&2
	openssl x509 -in "$2" -noout -subject -issuer >&2
	return 1
}

# ok: the command `run` ran exited 0; if not, show its status and output
ok() {
	[ "$status" -eq 0 ] && return 0
	printf 'exit status %s, output:\n%s\n' "$status" "$output" | tail -n 40 >&2
	[ -z "${stderr:-}" ] || printf 'stderr:\n%s\n' "$stderr" | tail -n 20 >&2
	[ ! -s "$T/tproxy.err" ] || printf "tproxy's stderr:\n%s\n" "$(tail -n 20 "$T/tproxy.err")" >&2
	return 1
}

# err_logged REGEX: tproxy's stderr gets a `tproxy: ` line matching the
# extended REGEX (case-insensitive)
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

# json_error REGEX: a --json error event with a connection id and a reason
# matching REGEX (case-insensitive) is on tproxy's stdout
json_error() {
	local i
	for ((i = 0; i < 200; i++)); do
		jq -se --arg re "$1" 'any(.[]; .event == "error" and (.conn | type) == "number"
			and (.reason | type) == "string" and (.reason | test($re; "i")))' \
			"$T/tproxy.out" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "no JSON error event with a reason matching /$1/:" >&2
	cat "$T/tproxy.out" >&2
	return 1
}

# served_ok: tproxy is alive and a well-behaved client gets the upstream's
# page through it (the upstream being an s_server -www or a tls_server.py)
served_ok() {
	kill -0 "$TP_PID"
	run --separate-stderr curl_up --cacert "$F/ica.pem"
	ok
	[[ $output == *'Secure Renegotiation'* || $output == *'tls_server page'* ]] || {
		printf 'not the upstream page:\n%s\n%s\n' "$output" "$stderr" >&2
		return 1
	}
}

# --- interception end to end ------------------------------------------------------

@test "curl trusting the CA gets the upstream page, and the hexdump shows the request and response in plain text" {
	sserver up up
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls hexdump
	run --separate-stderr curl_up --cacert "$F/ica.pem"
	ok
	contains 'Secure Renegotiation IS supported' "$output"
	wait_for "$T/tproxy.out" '^< .* from=0 ' 10
	stop_tproxy
	# each direction's first chunk is plain text from its first byte on: the
	# request line and the status line, not TLS records
	run -0 awk '/^> .* from=0 /{getline; print; exit}' "$T/tproxy.out"
	same 'first c2s line' ' 47 45 54 20 2f 20 48 54 54 50 2f 31 2e 31 0d 0a  GET / HTTP/1.1..' "$output"
	run -0 awk '/^< .* from=0 /{getline; print; exit}' "$T/tproxy.out"
	same 'first s2c line' ' 48 54 54 50 2f 31 2e 30 20 32 30 30 20 6f 6b 0d  HTTP/1.0 200 ok.' "$output"
	grep -qE '  Host: upstream\.' "$T/tproxy.out"
}

@test "filters rewrite the decrypted stream" {
	sserver up up
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls \
		's/Renegotiation IS supported/Renegotiation WAS REWRITTEN/' log
	run --separate-stderr curl_up --cacert "$F/ica.pem"
	ok
	contains 'Secure Renegotiation WAS REWRITTEN' "$output"
	lacks 'IS supported' "$output"
	wait_for "$T/tproxy.out" ' s2c .* bytes$' 10
}

# --- the forged certificate -----------------------------------------------------

@test "the forged certificate copies the upstream's subject, names and validity, with a fresh serial, issued by the CA" {
	sserver up up
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	leaf upstream.test "$T/forged.pem" -CAfile "$F/ica.pem" -verify_return_error -verify_hostname upstream.test
	grep -q 'Verify return code: 0 (ok)' "$T/forged.pem.txt"
	same subject "$(subject_of "$F/up.pem")" "$(subject_of "$T/forged.pem")"
	same subjectAltName "$(san_of "$F/up.pem")" "$(san_of "$T/forged.pem")"
	# the upstream's validity, cut to end no later than the CA's
	same start "$(openssl x509 -in "$F/up.pem" -noout -startdate)" \
		"$(openssl x509 -in "$T/forged.pem" -noout -startdate)"
	same end "$(openssl x509 -in "$F/ica.pem" -noout -enddate)" \
		"$(openssl x509 -in "$T/forged.pem" -noout -enddate)"
	same issuer "$(subject_of "$F/ica.pem")" "$(issuer_of "$T/forged.pem")"
	[ "$(serial_of "$T/forged.pem")" != "$(serial_of "$F/up.pem")" ] || {
		echo "the forged certificate kept the upstream's $(serial_of "$F/up.pem")" >&2
		return 1
	}
	verified_by "$F/ica.pem" "$T/forged.pem"
	# the upstream's key is RSA; the forged leaf gets tproxy's own P-256 key
	[ "$(pubkey_of "$T/forged.pem")" != "$(pubkey_of "$F/up.pem")" ]
	run -0 openssl x509 -in "$T/forged.pem" -noout -text
	contains 'NIST CURVE: P-256' "$output"
	# an EC key signs: no keyEncipherment
	run -0 openssl x509 -in "$T/forged.pem" -noout -ext keyUsage
	contains 'Digital Signature' "$output"
	lacks 'Key Encipherment' "$output"
}

@test "an upstream certificate for a partial wildcard (up*.wild.test) does not verify for upstream.wild.test" {
	sserver pw pwild
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	run ! curl -sS --max-time 20 --resolve "upstream.wild.test:$PORT:127.0.0.1" \
		--cacert "$F/ica.pem" "https://upstream.wild.test:$PORT/"
	lacks 'Secure Renegotiation' "$output"
	err_logged 'verify=0'
}

@test "forged certificates are cached per upstream certificate and share one key per process" {
	sserver up up
	local s1=$SPORT
	pyserver other --cert "$F/localhost.pem" --key "$F/localhost.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$s1",tls \
		+ tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	leaf upstream.test "$T/a.pem"
	leaf upstream.test "$T/b.pem"
	route 2
	leaf localhost "$T/c.pem"
	# the same upstream certificate: the very same forged one, byte for byte
	same 'the two forged certificates' "$(cat "$T/a.pem")" "$(cat "$T/b.pem")"
	# another upstream certificate: another forged one, with the same key
	same 'subject of the second upstream' "$(subject_of "$F/localhost.pem")" "$(subject_of "$T/c.pem")"
	[ "$(fingerprint_of "$T/a.pem")" != "$(fingerprint_of "$T/c.pem")" ]
	same 'public keys of the forged leaves' "$(pubkey_of "$T/a.pem")" "$(pubkey_of "$T/c.pem")"
	verified_by "$F/ica.pem" "$T/c.pem"
}

@test "the client's SNI is never added to the forged certificate's names" {
	sserver up up
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	leaf other.test "$T/forged.pem"
	same subjectAltName "$(san_of "$F/up.pem")" "$(san_of "$T/forged.pem")"
	same subject "$(subject_of "$F/up.pem")" "$(subject_of "$T/forged.pem")"
	run -0 openssl x509 -in "$T/forged.pem" -noout -text
	lacks other.test "$output"
	# so a client that checks the name refuses it, as it would the real one
	run ! openssl verify -no-CApath -no-CAstore -CAfile "$F/ica.pem" -verify_hostname other.test "$T/forged.pem"
	verified_by "$F/ica.pem" "$T/forged.pem"
}

@test "two upstream certificates with the same names get forged certificates of their own" {
	# icaup and self: both /CN=upstream.test with DNS:upstream.test, valid
	# for different periods
	sserver a icaup
	local sa=$SPORT
	sserver b self
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$sa",tls \
		+ tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	[ "$(dates_of "$F/icaup.pem")" != "$(dates_of "$F/self.pem")" ]
	leaf upstream.test "$T/a.pem"
	route 2
	leaf upstream.test "$T/b.pem"
	route 1
	leaf upstream.test "$T/a2.pem"
	same 'validity of the first' "$(dates_of "$F/icaup.pem")" "$(dates_of "$T/a.pem")"
	same 'validity of the second' "$(dates_of "$F/self.pem")" "$(dates_of "$T/b.pem")"
	same 'the first again' "$(fingerprint_of "$T/a.pem")" "$(fingerprint_of "$T/a2.pem")"
}

@test "an upstream certificate without subjectAltName is forged without one" {
	sserver up nosan
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	leaf nosan.test "$T/forged.pem"
	same subject "$(subject_of "$F/nosan.pem")" "$(subject_of "$T/forged.pem")"
	run -0 openssl x509 -in "$T/forged.pem" -noout -text
	lacks 'Subject Alternative Name' "$output"
	verified_by "$F/ica.pem" "$T/forged.pem"
}

# --- protocol versions and ALPN ------------------------------------------------

@test "TLS 1.2 and TLS 1.3 clients are both intercepted" {
	sserver up up
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	local v
	for v in 1_2 1_3; do
		run sclient -tls"$v" -servername upstream.test -CAfile "$F/ica.pem" -verify_return_error
		ok
		contains "Protocol  : TLSv${v/_/.}" "$output"
		contains 'Verify return code: 0 (ok)' "$output"
		contains 'HTTP/1.0 200 ok' "$output"
	done
}

@test "the client's and the upstream's TLS versions are negotiated apart" {
	# an upstream that only speaks TLS 1.2, a client that only speaks 1.3
	sserver up up -tls1_2
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	run sclient -tls1_3 -servername upstream.test -CAfile "$F/ica.pem" -verify_return_error
	ok
	contains 'Protocol  : TLSv1.3' "$output"
	# s_server -www reports the upstream side's session
	contains 'New, TLSv1.2, Cipher is' "$output"
}

@test "the client sees the ALPN protocol the upstream chose" {
	sserver h2 up -alpn h2
	local sh2=$SPORT
	sserver h11 up -alpn http/1.1
	local sh11=$SPORT
	sserver none up
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$sh2",tls \
		+ tcp-listen:0,tls tcp:127.0.0.1:"$sh11",tls + tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	route 1
	run sclient -servername upstream.test -alpn h2,http/1.1
	ok
	contains 'ALPN protocol: h2' "$output"
	route 2
	run sclient -servername upstream.test -alpn h2,http/1.1
	ok
	contains 'ALPN protocol: http/1.1' "$output"
	route 3
	run sclient -servername upstream.test -alpn h2,http/1.1
	ok
	contains 'No ALPN negotiated' "$output"
}

@test "the upstream is offered the client's own ALPN list" {
	pyserver up --cert "$F/up.pem" --key "$F/up.key" --alpn http/1.1
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	run tls_client get --sni upstream.test --cafile "$F/ica.pem" --alpn h2,http/1.1,spdy/1
	ok
	[ "${lines[0]}" = 'version=TLSv1.3 alpn=http/1.1' ]
	run -0 grep '^hello ' "$T/up.log"
	same 'what the upstream was offered' 'hello sni=upstream.test alpn=h2,http/1.1,spdy/1' "$output"
}

@test "curl --http2 speaks HTTP/2 through tproxy to an HTTP/2 nginx, HTTP/1.1 to an HTTP/1.1 one" {
	local p2 p1
	p2=$(free_port)
	p1=$(free_port)
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
				listen 127.0.0.1:$p2 ssl http2;
				location / { return 200 "nginx says \$server_protocol\n"; }
			}
			server {
				listen 127.0.0.1:$p1 ssl;
				location / { return 200 "nginx says \$server_protocol\n"; }
			}
		}
	EOF
	bg nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log"
	local i
	for ((i = 0; i < 100; i++)); do
		curl -sk "https://127.0.0.1:$p1/" >/dev/null 2>&1 && break
		sleep 0.05
	done
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$p2",tls hexdump \
		+ tcp-listen:0,tls tcp:127.0.0.1:"$p1",tls
	route 1
	run --separate-stderr curl_up --cacert "$F/ica.pem" --http2 -w '%{http_version}\n'
	ok
	same 'HTTP/2 reply' "$(printf 'nginx says HTTP/2.0\n2')" "$output"
	# the hexdump shows the decrypted HTTP/2 connection preface
	wait_for "$T/tproxy.out" 'PRI \* HTTP/2\.0' 10
	route 2
	run --separate-stderr curl_up --cacert "$F/ica.pem" --http2 -w '%{http_version}\n'
	ok
	same 'HTTP/1.1 reply' "$(printf 'nginx says HTTP/1.1\n1.1')" "$output"
}

# --- verifying the upstream -----------------------------------------------------

@test "an untrusted self-signed upstream closes the client with a reason naming verify=0" {
	sserver self self
	SSL_CERT_FILE=$F/uca.pem start_tproxy --json "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	run ! curl_up --cacert "$F/ica.pem"
	lacks 'Secure Renegotiation' "$output"
	err_logged 'verify=0'
	json_error 'verify=0'
	kill -0 "$TP_PID"
}

@test "verify=0 accepts the untrusted self-signed upstream" {
	sserver self self
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	served_ok
	leaf upstream.test "$T/forged.pem"
	verified_by "$F/ica.pem" "$T/forged.pem"
}

@test "an upstream certificate for another name fails verification, and verify=1 is the default" {
	sserver other other
	SSL_CERT_FILE=$F/uca.pem start_tproxy --json "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls \
		+ tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=1
	local r
	for r in 1 2; do
		route $r
		run ! curl_up --cacert "$F/ica.pem"
		lacks 'Secure Renegotiation' "$output"
	done
	err_logged 'verify=0'
	json_error 'verify=0'
	run -0 jq -s '[.[] | select(.event == "error")] | length' "$T/tproxy.out"
	[ "$output" -eq 2 ]
}

@test "without an SNI from the client the target host is the name verified" {
	pyserver lh --cert "$F/localhost.pem" --key "$F/localhost.key"
	local slh=$SPORT
	pyserver ip --cert "$F/ip.pem" --key "$F/ip.key"
	local sip=$SPORT
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	# plain clients, so no SNI: the name is the target's host
	SSL_CERT_FILE=$F/uca.pem start_tproxy --json tcp-listen:0 tcp:localhost:"$slh",tls \
		+ tcp-listen:0 tcp:127.0.0.1:"$sip",tls \
		+ tcp-listen:0 tcp:localhost:"$SPORT",tls + tcp-listen:0 tcp:127.0.0.1:"$SPORT",tls
	local r
	for r in 1 2; do
		route $r
		run -0 timeout 20 nc -N 127.0.0.1 "$PORT" < <(printf 'GET / HTTP/1.0\r\n\r\n')
		contains 'tls_server page' "$output"
	done
	# a certificate for upstream.test is not one for localhost, nor for
	# 127.0.0.1
	for r in 3 4; do
		route $r
		run timeout 20 nc -N 127.0.0.1 "$PORT" < <(printf 'GET / HTTP/1.0\r\n\r\n')
		lacks 'tls_server page' "$output"
	done
	err_logged '#3 .*verify=0'
	err_logged '#4 .*verify=0'
	run -0 jq -s '[.[] | select(.event == "error" and (.reason | contains("verify=0")))] | length' "$T/tproxy.out"
	[ "$output" -eq 2 ]
}

@test "an upstream certificate from an intermediate CA the upstream sends is verified" {
	sserver up chained -cert_chain "$F/inter.pem"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	served_ok
	leaf upstream.test "$T/forged.pem"
	same subject "$(subject_of "$F/chained.pem")" "$(subject_of "$T/forged.pem")"
	verified_by "$F/ica.pem" "$T/forged.pem"
}

@test "an upstream certificate issued by the interception CA is trusted without SSL_CERT_FILE" {
	sserver up icaup
	unset SSL_CERT_FILE
	start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	served_ok
}

# --- the interception CA ----------------------------------------------------------

@test "without --ca-cert a CA is generated in \$XDG_STATE_HOME/tproxy, key mode 0600, its path printed once" {
	sserver up up
	XDG_STATE_HOME=$T/state SSL_CERT_FILE=$F/uca.pem start_tproxy tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	leaf upstream.test "$T/one.pem"
	local ca=$T/state/tproxy/ca.pem key=$T/state/tproxy/ca.key
	[ -s "$ca" ]
	[ -s "$key" ]
	same 'mode of ca.key' 600 "$(stat -c %a "$key")"
	# the saved key is the saved certificate's, and it is a CA
	same 'public key of ca.key' "$(pubkey_of "$ca")" "$(openssl pkey -in "$key" -pubout)"
	run -0 openssl x509 -in "$ca" -noout -ext basicConstraints
	contains 'CA:TRUE' "$output"
	contains 'pathlen:0' "$output"
	# a random serial of about 128 bits, not a time stamp
	run -0 serial_of "$ca"
	[ ${#output} -ge 30 ] || {
		echo "short serial: $output" >&2
		return 1
	}
	# the forged leaf is issued by it
	verified_by "$ca" "$T/one.pem"
	same issuer "$(subject_of "$ca")" "$(issuer_of "$T/one.pem")"
	run --separate-stderr curl_up --cacert "$ca"
	ok
	contains 'Secure Renegotiation' "$output"
	leaf upstream.test "$T/two.pem"
	# its path is printed on stderr, once
	run -0 grep -cF "$ca" "$T/tproxy.err"
	[ "$output" -eq 1 ]
}

@test "a second run reuses the generated CA" {
	sserver up up
	XDG_STATE_HOME=$T/state SSL_CERT_FILE=$F/uca.pem start_tproxy tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	leaf upstream.test "$T/first.pem"
	local ca=$T/state/tproxy/ca.pem key=$T/state/tproxy/ca.key sums
	[ -s "$ca" ]
	sums=$(sha256sum "$ca" "$key")
	stop_tproxy
	XDG_STATE_HOME=$T/state SSL_CERT_FILE=$F/uca.pem start_tproxy tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	leaf upstream.test "$T/second.pem"
	same 'the saved CA files' "$sums" "$(sha256sum "$ca" "$key")"
	verified_by "$ca" "$T/second.pem"
	same issuer "$(subject_of "$ca")" "$(issuer_of "$T/second.pem")"
	run --separate-stderr curl_up --cacert "$ca"
	ok
	contains 'Secure Renegotiation' "$output"
}

@test "without XDG_STATE_HOME the generated CA goes to ~/.local/state/tproxy" {
	sserver up up
	mkdir -p "$T/home"
	unset XDG_STATE_HOME
	HOME=$T/home SSL_CERT_FILE=$F/uca.pem start_tproxy tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	leaf upstream.test "$T/forged.pem"
	local ca=$T/home/.local/state/tproxy/ca.pem
	[ -s "$ca" ]
	same 'mode of ca.key' 600 "$(stat -c %a "$T/home/.local/state/tproxy/ca.key")"
	verified_by "$ca" "$T/forged.pem"
	grep -qF "$ca" "$T/tproxy.err"
}

@test "cert= and key= on the listener serve exactly that certificate" {
	# the upstream's certificate is for the name the client asks for
	sserver up served
	XDG_STATE_HOME=$T/state SSL_CERT_FILE=$F/uca.pem start_tproxy \
		"tcp-listen:0,tls,cert=$F/served.pem,key=$F/served.key" tcp:127.0.0.1:"$SPORT",tls
	leaf served.test "$T/got.pem" -CAfile "$F/uca.pem" -verify_return_error -verify_hostname served.test
	same 'the certificate served' "$(fingerprint_of "$F/served.pem")" "$(fingerprint_of "$T/got.pem")"
	run sclient -servername served.test -CAfile "$F/uca.pem" -verify_return_error
	ok
	contains 'HTTP/1.0 200 ok' "$output"
}

@test "cert= alone takes the key from the same file" {
	sserver up served
	cat "$F/served.pem" "$F/served.key" >"$T/both.pem"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "tcp-listen:0,tls,cert=$T/both.pem" tcp:127.0.0.1:"$SPORT",tls
	leaf served.test "$T/got.pem" -CAfile "$F/uca.pem" -verify_return_error
	same 'the certificate served' "$(fingerprint_of "$F/served.pem")" "$(fingerprint_of "$T/got.pem")"
}

@test "routes that forge nothing generate no CA" {
	sserver up served
	XDG_STATE_HOME=$T/state SSL_CERT_FILE=$F/uca.pem start_tproxy \
		"tcp-listen:0,tls,cert=$F/served.pem,key=$F/served.key" tcp:127.0.0.1:"$SPORT",tls \
		+ tcp-listen:0 tcp:127.0.0.1:"$SPORT",tls,verify=0
	run sclient -servername served.test -CAfile "$F/uca.pem" -verify_return_error
	ok
	contains 'HTTP/1.0 200 ok' "$output"
	route 2
	run -0 timeout 20 nc -N 127.0.0.1 "$PORT" < <(printf 'GET / HTTP/1.0\r\n\r\n')
	contains 'HTTP/1.0 200 ok' "$output"
	[ ! -e "$T/state/tproxy" ] || {
		echo "a CA was generated:" >&2
		ls -l "$T/state/tproxy" >&2
		return 1
	}
}

@test "--ca-cert and --ca-key sign with that CA, and no CA is generated" {
	sserver up up
	XDG_STATE_HOME=$T/state SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	leaf upstream.test "$T/forged.pem"
	verified_by "$F/ica.pem" "$T/forged.pem"
	[ ! -e "$T/state/tproxy/ca.pem" ]
}

# --- passthrough -------------------------------------------------------------------

@test "passthrough= relays a matching SNI untouched: the client sees the real upstream certificate" {
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" \
		'tcp-listen:0,tls,passthrough=^upstream\.test$' tcp:127.0.0.1:"$SPORT",tls hexdump
	run tls_client get --sni upstream.test --cafile "$F/uca.pem" --cert-out "$T/real.pem"
	ok
	contains 'tls_server page' "$output"
	contains 'sni=upstream.test' "$output"
	same 'the certificate seen' "$(fingerprint_of "$F/up.pem")" "$(fingerprint_of "$T/real.pem")"
	same issuer "$(subject_of "$F/uca.pem")" "$(issuer_of "$T/real.pem")"
	# tproxy never decrypted it
	run -0 cat "$T/tproxy.out"
	lacks 'GET / HTTP' "$output"
	# an SNI the pattern does not match is intercepted
	run tls_client get --sni alt.upstream.test --cafile "$F/ica.pem" --cert-out "$T/forged.pem"
	ok
	contains 'tls_server page' "$output"
	same issuer "$(subject_of "$F/ica.pem")" "$(issuer_of "$T/forged.pem")"
	wait_for "$T/tproxy.out" 'GET / HTTP' 10
}

@test "passthrough= matches the SNI case-insensitively, and a client without SNI is intercepted" {
	pyserver ip --cert "$F/ip.pem" --key "$F/ip.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" \
		'tcp-listen:0,tls,passthrough=^upstream\.test$' tcp:127.0.0.1:"$SPORT",tls
	leaf UPSTREAM.Test "$T/real.pem"
	same 'the certificate seen' "$(fingerprint_of "$F/ip.pem")" "$(fingerprint_of "$T/real.pem")"
	# no SNI: intercepted (and verified against the target host, 127.0.0.1)
	timeout 20 openssl s_client -connect 127.0.0.1:"$PORT" -noservername -showcerts </dev/null >"$T/nosni.txt" 2>&1 || true
	sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/{p;/-----END CERTIFICATE-----/q}' "$T/nosni.txt" >"$T/forged.pem"
	same issuer "$(subject_of "$F/ica.pem")" "$(issuer_of "$T/forged.pem")"
	same subject "$(subject_of "$F/ip.pem")" "$(subject_of "$T/forged.pem")"
}

@test "a passthrough client reaches even an upstream that tproxy would not trust" {
	pyserver self --cert "$F/self.pem" --key "$F/self.key"
	start_tproxy "${ICA[@]}" 'tcp-listen:0,tls,passthrough=^upstream\.' tcp:127.0.0.1:"$SPORT",tls
	run tls_client get --sni upstream.test --cafile "$F/self.pem"
	ok
	contains 'tls_server page' "$output"
	[ "${lines[0]}" = 'version=TLSv1.3 alpn=-' ]
}

@test "a passthrough connection idle for longer than the handshake timeout stays open" {
	pyserver self --cert "$F/self.pem" --key "$F/self.key"
	start_tproxy "${ICA[@]}" 'tcp-listen:0,tls,passthrough=^upstream\.' tcp:127.0.0.1:"$SPORT",tls
	run tls_client get --sni upstream.test --cafile "$F/self.pem" --pause 12
	ok
	contains 'tls_server page' "$output"
}

# --- keylog --------------------------------------------------------------------------

@test "a keylog= file tproxy creates is readable by its owner only" {
	sserver up up
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls,keylog="$T/new.keys" tcp:127.0.0.1:"$SPORT",tls
	run --separate-stderr curl_up --cacert "$F/ica.pem"
	ok
	stop_tproxy
	[ -s "$T/new.keys" ]
	same 'mode' 600 "$(stat -c %a "$T/new.keys")"
}

@test "an existing keylog= file readable by others is made readable by its owner only" {
	sserver up up
	: >"$T/old.keys"
	chmod 644 "$T/old.keys"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls,keylog="$T/old.keys" tcp:127.0.0.1:"$SPORT",tls
	same 'mode' 600 "$(stat -c %a "$T/old.keys")"
	run --separate-stderr curl_up --cacert "$F/ica.pem"
	ok
	stop_tproxy
	[ -s "$T/old.keys" ]
}

@test "a keylog= that is a symbolic link is refused, and nothing is written where it points" {
	ln -s "$T/elsewhere.keys" "$T/link.keys"
	run -1 timeout 5 "$TPROXY" --ca-cert="$F/ica.pem" --ca-key="$F/ica.key" \
		tcp-listen:0,tls,keylog="$T/link.keys" tcp:127.0.0.1:9,tls
	contains 'symbolic link' "$output"
	[ ! -e "$T/elsewhere.keys" ]
}

@test "keylog= appends both sides' secrets in the SSLKEYLOGFILE format (TLS 1.3)" {
	sserver up up -keylogfile "$T/upstream.keys"
	echo '# kept: keylog= appends' >"$T/keys.log"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls,keylog="$T/keys.log" tcp:127.0.0.1:"$SPORT",tls
	SSLKEYLOGFILE=$T/curl.keys run --separate-stderr curl_up --cacert "$F/ica.pem" --tlsv1.3
	ok
	contains 'Secure Renegotiation' "$output"
	stop_tproxy
	same 'first line' '# kept: keylog= appends' "$(head -n 1 "$T/keys.log")"
	# every other line is LABEL CLIENT_RANDOM SECRET
	run grep -vcE '^(#|[A-Z0-9_]+ [0-9a-f]{64} [0-9a-f]+$)' "$T/keys.log"
	same 'lines of another form' 0 "$output"
	grep -q '^CLIENT_HANDSHAKE_TRAFFIC_SECRET ' "$T/keys.log"
	grep -q '^CLIENT_TRAFFIC_SECRET_0 ' "$T/keys.log"
	run -0 sh -c "grep -v '^#' '$T/keys.log' | cut -d' ' -f2 | sort -u | wc -l"
	[ "$output" -ge 2 ]
	# the client side: what curl itself logged; the upstream side: what
	# s_server logged.  tproxy's file has both.
	local l
	for l in "$T/curl.keys" "$T/upstream.keys"; do
		[ -s "$l" ]
		grep -v '^#' "$l" | grep -vxF -f "$T/keys.log" && {
			echo "lines of $l missing from keylog=" >&2
			return 1
		}
	done
	true
}

@test "keylog= writes CLIENT_RANDOM lines for TLS 1.2 on both sides" {
	sserver up up -keylogfile "$T/upstream.keys" -tls1_2
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls,keylog="$T/keys.log" tcp:127.0.0.1:"$SPORT",tls
	SSLKEYLOGFILE=$T/curl.keys run --separate-stderr curl_up --cacert "$F/ica.pem" --tls-max 1.2
	ok
	contains 'Secure Renegotiation' "$output"
	stop_tproxy
	run -0 grep -c '^CLIENT_RANDOM [0-9a-f]\{64\} [0-9a-f]\{96\}$' "$T/keys.log"
	[ "$output" -ge 2 ]
	local l
	for l in "$T/curl.keys" "$T/upstream.keys"; do
		[ -s "$l" ]
		grep -v '^#' "$l" | grep -vxF -f "$T/keys.log" && {
			echo "lines of $l missing from keylog=" >&2
			return 1
		}
	done
	true
}

# --- one side plain ------------------------------------------------------------------

@test "a plain client reaches a TLS upstream through a tls target" {
	sserver lh localhost
	SSL_CERT_FILE=$F/uca.pem start_tproxy tcp-listen:0 tcp:localhost:"$SPORT",tls
	run -0 timeout 20 nc -N 127.0.0.1 "$PORT" < <(printf 'GET / HTTP/1.0\r\n\r\n')
	contains 'HTTP/1.0 200 ok' "$output"
	contains 'Secure Renegotiation IS supported' "$output"
}

@test "a TLS client reaches a plain upstream through a tls,cert=,key= listener, the filters see plain text" {
	pyserver echo --plain --mode echo
	start_tproxy "tcp-listen:0,tls,cert=$F/served.pem,key=$F/served.key" tcp:127.0.0.1:"$SPORT" hexdump
	run tls_client get --sni served.test --cafile "$F/uca.pem" --send 'ping over tls\n' --count 14
	ok
	same reply "$(printf 'version=TLSv1.3 alpn=-\nping over tls')" "$output"
	wait_for "$T/tproxy.out" 'ping over tls\.$' 10
}

@test "the upstream gets the client's SNI, else the target host, never an IP literal" {
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	local sup=$SPORT
	pyserver lh --cert "$F/localhost.pem" --key "$F/localhost.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$sup",tls \
		+ tcp-listen:0 tcp:localhost:"$SPORT",tls + tcp-listen:0 tcp:127.0.0.1:"$sup",tls,verify=0 \
		+ "tcp-listen:0,tls,cert=$F/served.pem,key=$F/served.key" tcp:127.0.0.1:"$sup",tls,verify=0
	run tls_client get --sni upstream.test --cafile "$F/ica.pem"
	ok
	contains 'sni=upstream.test' "$output"
	route 2
	run -0 timeout 20 nc -N 127.0.0.1 "$PORT" < <(printf 'GET / HTTP/1.0\r\n\r\n')
	contains 'sni=localhost' "$output"
	route 3
	run -0 timeout 20 nc -N 127.0.0.1 "$PORT" < <(printf 'GET / HTTP/1.0\r\n\r\n')
	contains 'tls_server page' "$output"
	contains 'sni=-' "$output"
	# a listener with its own certificate passes the client's SNI on too
	route 4
	run tls_client get --sni served.test --cafile "$F/uca.pem"
	ok
	contains 'sni=served.test' "$output"
	same 'hellos the upstreams saw' "$(printf 'hello sni=upstream.test alpn=-\nhello sni=- alpn=-\nhello sni=served.test alpn=-')" \
		"$(grep '^hello' "$T/up.log")"
}

# --- filters on intercepted connections ------------------------------------------------

@test "filter keys match on the client's SNI" {
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls 'log,sni=^alt\.'
	run tls_client get --sni upstream.test --cafile "$F/ica.pem"
	ok
	run tls_client get --sni alt.upstream.test --cafile "$F/ica.pem"
	ok
	wait_for "$T/tproxy.out" ' #2 s2c ' 10
	stop_tproxy
	run -1 grep ' #1 ' "$T/tproxy.out"
}

@test "redirect on the SNI sends an intercepted client to the other upstream, over TLS, with a certificate forged from its own" {
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	local sup=$SPORT
	pyserver other --cert "$F/up.pem" --key "$F/up.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$sup",tls \
		"redirect:127.0.0.1:$SPORT,sni=^alt\."
	run tls_client get --sni alt.upstream.test --cafile "$F/ica.pem" --cert-out "$T/forged.pem"
	ok
	contains 'tls_server page' "$output"
	# the other upstream got a TLS ClientHello with the SNI, not plain text
	run -0 grep '^hello' "$T/other.log"
	same 'what the other upstream got' 'hello sni=alt.upstream.test alpn=-' "$output"
	# the client's certificate copies the upstream's, it is not made up
	# from the SNI
	same subject "$(subject_of "$F/up.pem")" "$(subject_of "$T/forged.pem")"
	same subjectAltName "$(san_of "$F/up.pem")" "$(san_of "$T/forged.pem")"
}

# --- intercepted connections at work --------------------------------------------------

@test "a clean intercepted exchange prints nothing on stderr but the listening line" {
	sserver up up
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	served_ok
	run sclient -servername upstream.test -CAfile "$F/ica.pem" -verify_return_error
	ok
	stop_tproxy
	run grep -v -e '^tproxy: listening on ' -e '^tproxy: exiting on SIGTERM' -e '^tproxy: running as root: ' "$T/tproxy.err"
	[ -z "$output" ] || {
		printf 'unexpected lines on stderr:\n%s\n' "$output" >&2
		return 1
	}
}

@test "an upstream that speaks first is heard before the client says anything" {
	# as SMTP, IMAP or FTP over TLS do: the greeting follows the handshake
	pyserver up --cert "$F/up.pem" --key "$F/up.key" --mode banner
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	run tls_client get --sni upstream.test --cafile "$F/ica.pem" --send '' --count 12 --wait 15
	ok
	same reply "$(printf 'version=TLSv1.3 alpn=-\n220 banner\r')" "$output"
}

@test "a TLS 1.2 upstream's greeting right behind its Finished is heard (OpenSSL reads ahead)" {
	# the server's Finished comes last in TLS 1.2: the greeting can share
	# its read, and must not wait in OpenSSL's buffer for the client
	pyserver up --cert "$F/up.pem" --key "$F/up.key" --mode banner --tls12
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	run tls_client get --sni upstream.test --cafile "$F/ica.pem" --send '' --count 12 --wait 15
	ok
	same reply "$(printf 'version=TLSv1.3 alpn=-\n220 banner\r')" "$output"
}

@test "a request sent together with the client's Finished is relayed" {
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	run tls_client coalesced --sni upstream.test --cafile "$F/ica.pem" --wait 15
	ok
	contains 'tls_server page' "$output"
	contains 'request=GET / HTTP/1.0' "$output"
}

@test "a client resuming its TLS session is served" {
	sserver up up
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	run sclient -servername upstream.test -CAfile "$F/ica.pem" -verify_return_error -sess_out "$T/session"
	ok
	[ -s "$T/session" ]
	run sclient -servername upstream.test -CAfile "$F/ica.pem" -verify_return_error -sess_in "$T/session"
	ok
	contains 'HTTP/1.0 200 ok' "$output"
}

@test "a megabyte of random bytes passes both ways through an intercepted connection unchanged" {
	pyserver echo --cert "$F/up.pem" --key "$F/up.key" --mode echo
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	run tls_client bulk --sni upstream.test --cafile "$F/ica.pem" --count 1048576 --wait 60
	ok
	[ "$output" = 'echoed 1048576' ]
}

@test "twenty clients at once are all intercepted" {
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	local i clients=()
	for i in $(seq 20); do
		bg curl -sS --max-time 30 --cacert "$F/ica.pem" --resolve "upstream.test:$PORT:127.0.0.1" \
			-o "$T/page.$i" "https://upstream.test:$PORT/$i"
		clients+=("$BG_PID")
	done
	for i in $(seq 20); do
		wait "${clients[i - 1]}" || {
			echo "client $i failed" >&2
			return 1
		}
		grep -qx "request=GET /$i HTTP/1.1" "$T/page.$i"
	done
}

@test "an established connection idle for longer than the handshake timeout stays open" {
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	run tls_client get --sni upstream.test --cafile "$F/ica.pem" --pause 12
	ok
	contains 'tls_server page' "$output"
}

# --- faults --------------------------------------------------------------------------

@test "a client sending garbage instead of a ClientHello is closed with a reason, the next is served" {
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy --json "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	run tls_client garbage --wait 10
	ok
	err_logged '#1 .*(tls|hello|handshake)'
	json_error 'tls|hello|handshake'
	served_ok
}

@test "a ClientHello split across two writes is still read" {
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	run tls_client split-hello --sni upstream.test --cafile "$F/ica.pem" --delay 1
	ok
	contains 'tls_server page' "$output"
	contains 'sni=upstream.test' "$output"
}

@test "a ClientHello carried in two TLS records is read" {
	# RFC 8446 5.1: a handshake message may span records (a ClientHello
	# over 16 KiB must); OpenSSL servers accept it, so must tproxy
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	run tls_client hello-records --sni upstream.test --cafile "$F/ica.pem" --wait 15
	ok
	contains 'tls_server page' "$output"
	contains 'sni=upstream.test' "$output"
}

@test "clients stalled mid-handshake are closed after the handshake timeout while others are served" {
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy --json "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	# one stops in the middle of its ClientHello, one after it
	bg tls_client half-hello --sni upstream.test --wait 20 >"$T/half.out" 2>"$T/half.err"
	local half=$BG_PID
	bg tls_client stall --sni upstream.test --wait 20 >"$T/stall.out" 2>"$T/stall.err"
	local stall=$BG_PID
	# both are connected (python may take a second to start) and have sent
	local i
	for ((i = 0; i < 200; i++)); do
		[ "$(grep -c '"event":"accept"' "$T/tproxy.out")" -ge 2 ] && break
		sleep 0.05
	done
	sleep 0.5
	# the loop is not blocked by them
	served_ok
	local st=0 s
	wait "$half" || st=$?
	[ "$st" -eq 0 ] || {
		cat "$T/half.err" >&2
		return 1
	}
	wait "$stall" || st=$?
	[ "$st" -eq 0 ] || {
		cat "$T/stall.err" >&2
		return 1
	}
	# closed by the 10 s timeout: not before, not long after
	for s in half stall; do
		run -0 sed -n 's/^closed after \([0-9]*\)\..*/\1/p' "$T/$s.out"
		[ "$output" -ge 8 ] && [ "$output" -le 13 ] || {
			echo "$s: $(cat "$T/$s.out")" >&2
			return 1
		}
	done
	err_logged 'time'
	json_error 'time'
	err_logged '#1 .*time'
	err_logged '#2 .*time'
	run -0 jq -s '[.[] | select(.event == "error" and (.reason | test("time"; "i")))] | length' "$T/tproxy.out"
	[ "$output" -eq 2 ]
	served_ok
}

@test "an upstream that never answers the ClientHello closes the client after the handshake timeout" {
	local fp
	fp=$(free_port)
	# accepts, reads nothing, answers nothing
	bg socat TCP-LISTEN:"$fp",bind=127.0.0.1,reuseaddr,fork SYSTEM:'sleep 60'
	local i
	for ((i = 0; i < 100; i++)); do
		nc -z 127.0.0.1 "$fp" 2>/dev/null && break
		sleep 0.05
	done
	SSL_CERT_FILE=$F/uca.pem start_tproxy --json "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$fp",tls
	local t0=$SECONDS
	run ! curl_up --cacert "$F/ica.pem" --max-time 30
	[ $((SECONDS - t0)) -le 14 ] || {
		echo "the client waited $((SECONDS - t0)) s" >&2
		return 1
	}
	err_logged '#1 .*time'
	json_error 'time'
}

@test "an upstream that resets during the handshake closes only that client, with a reason" {
	pyserver rst --cert "$F/up.pem" --key "$F/up.key" --mode reset
	local srst=$SPORT
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy --json "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$srst",tls \
		+ tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	run ! curl_up --cacert "$F/ica.pem"
	wait_for "$T/rst.log" '^reset$' 10
	err_logged "#1 .*(upstream|:$srst)"
	json_error "upstream|:$srst"
	route 2
	served_ok
	route 1
	run ! curl_up --cacert "$F/ica.pem"
	kill -0 "$TP_PID"
}

@test "an upstream that does not speak TLS closes the client with a reason" {
	bg python3 "$TOOLS/filt_server.py" --greet 'SSH-2.0-OpenSSH_9.2\r\n' "$T/ssh.port"
	wait_for "$T/ssh.port" '^[0-9]+$' 10
	SSL_CERT_FILE=$F/uca.pem start_tproxy --json "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$(cat "$T/ssh.port")",tls
	run ! curl_up --cacert "$F/ica.pem"
	err_logged '#1 .*(upstream|tls|ssl)'
	json_error 'upstream|tls|ssl'
	kill -0 "$TP_PID"
}

@test "a client that rejects the forged certificate is closed with a reason, the next is served" {
	sserver up up
	SSL_CERT_FILE=$F/uca.pem start_tproxy --json "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	# curl trusting only the upstream CA: the forged certificate is refused
	run -60 curl_up --cacert "$F/uca.pem"
	err_logged '#1 .*(alert|unknown ca|certificate|handshake)'
	json_error 'alert|unknown ca|certificate|handshake'
	served_ok
}

# sni_lines: the lines about a server name in $T/tproxy.err, those counted
# in a "suppressed N more" line included
sni_lines() {
	awk 'tolower($0) ~ /sni|server.?name/ {
		n += /^tproxy: suppressed [0-9]+ more/ ? $3 : 1 } END { print n + 0 }' "$T/tproxy.err"
}

@test "an invalid SNI is logged and not used" {
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy --json "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	local long n
	long=$(printf 'a%.0s' {1..60}).$(printf 'b%.0s' {1..60}).$(printf 'c%.0s' {1..60}).$(printf 'd%.0s' {1..60}).eeeee.test
	# 254 bytes: too long for a DNS name, short enough for s_client to send
	[ "${#long}" -eq 254 ]
	for n in 'evil,name.test' 'evil/name.test' "$long"; do
		run sclient -servername "$n"
		ok
		contains 'HTTP/1.0 200 OK' "$output"
		contains 'sni=-' "$output"
	done
	run tls_client raw-sni --sni-hex "$(printf 'nul\0name.test' | od -An -tx1 | tr -d ' \n')" --wait 15
	ok
	# a line each, or counted in a later "suppressed N more like this" line
	# (lines of one kind come at most once a second)
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(sni_lines)" -ge 4 ] && break
		sleep 0.05
	done
	[ "$(sni_lines)" -ge 4 ]
	# the upstream never saw any of them
	run -0 sh -c "grep '^hello' '$T/up.log' | sort -u"
	same 'the hellos the upstream saw' 'hello sni=- alpn=-' "$output"
	served_ok
}

@test "hundreds of failed handshakes leave the descriptor count where it was" {
	pyserver up --cert "$F/up.pem" --key "$F/up.key"
	local sup=$SPORT
	pyserver rst --cert "$F/up.pem" --key "$F/up.key" --mode reset
	local srst=$SPORT
	pyserver self --cert "$F/self.pem" --key "$F/self.key"
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$sup",tls \
		+ tcp-listen:0,tls tcp:127.0.0.1:"$srst",tls + tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	# warm up: one of each, so whatever is made once (the leaf key, the
	# forged certificate) is there before counting
	served_ok
	run tls_client garbage
	ok
	route 2
	run tls_client fail --sni upstream.test
	ok
	route 3
	run tls_client fail --sni upstream.test
	ok
	sleep 0.5
	local before i now
	before=$(fd_count "$TP_PID")
	route 1
	run tls_client garbage --count 500 --wait 10
	ok
	[ "$output" = 'closed 500' ]
	run tls_client reject --count 100 --sni upstream.test
	ok
	[ "$output" = 'rejected 100' ]
	# clients gone before their upstream answered, politely or by a reset
	run tls_client hello-close --count 100 --sni upstream.test
	ok
	run tls_client hello-close --count 100 --sni upstream.test --rst
	ok
	# upstreams that reset, upstreams that fail verification
	route 2
	run tls_client fail --count 100 --sni upstream.test
	ok
	route 3
	run tls_client fail --count 100 --sni upstream.test
	ok
	route 1
	served_ok
	for ((i = 0; i < 100; i++)); do
		now=$(fd_count "$TP_PID")
		[ "$now" -le "$before" ] && break
		sleep 0.05
	done
	[ "$now" -le "$before" ] || {
		echo "descriptors: $before before, $now after" >&2
		ls -l "/proc/$TP_PID/fd" >&2
		return 1
	}
}

@test "SIGTERM with an intercepted connection open ends tproxy with status 0" {
	pyserver up --cert "$F/up.pem" --key "$F/up.key" --mode echo
	SSL_CERT_FILE=$F/uca.pem start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls
	# the client waits for more than the echo of what it sent
	bg tls_client get --sni upstream.test --cafile "$F/ica.pem" --send 'open\n' --count 100 >"$T/client.out" 2>&1
	local client=$BG_PID
	wait_for "$T/up.log" '^done ' 10
	stop_tproxy
	[ "$TP_STATUS" -eq 0 ]
	grep -q '^tproxy: exiting on SIGTERM' "$T/tproxy.err"
	# the client's connection went with it
	wait_gone "$client" 5
}

# --- the command line --------------------------------------------------------------

@test "verify= other than 0 or 1 is a usage error" {
	run -2 --separate-stderr timeout 10 "$TPROXY" tcp-listen:0,tls tcp:127.0.0.1:443,tls,verify=2
	contains 'verify' "$stderr"
	lacks 'listening on' "$stderr"
}

@test "a bad passthrough= regex is a usage error" {
	run -2 --separate-stderr timeout 10 "$TPROXY" 'tcp-listen:0,tls,passthrough=(' tcp:127.0.0.1:443,tls
	contains 'passthrough' "$stderr"
	lacks 'listening on' "$stderr"
}

@test "cert=, key=, keylog= and passthrough= without tls, key= without cert=, and --ca-cert alone are usage errors" {
	local spec
	for spec in "tcp-listen:0,cert=$F/served.pem,key=$F/served.key" "tcp-listen:0,keylog=$T/k.log" \
		'tcp-listen:0,passthrough=x' "tcp-listen:0,tls,key=$F/served.key"; do
		run -2 --separate-stderr timeout 10 "$TPROXY" "$spec" tcp:127.0.0.1:443,tls
		[[ $stderr == 'tproxy: '* ]]
		lacks 'listening on' "$stderr"
	done
	run -2 --separate-stderr timeout 10 "$TPROXY" --ca-cert="$F/ica.pem" tcp-listen:0,tls tcp:127.0.0.1:443,tls
	contains 'ca-key' "$stderr"
	run -2 --separate-stderr timeout 10 "$TPROXY" --ca-key="$F/ica.key" tcp-listen:0,tls tcp:127.0.0.1:443,tls
	contains 'ca-cert' "$stderr"
}

@test "a keylog= file that cannot be opened is a runtime failure naming it" {
	run -1 --separate-stderr timeout 10 "$TPROXY" "${ICA[@]}" "tcp-listen:0,tls,keylog=$T/no/such/dir/keys.log" \
		tcp:127.0.0.1:443,tls
	contains "$T/no/such/dir/keys.log" "$stderr"
	lacks 'listening on' "$stderr"
}

@test "a cert= that cannot be loaded is a runtime failure naming the file" {
	run -1 --separate-stderr timeout 10 "$TPROXY" "tcp-listen:0,tls,cert=$T/missing.pem,key=$F/served.key" tcp:127.0.0.1:443
	contains "$T/missing.pem" "$stderr"
	lacks 'listening on' "$stderr"
}

@test "a --ca-cert that cannot be loaded, or a --ca-key that is not its key, is a runtime failure" {
	run -1 --separate-stderr timeout 10 "$TPROXY" --ca-cert="$T/missing.pem" --ca-key="$F/ica.key" \
		tcp-listen:0,tls tcp:127.0.0.1:443,tls
	contains "$T/missing.pem" "$stderr"
	lacks 'listening on' "$stderr"
	run -1 --separate-stderr timeout 10 "$TPROXY" --ca-cert="$F/ica.pem" --ca-key="$F/uca.key" \
		tcp-listen:0,tls tcp:127.0.0.1:443,tls
	lacks 'listening on' "$stderr"
}

