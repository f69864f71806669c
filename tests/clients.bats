#!/usr/bin/env bats
# tests/clients.bats - real clients through tproxy, used as people use them:
# wget (a route and the HTTP proxy listener), h2load (HTTP/2 through TLS
# interception), ssh and scp (a real sshd), git (git daemon), redis-cli and
# testssl.sh.
# Every server is started here, on loopback, and stopped in teardown.

bats_require_minimum_version 1.5.0

load helper

F=$BATS_FILE_TMPDIR

setup_file() {
	# a CA for tproxy to forge with, and one that issued the upstream's
	# certificate (ECDSA P-256: quick to make)
	local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
	openssl req -x509 "${ec[@]}" -days 2 -keyout "$F/ica.key" -out "$F/ica.pem" \
		-subj '/CN=clients.bats interception CA' \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>"$F/openssl.log"
	openssl req -x509 "${ec[@]}" -days 2 -keyout "$F/uca.key" -out "$F/uca.pem" \
		-subj '/CN=clients.bats upstream CA' \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>>"$F/openssl.log"
	openssl req "${ec[@]}" -keyout "$F/up.key" -out "$F/up.csr" \
		-subj /CN=upstream.test 2>>"$F/openssl.log"
	printf 'subjectAltName=DNS:upstream.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$F/up.ext"
	openssl x509 -req -in "$F/up.csr" -CA "$F/uca.pem" -CAkey "$F/uca.key" \
		-CAcreateserial -days 2 -extfile "$F/up.ext" -out "$F/up.pem" 2>>"$F/openssl.log"
	# 2 MiB of random bytes, fetched and copied by the tests
	head -c $((2 * 1024 * 1024)) /dev/urandom >"$F/blob"
	sha256sum <"$F/blob" | cut -d' ' -f1 >"$F/blob.sha"
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (5 s)
wait_port() {
	local i
	for ((i = 0; i < 100; i++)); do
		python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
			"$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "nothing listens on 127.0.0.1:$1" >&2
	return 1
}

# nginx_start: nginx on $NPORT (plain HTTP/1.1, serving $F) and $HPORT
# (TLS with HTTP/2, certificate for upstream.test)
nginx_start() {
	NPORT=$(free_port)
	HPORT=$(free_port)
	mkdir -p "$T/nginx"
	cat >"$T/nginx/nginx.conf" <<-EOF
		daemon off;
		master_process off;
		worker_processes 1;
		pid $T/nginx/nginx.pid;
		error_log $T/nginx/error.log;
		events { worker_connections 256; }
		http {
			access_log $T/nginx/access.log;
			client_body_temp_path $T/nginx/body;
			server {
				listen 127.0.0.1:$NPORT;
				root $F;
			}
			server {
				listen 127.0.0.1:$HPORT ssl http2;
				ssl_certificate $F/up.pem;
				ssl_certificate_key $F/up.key;
				location / { return 200 "nginx says \$server_protocol\n"; }
			}
		}
	EOF
	bg nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log"
	wait_port "$NPORT" && wait_port "$HPORT"
}

@test "wget fetches a file through a route, byte-exact" {
	nginx_start
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$NPORT"
	run -0 wget -q -O "$T/got" "http://127.0.0.1:$PORT/blob"
	[ "$(sha256sum <"$T/got" | cut -d' ' -f1)" = "$(cat "$F/blob.sha")" ]
}

@test "wget through the HTTP proxy listener (http_proxy=) fetches the file, byte-exact" {
	nginx_start
	start_tproxy -v http-listen:0 orig
	run -0 wget -q -e use_proxy=yes -e "http_proxy=http://127.0.0.1:$PORT" \
		-O "$T/got" "http://127.0.0.1:$NPORT/blob"
	[ "$(sha256sum <"$T/got" | cut -d' ' -f1)" = "$(cat "$F/blob.sha")" ]
	# tproxy connected to the host the request named
	grep -q "127.0.0.1:$NPORT" "$T/tproxy.err"
}

@test "wget against a route whose upstream is down fails at once, and the next client is served" {
	local closed
	closed=$(free_port)
	nginx_start
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$closed" + tcp-listen:0 "tcp:127.0.0.1:$NPORT"
	run wget -q -t 1 -T 10 -O "$T/got" "http://127.0.0.1:$(sed -n 1p <<<"$PORTS")/blob"
	[ "$status" -ne 0 ]
	wait_for "$T/tproxy.err" 'Connection refused' 5
	run -0 wget -q -O "$T/got" "http://127.0.0.1:$(sed -n 2p <<<"$PORTS")/blob"
	[ "$(sha256sum <"$T/got" | cut -d' ' -f1)" = "$(cat "$F/blob.sha")" ]
}

@test "h2load makes 200 HTTP/2 requests through TLS interception, all succeed" {
	nginx_start
	SSL_CERT_FILE=$F/uca.pem start_tproxy --ca-cert="$F/ica.pem" --ca-key="$F/ica.key" \
		tcp-listen:0,tls "tcp:127.0.0.1:$HPORT,tls"
	run -0 h2load -n 200 -c 4 -m 4 "https://127.0.0.1:$PORT/"
	echo "$output"
	[[ "$output" == *"Application protocol: h2"* ]]
	[[ "$output" == *"requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed, 0 errored"* ]]
	[[ "$output" == *"status codes: 200 2xx"* ]]
	# the client saw a certificate tproxy forged: the upstream's is not
	# signed by the interception CA
	run -0 bash -c "openssl s_client -connect 127.0.0.1:$PORT -servername upstream.test \
		-CAfile '$F/ica.pem' -verify_return_error </dev/null 2>&1"
	[[ "$output" == *"Verify return code: 0 (ok)"* ]]
}

# sshd_start: a real sshd on $SSHPORT that takes $T/id (root's key)
sshd_start() {
	[ "$(id -u)" = 0 ] || skip "sshd needs root (make check runs as root in CI)"
	SSHPORT=$(free_port)
	mkdir -p /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$T/hostkey"
	ssh-keygen -q -t ed25519 -N '' -f "$T/id"
	cp "$T/id.pub" "$T/authorized_keys"
	cat >"$T/sshd_config" <<-EOF
		Port $SSHPORT
		ListenAddress 127.0.0.1
		HostKey $T/hostkey
		AuthorizedKeysFile $T/authorized_keys
		PidFile $T/sshd.pid
		StrictModes no
		UsePAM no
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		PermitRootLogin prohibit-password
		Subsystem sftp internal-sftp
	EOF
	bg /usr/sbin/sshd -D -e -f "$T/sshd_config"
	wait_port "$SSHPORT"
}

SSH_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR)

