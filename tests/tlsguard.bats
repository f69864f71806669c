#!/usr/bin/env bats
# tests/tlsguard.bats - TLS interception against hostile or careless peers and
# files (the hardening findings in the TLS code): the state directory and the
# CA key files, upstream certificates too big to forge from, the names a
# forged certificate may copy, a TLS stream cut short (no close_notify), and
# the reasons logged when a TLS connection fails.
#
# Every CA and certificate is made here with the openssl CLI, in setup_file;
# tests/tools/eof_tool.py is the TLS peer that ends its stream in a chosen way
# and tells how the other end ended.

# shellcheck disable=SC2154 # $output, $stderr, $lines: set by bats' run
bats_require_minimum_version 1.5.0

load helper

F=$BATS_FILE_TMPDIR
EOF_TOOL=$TOOLS/eof_tool.py
# the interception CA, for the tests that give one
ICA=(--ca-cert="$F/ica.pem" --ca-key="$F/ica.key")

# --- fixtures -----------------------------------------------------------------

# new_ca NAME SUBJECT: a self-signed EC CA in $F/NAME.pem, key $F/NAME.key
new_ca() {
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-sha256 -days 3650 -keyout "$F/$1.key" -out "$F/$1.pem" -subj "$2" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>"$F/$1.log"
}

# new_leaf NAME SUBJECT SERIAL EXTFILE: a server certificate $F/NAME.pem (key
# $F/NAME.key) issued by uca, with the extensions in EXTFILE
new_leaf() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$F/$1.key" -out "$F/$1.csr" -subj "$2" 2>"$F/$1.log"
	openssl x509 -req -in "$F/$1.csr" -CA "$F/uca.pem" -CAkey "$F/uca.key" \
		-set_serial "$3" -days 365 -extfile "$4" -out "$F/$1.pem" 2>>"$F/$1.log"
}

# names N: an openssl extension file with N one-letter DNS names
names() {
	python3 -c '
import sys
print("subjectAltName = @alt")
print("[alt]")
for i in range(int(sys.argv[1])):
    print("DNS.%d = %s" % (i, chr(97 + i % 26)))' "$1"
}

setup_file() {
	# a CA that tproxy generates lands here, never in root's home
	export XDG_STATE_HOME=$BATS_FILE_TMPDIR/state
	new_ca ica '/O=tlsguard.bats/CN=tproxy test interception CA'
	new_ca uca '/O=tlsguard.bats/CN=Upstream Test Root CA'
	printf '%s\n' 'subjectAltName = DNS:upstream.test' >"$F/up.ext"
	new_leaf up /CN=upstream.test 1 "$F/up.ext"
	# every kind of name: only the DNS and IP ones may be copied
	printf '%s\n' 'subjectAltName = DNS:upstream.test,email:admin@upstream.test,URI:https://upstream.test/id,IP:192.0.2.7,DNS:alt.upstream.test,otherName:1.2.3.4;UTF8:other-name' \
		>"$F/mixed.ext"
	new_leaf mixed /CN=upstream.test 2 "$F/mixed.ext"
	# 30,000 one-letter names: 90 KB of DER, under OpenSSL's 100 KiB limit
	# on the certificate message, but megabytes once decoded; and 2,000
	# names in 6 KB
	names 30000 >"$F/many.ext"
	new_leaf many /CN=upstream.test 3 "$F/many.ext"
	names 2000 >"$F/lots.ext"
	new_leaf lots /CN=upstream.test 5 "$F/lots.ext"
	# few names, but 80 KB of certificate (a long comment)
	{
		echo 'subjectAltName = DNS:upstream.test'
		printf 'nsComment = %s\n' "$(head -c 80000 /dev/zero | tr '\0' c)"
	} >"$F/fat.ext"
	new_leaf fat /CN=upstream.test 4 "$F/fat.ext"
	local c
	for c in ica uca up mixed many lots fat; do
		[ -s "$F/$c.pem" ] || {
			echo "fixture $c.pem was not made:" >&2
			cat "$F/$c.log" >&2
			return 1
		}
	done
}