@test "ssh runs a command through tproxy, and scp copies 2 MiB both ways, byte-exact" {
	sshd_start
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$SSHPORT"
	run -0 ssh "${SSH_OPTS[@]}" -i "$T/id" -p "$PORT" root@127.0.0.1 'echo "through $SSH_CONNECTION"'
	# sshd saw tproxy's connection, not the client's
	[[ "$output" == "through 127.0.0.1 "* ]]
	[[ "$output" == *" $SSHPORT" ]]
	run -0 scp -q "${SSH_OPTS[@]}" -i "$T/id" -P "$PORT" "$F/blob" "root@127.0.0.1:$T/up"
	[ "$(sha256sum <"$T/up" | cut -d' ' -f1)" = "$(cat "$F/blob.sha")" ]
	run -0 scp -q "${SSH_OPTS[@]}" -i "$T/id" -P "$PORT" "root@127.0.0.1:$T/up" "$T/down"
	[ "$(sha256sum <"$T/down" | cut -d' ' -f1)" = "$(cat "$F/blob.sha")" ]
}

@test "ssh through a route whose upstream is down fails with an error, not a hang" {
	local closed
	closed=$(free_port)
	ssh-keygen -q -t ed25519 -N '' -f "$T/id"
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$closed"
	run timeout 20 ssh "${SSH_OPTS[@]}" -i "$T/id" -p "$PORT" root@127.0.0.1 true
	[ "$status" -eq 255 ]
	wait_for "$T/tproxy.err" 'Connection refused' 5
}

@test "git clone over git:// through tproxy gets the repository, same HEAD" {
	local gport head
	gport=$(free_port)
	git init -q "$T/repo"
	cp "$F/blob" "$T/repo/blob"
	git -C "$T/repo" add blob
	git -C "$T/repo" -c user.name=t -c user.email=t@example.test commit -q -m first
	head=$(git -C "$T/repo" rev-parse HEAD)
	bg git daemon --reuseaddr --listen=127.0.0.1 --port="$gport" --base-path="$T" --export-all "$T"
	wait_port "$gport"
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$gport"
	run -0 git clone -q "git://127.0.0.1:$PORT/repo" "$T/clone"
	[ "$(git -C "$T/clone" rev-parse HEAD)" = "$head" ]
	[ "$(sha256sum <"$T/clone/blob" | cut -d' ' -f1)" = "$(cat "$F/blob.sha")" ]
}

@test "redis-cli through tproxy: SET then GET, and 10,000 pipelined commands all answered" {
	local rport i
	rport=$(free_port)
	bg redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --protected-mode no
	wait_port "$rport"
	start_tproxy tcp-listen:0 "tcp:127.0.0.1:$rport"
	run -0 redis-cli -p "$PORT" SET greeting 'through tproxy'
	[ "$output" = OK ]
	run -0 redis-cli -p "$PORT" GET greeting
	[ "$output" = 'through tproxy' ]
	for ((i = 0; i < 10000; i++)); do printf 'INCR counter\r\n'; done >"$T/cmds"
	run -0 redis-cli -p "$PORT" --pipe <"$T/cmds"
	[[ "$output" == *"errors: 0, replies: 10000"* ]]
	run -0 redis-cli -p "$rport" GET counter
	[ "$output" = 10000 ]
}

@test "testssl.sh -p against a TLS listener: TLS 1.2 and 1.3 offered, nothing older, ALPN h2 from nginx; the next client is served" {
	nginx_start
	SSL_CERT_FILE=$F/uca.pem start_tproxy --ca-cert="$F/ica.pem" --ca-key="$F/ica.key" \
		tcp-listen:0,tls "tcp:127.0.0.1:$HPORT,tls"
	run -0 timeout 300 testssl --quiet --color 0 --warnings off -p "127.0.0.1:$PORT"
	echo "$output"
	grep -Eq '^ SSLv2 +not offered' <<<"$output"
	grep -Eq '^ SSLv3 +not offered' <<<"$output"
	grep -Eq '^ TLS 1 +not offered' <<<"$output"
	grep -Eq '^ TLS 1\.1 +not offered' <<<"$output"
	grep -Eq '^ TLS 1\.2 +offered' <<<"$output"
	grep -Eq '^ TLS 1\.3 +offered' <<<"$output"
	grep -Eq '^ ALPN/HTTP2 +h2' <<<"$output"
	# its probes of old protocols and odd hellos left tproxy serving
	run -0 h2load -n 20 -c 2 "https://127.0.0.1:$PORT/"
	[[ "$output" == *"20 succeeded, 0 failed"* ]]
}