# --- helpers ------------------------------------------------------------------

# tproxy_fails ARG...: tproxy ARG... exits 1 at start-up, listening on nothing;
# its stderr is in $stderr
tproxy_fails() {
	run -1 --separate-stderr timeout 10 "$TPROXY" "$@"
	lacks 'listening on' "$stderr"
}

# no_ca DIR: nothing named ca.* was made in DIR
no_ca() {
	[ -z "$(find "$1" -name 'ca.*' 2>/dev/null)" ] && return 0
	echo "a CA was made in $1:" >&2
	ls -la "$1" >&2
	return 1
}

# eof_server NAME CERT ARG...: tests/tools/eof_tool.py as the upstream, with
# $F/CERT.pem, in the background; sets SPORT
eof_server() {
	local name=$1 cert=$2
	shift 2
	bg python3 "$EOF_TOOL" server "$T/$name.port" --cert "$F/$cert.pem" \
		--key "$F/$cert.key" --log "$T/$name.log" "$@"
	wait_for "$T/$name.port" '^[0-9]+$' 10
	SPORT=$(cat "$T/$name.port")
}

# sserver NAME CERT: `openssl s_server -www` with $F/CERT.pem on 127.0.0.1, in
# the background; sets SPORT
sserver() {
	# shellcheck disable=SC2217 # s_server is to read nothing from the test's stdin
	bg openssl s_server -accept 127.0.0.1:0 -cert "$F/$2.pem" -key "$F/$2.key" \
		-www >"$T/$1.out" 2>"$T/$1.err" </dev/null
	wait_for "$T/$1.out" '^ACCEPT ' 10
	SPORT=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$T/$1.out")
}

# eof_client ARG...: tests/tools/eof_tool.py as a client of tproxy, trusting
# the interception CA and checking the name upstream.test
eof_client() {
	timeout 60 python3 "$EOF_TOOL" client 127.0.0.1 "$PORT" --cafile "$F/ica.pem" \
		--sni upstream.test "$@"
}

# leaf FILE: the certificate tproxy serves for upstream.test, saved in FILE
leaf() {
	timeout 20 openssl s_client -connect 127.0.0.1:"$PORT" -servername upstream.test \
		</dev/null >"$1.txt" 2>&1 || true
	sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$1.txt" >"$1"
	[ -s "$1" ] && return 0
	echo "no certificate from tproxy:" >&2
	cat "$1.txt" >&2
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

# --- the state directory and the CA key (finding 6) ---------------------------

@test "a generated CA's directory is made mode 0700 and its key 0600" {
	start_tproxy tcp-listen:0,tls echo
	[ "$(stat -c %a "$XDG_STATE_HOME/tproxy")" = 700 ]
	[ "$(stat -c %a "$XDG_STATE_HOME/tproxy/ca.key")" = 600 ]
}

@test "a state directory that group or others may write to is refused, and no CA is made in it" {
	mkdir -p "$T/state/tproxy"
	chmod 770 "$T/state/tproxy"
	XDG_STATE_HOME=$T/state tproxy_fails tcp-listen:0,tls echo
	contains "$T/state/tproxy is writable by group or others" "$stderr"
	contains "chmod 700 $T/state/tproxy" "$stderr"
	no_ca "$T/state/tproxy"
}

@test "a dangling ca.key symbolic link in another user's state directory: refused, and nothing is written where it points" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to give the directory to another user"
	mkdir -p "$T/state/tproxy"
	chmod 700 "$T/state/tproxy"
	ln -s "$T/stolen.key" "$T/state/tproxy/ca.key"
	chown -h nobody "$T/state/tproxy" "$T/state/tproxy/ca.key"
	XDG_STATE_HOME=$T/state tproxy_fails tcp-listen:0,tls echo
	matches "$T/state/tproxy is owned by uid [0-9]+, not by this user" "$stderr"
	[ ! -e "$T/stolen.key" ] || {
		echo "the CA key was written through the link:" >&2
		ls -l "$T/stolen.key" >&2
		return 1
	}
	[ ! -e "$T/state/tproxy/ca.pem" ]
}

@test "a dangling ca.key symbolic link in our own state directory is never followed" {
	mkdir -p "$T/state/tproxy"
	chmod 700 "$T/state/tproxy"
	ln -s "$T/elsewhere.key" "$T/state/tproxy/ca.key"
	XDG_STATE_HOME=$T/state tproxy_fails tcp-listen:0,tls echo
	contains "$T/state/tproxy/ca.key is a symbolic link" "$stderr"
	[ ! -e "$T/elsewhere.key" ]
	[ ! -e "$T/state/tproxy/ca.pem" ]
}

@test "a generated ca.key made readable by group or others is refused, with the chmod that fixes it" {
	XDG_STATE_HOME=$T/state start_tproxy tcp-listen:0,tls echo
	stop_tproxy
	chmod 640 "$T/state/tproxy/ca.key"
	XDG_STATE_HOME=$T/state tproxy_fails tcp-listen:0,tls echo
	contains "$T/state/tproxy/ca.key is open to group or others (mode 640)" "$stderr"
	contains "chmod 600 $T/state/tproxy/ca.key" "$stderr"
	chmod 600 "$T/state/tproxy/ca.key"
	XDG_STATE_HOME=$T/state start_tproxy tcp-listen:0,tls echo
}

@test "a --ca-key readable by group or others is refused with the same message" {
	cp "$F/ica.key" "$T/open.key"
	chmod 644 "$T/open.key"
	tproxy_fails --ca-cert="$F/ica.pem" --ca-key="$T/open.key" tcp-listen:0,tls echo
	contains "--ca-key=$T/open.key is open to group or others (mode 644)" "$stderr"
	contains "chmod 600 $T/open.key" "$stderr"
}

@test "a relative XDG_STATE_HOME is refused, and nothing is made" {
	cd "$T"
	XDG_STATE_HOME=relative HOME=$T/home tproxy_fails tcp-listen:0,tls echo
	contains 'XDG_STATE_HOME=relative is not an absolute path' "$stderr"
	[ ! -e "$T/relative" ]
	[ ! -e "$T/home" ]
}

@test "a relative HOME is refused, and nothing is made" {
	cd "$T"
	XDG_STATE_HOME='' HOME=home tproxy_fails tcp-listen:0,tls echo
	contains 'HOME=home is not an absolute path' "$stderr"
	[ ! -e "$T/home" ]
}

# --- upstream certificates to forge from (finding 2) -------------------------

@test "an upstream certificate with 30,000 names is refused with a reason, and tproxy serves the next client" {
	local big
	sserver many many
	big=$SPORT
	sserver up up
	start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$big",tls,verify=0 \
		+ tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	run ! timeout 20 openssl s_client -connect 127.0.0.1:"$PORT" -servername upstream.test </dev/null
	err_logged "#1 the upstream's certificate is [0-9]+ bytes, over the 65536 tproxy forges from: refused"
	PORT=$(sed -n 2p <<<"$PORTS")
	leaf "$T/good.pem"
	kill -0 "$TP_PID"
}

@test "an upstream certificate with 2,000 names is refused, the count named in the reason" {
	eof_server lots lots
	start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	run ! eof_client --mode read
	err_logged "#1 the upstream's certificate has 2000 subject alternative names, over the 1000 tproxy forges from: refused"
}

@test "an upstream certificate of 80 KB with a few names is refused as too big" {
	eof_server fat fat
	start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	run ! eof_client --mode read
	err_logged "#1 the upstream's certificate is [0-9]+ bytes, over the 65536 tproxy forges from: refused"
}

@test "the forged certificate keeps the upstream's DNS and IP names only: no email, URI or other name" {
	eof_server mixed mixed
	start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	leaf "$T/forged.pem"
	run -0 openssl x509 -in "$F/mixed.pem" -noout -ext subjectAltName
	contains 'email:admin@upstream.test' "$output"
	run -0 openssl x509 -in "$T/forged.pem" -noout -ext subjectAltName
	[ "$(sed '1d; s/^ *//' <<<"$output")" = 'DNS:upstream.test, IP Address:192.0.2.7, DNS:alt.upstream.test' ] || {
		printf 'forged names:\n%s\n' "$output" >&2
		return 1
	}
	run -0 openssl x509 -in "$T/forged.pem" -noout -text
	lacks email "$output"
	lacks URI "$output"
	lacks othername "${output,,}"
	run -0 openssl verify -no-CApath -no-CAstore -CAfile "$F/ica.pem" -verify_hostname alt.upstream.test "$T/forged.pem"
}

# --- the end of a TLS stream (finding 11) -------------------------------------

@test "an upstream that ends its TLS without close_notify: the client sees an unexpected EOF, not a clean end" {
	eof_server up up --mode send --end ragged
	start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	run -0 eof_client --mode read
	[ "$output" = 'eof unexpected 100000' ] || {
		echo "the client saw: $output" >&2
		return 1
	}
}

@test "an upstream that ends its TLS with close_notify: the client sees a clean end" {
	eof_server up up --mode send --end clean
	start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	run -0 eof_client --mode read
	[ "$output" = 'eof clean 100000' ] || {
		echo "the client saw: $output" >&2
		return 1
	}
}

@test "a client that ends its TLS without close_notify: the upstream sees an unexpected EOF" {
	eof_server up up --mode read
	start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	run -0 eof_client --mode send --end ragged
	wait_for "$T/up.log" '^(eof|error)' 20
	[ "$(cat "$T/up.log")" = 'eof unexpected 100000' ] || {
		echo "the upstream saw: $(cat "$T/up.log")" >&2
		return 1
	}
}

@test "a client that ends its TLS with close_notify: the upstream sees a clean end" {
	eof_server up up --mode read
	start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	run -0 eof_client --mode send --end clean
	wait_for "$T/up.log" '^(eof|error)' 20
	[ "$(cat "$T/up.log")" = 'eof clean 100000' ] || {
		echo "the upstream saw: $(cat "$T/up.log")" >&2
		return 1
	}
}

# --- reasons (finding 12) -----------------------------------------------------

@test "a client that goes away mid-stream on a TLS route is logged with what happened, never 'unknown error'" {
	eof_server up up --mode send --size 50000000
	start_tproxy --json "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	# a FIN without close_notify, then a reset while tproxy still writes
	run -0 eof_client --mode read --stop-after 1000000 --end cut
	contains 'stopped after' "$output"
	err_logged '#1 (write to|read from) client: '
	run -0 grep '#1 ' "$T/tproxy.err"
	matches '#1 (write to|read from) client: (Broken pipe|Connection reset by peer)$' "$output"
	lacks 'unknown error' "$output"
	run -0 jq -r 'select(.event == "error") | .reason' "$T/tproxy.out"
	matches '^(write to|read from) client: (Broken pipe|Connection reset by peer)$' "$output"
}

@test "a client that rejects the forged certificate: the reason names its alert" {
	eof_server up up
	start_tproxy "${ICA[@]}" tcp-listen:0,tls tcp:127.0.0.1:"$SPORT",tls,verify=0
	# a client that trusts only the upstream's CA, not tproxy's
	run ! timeout 60 python3 "$EOF_TOOL" client 127.0.0.1 "$PORT" --cafile "$F/uca.pem" \
		--sni upstream.test --mode read
	err_logged '#1 .*client: TLS alert from the client: unknown CA$'
	run -0 grep '#1 ' "$T/tproxy.err"
	lacks 'unknown error' "$output"
}
