#!/usr/bin/env bats
# transparent.bats - TPROXY mode, as a user runs it: tproxy on a gateway
# between a client and a server, each in its own network namespace, with
# nftables diverting the client's traffic to tproxy (tproxy or redirect
# rules).  The server (tests/tools/tpx_server.py) answers every connection
# and datagram with the address it saw the peer at; the client is
# tests/tools/tpx_client.py.  Needs root; every test builds its own
# namespaces and teardown removes them, whatever happened.
#
#   client 198.51.100.2/24        gateway             server 203.0.113.10/24
#          2001:db8:1::2/64  veth-c     veth-s               203.0.113.11/24
#               eth0 ---------- 198.51.100.1  203.0.113.1 ------ eth0
#                               2001:db8:1::1 2001:db8:2::1     2001:db8:2::10/64
#
# The server listens on TCP 80 and 10080 and UDP 53 and 5353 on all its
# addresses.

bats_require_minimum_version 1.5.0

load helper

# keep the helper's setup and teardown, and wrap them
eval "helper_$(declare -f setup)"
eval "helper_$(declare -f teardown)"

# every namespace ever created by this file, for teardown_file's last sweep
NS_RECORD=${BATS_FILE_TMPDIR:-/tmp}/tpx-netns

# ns NAME CMD...: run CMD in namespace NAME
ns() {
	local n=$1
	shift
	ip netns exec "$n" "$@"
}

# topo_up [tproxy|redirect|none]: build the three namespaces, the links,
# addresses and routes, the gateway's diverting rules (tproxy rules by
# default), and start the server.  Sets NS_C, NS_G, NS_S.
topo_up() {
	local rules=${1:-tproxy} n i
	for n in "$NS_C" "$NS_G" "$NS_S"; do
		echo "$n" >>"$NS_RECORD"
		ip netns add "$n"
		ip -n "$n" link set lo up
	done
	ip link add veth-c netns "$NS_G" type veth peer name eth0 netns "$NS_C"
	ip link add veth-s netns "$NS_G" type veth peer name eth0 netns "$NS_S"

	ip -n "$NS_C" addr add 198.51.100.2/24 dev eth0
	ip -n "$NS_C" addr add 2001:db8:1::2/64 dev eth0 nodad
	ip -n "$NS_C" link set eth0 up
	ip -n "$NS_C" route add default via 198.51.100.1
	ip -n "$NS_C" -6 route add default via 2001:db8:1::1

	ip -n "$NS_S" addr add 203.0.113.10/24 dev eth0
	ip -n "$NS_S" addr add 203.0.113.11/24 dev eth0
	ip -n "$NS_S" addr add 2001:db8:2::10/64 dev eth0 nodad
	ip -n "$NS_S" link set eth0 up
	ip -n "$NS_S" route add default via 203.0.113.1
	ip -n "$NS_S" -6 route add default via 2001:db8:2::1

	ip -n "$NS_G" addr add 198.51.100.1/24 dev veth-c
	ip -n "$NS_G" addr add 2001:db8:1::1/64 dev veth-c nodad
	ip -n "$NS_G" addr add 203.0.113.1/24 dev veth-s
	ip -n "$NS_G" addr add 2001:db8:2::1/64 dev veth-s nodad
	ip -n "$NS_G" link set veth-c up
	ip -n "$NS_G" link set veth-s up
	ns "$NS_G" sysctl -qw net.ipv4.ip_forward=1
	ns "$NS_G" sysctl -qw net.ipv6.conf.all.forwarding=1
	for i in all default veth-c veth-s; do
		ns "$NS_G" sysctl -qw "net.ipv4.conf.$i.rp_filter=0"
	done

	case $rules in
	tproxy) gw_tproxy_rules ;;
	redirect) gw_redirect_rules ;;
	none) ;;
	*) echo "topo_up: unknown rules '$rules'" >&2; return 1 ;;
	esac

	bg ip netns exec "$NS_S" python3 "$TOOLS/tpx_server.py" --tcp 80 --tcp 10080 \
		--udp 53 --udp 5353 --addr 203.0.113.10 --addr 203.0.113.11 \
		--addr 2001:db8:2::10 --ready "$T/server.ready" \
		--log "$T/server.log" 2>"$T/server.err"
	for ((i = 0; i < 200; i++)); do
		[ -s "$T/server.ready" ] && return 0
		sleep 0.025
	done
	echo "the server did not start:" >&2
	cat "$T/server.err" >&2
	return 1
}

# gw_tproxy_rules: the gateway diverts the client's TCP port 80 and UDP
# port 53 to port 8080 with TPROXY (both families); packets of transparent
# sockets (spoofed connections) are delivered locally
gw_tproxy_rules() {
	ns "$NS_G" nft -f - <<-'EOF'
	table inet tpx {
		chain pre {
			type filter hook prerouting priority mangle; policy accept;
			meta l4proto { tcp, udp } socket transparent 1 meta mark set 1 accept
			iifname "veth-c" tcp dport 80 tproxy ip to :8080 meta mark set 1 accept
			iifname "veth-c" tcp dport 80 tproxy ip6 to :8080 meta mark set 1 accept
			iifname "veth-c" udp dport 53 tproxy ip to :8080 meta mark set 1 accept
			iifname "veth-c" udp dport 53 tproxy ip6 to :8080 meta mark set 1 accept
		}
	}
	EOF
	ip -n "$NS_G" rule add fwmark 1 lookup 100
	ip -n "$NS_G" route add local 0.0.0.0/0 dev lo table 100
	ip -n "$NS_G" -6 rule add fwmark 1 lookup 100
	ip -n "$NS_G" -6 route add local ::/0 dev lo table 100
}

# gw_redirect_rules: the gateway redirects the client's TCP port 80 to its
# own port 8080 (NAT, both families)
gw_redirect_rules() {
	ns "$NS_G" nft -f - <<-'EOF'
	table ip tpxnat {
		chain pre {
			type nat hook prerouting priority dstnat;
			iifname "veth-c" tcp dport 80 redirect to :8080
		}
	}
	table ip6 tpxnat6 {
		chain pre {
			type nat hook prerouting priority dstnat;
			iifname "veth-c" tcp dport 80 redirect to :8080
		}
	}
	EOF
}

# topo_down: kill what still runs in this test's namespaces and delete them;
# safe to run twice, and when topo_up stopped half-way
topo_down() {
	local n p
	for n in "$@"; do
		[ -e "/run/netns/$n" ] || continue
		for p in $(ip netns pids "$n" 2>/dev/null); do
			kill -KILL "$p" 2>/dev/null || true
		done
		ip netns del "$n" 2>/dev/null || true
	done
}

# gw_tproxy ARGS...: start tproxy in the gateway namespace with stdout in
# $T/tproxy.out and stderr in $T/tproxy.err (through the command GW_PRE,
# an array, when set); wait until every route listens.  Sets TP_PID.
gw_tproxy() {
	local routes=1 a i
	for a in "$@"; do [ "$a" = + ] && routes=$((routes + 1)); done
	# not through ns(): a function in the background is a subshell, and
	# TP_PID must be tproxy itself (ip netns exec execs it)
	ip netns exec "$NS_G" ${GW_PRE[@]+"${GW_PRE[@]}"} "$TPROXY" "$@" \
		>"$T/tproxy.out" 2>"$T/tproxy.err" &
	TP_PID=$!
	PIDS+=("$TP_PID")
	for ((i = 0; i < 200; i++)); do
		if [ "$(grep -c '^tproxy: listening on' "$T/tproxy.err")" -ge "$routes" ]; then
			[ "$(readlink "/proc/$TP_PID/exe")" = "$(readlink -f "$TPROXY")" ] ||
				{ echo "pid $TP_PID is not $TPROXY" >&2; return 1; }
			return 0
		fi
		if ! kill -0 "$TP_PID" 2>/dev/null; then
			echo "tproxy exited early:" >&2
			cat "$T/tproxy.err" >&2
			return 1
		fi
		sleep 0.025
	done
	echo "tproxy did not start listening:" >&2
	cat "$T/tproxy.err" >&2
	return 1
}

# client ARGS...: tpx_client.py in the client namespace
client() {
	timeout 120 ip netns exec "$NS_C" python3 "$TOOLS/tpx_client.py" "$@"
}

# gw_client ARGS...: tpx_client.py on the gateway itself
gw_client() {
	timeout 120 ip netns exec "$NS_G" python3 "$TOOLS/tpx_client.py" "$@"
}

# gw_loopback_service: the gateway's own services on its loopback
# addresses (127.0.0.1 and ::1, TCP 80 and UDP 53), which no client should
# reach through tproxy; what reaches them goes to $T/gwlo.log
gw_loopback_service() {
	local i
	: >"$T/gwlo.log"
	bg ip netns exec "$NS_G" python3 "$TOOLS/tpx_server.py" --tcp 80 --udp 53 \
		--addr 127.0.0.1 --addr ::1 --ready "$T/gwlo.ready" \
		--log "$T/gwlo.log" 2>"$T/gwlo.err"
	for ((i = 0; i < 200; i++)); do
		[ -s "$T/gwlo.ready" ] && return 0
		sleep 0.025
	done
	echo "the gateway's loopback service did not start:" >&2
	cat "$T/gwlo.err" >&2
	return 1
}

# client_to_loopback: let the client send to 127.0.0.1 over the wire, as a
# hostile client can: its loopback without 127.0.0.1/8 (127.0.0.0/8 then
# follows the default route), and answers from 127.0.0.1 accepted on eth0
client_to_loopback() {
	ip -n "$NS_C" addr del 127.0.0.1/8 dev lo
	ns "$NS_C" sysctl -qw net.ipv4.conf.eth0.route_localnet=1
	ns "$NS_C" sysctl -qw net.ipv4.conf.all.rp_filter=0
	ns "$NS_C" sysctl -qw net.ipv4.conf.eth0.rp_filter=0
}

# field NAME TEXT: the value of the first NAME=VALUE in TEXT
field() {
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1
}

# re TEXT: TEXT with the dots and brackets of an address escaped for grep -E
re() {
	printf '%s' "$1" | sed 's/[].[]/\\&/g'
}

# cap_field PID NAME: NAME (CapEff, CapPrm, Uid...) from /proc/PID/status
cap_field() {
	awk -v n="$2:" '$1 == n { print $2 }' "/proc/$1/status"
}

# cap_copy CAPS: a copy of $TPROXY in $T/cap with the file capabilities
# CAPS (setcap), which nobody can run: sets CAP_BIN, and GW_PRE so that
# gw_tproxy starts it as nobody without inheritable capabilities.  The
# directories above it that others cannot search get o+x until teardown.
cap_copy() {
	local d
	mkdir -m 755 "$T/cap"
	cp "$TPROXY" "$T/cap/tproxy"
	chmod 755 "$T/cap/tproxy"
	setcap "$1" "$T/cap/tproxy"
	CAP_BIN=$T/cap/tproxy
	d=$T
	while [ "$d" != / ]; do
		if [ "$(( $(stat -c '%#a' "$d") & 1 ))" = 0 ]; then
			chmod o+x "$d"
			SEARCHABLE+=("$d")
		fi
		d=$(dirname "$d")
	done
	GW_PRE=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all)
}

# caps_of PID: "Uid CapInh CapPrm CapEff CapAmb NoNewPrivs" of PID, for a
# failed test to show
caps_of() {
	echo "Uid $(awk '$1 == "Uid:" { print $2 }' "/proc/$1/status")" \
		"$(cap_field "$1" CapInh) $(cap_field "$1" CapPrm)" \
		"$(cap_field "$1" CapEff) $(cap_field "$1" CapAmb)" \
		"$(cap_field "$1" NoNewPrivs) bnd $(cap_field "$1" CapBnd)"
}

# wait_dropped PID: 0 once PID runs as nobody (tproxy drops privileges after
# binding, maybe just after it says it listens)
wait_dropped() {
	local i
	for ((i = 0; i < 100; i++)); do
		# real, effective, saved and filesystem uid all nobody's
		[ "$(awk '$1 == "Uid:" { print $2, $3, $4, $5 }' \
			"/proc/$1/status")" = "65534 65534 65534 65534" ] && return 0
		sleep 0.05
	done
	echo "tproxy still runs as: $(grep '^Uid:' "/proc/$1/status")" >&2
	return 1
}

# wait_fd_count PID N SECONDS: 0 once PID has exactly N descriptors open
wait_fd_count() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		[ "$(fd_count "$1")" -eq "$2" ] && return 0
		sleep 0.1
	done
	echo "fd count of $1 is $(fd_count "$1"), expected $2:" >&2
	ls -l "/proc/$1/fd" >&2
	return 1
}

# through_tcp DEST PEER-PATTERN: a client connection to DEST gets the
# server's answer from DEST (its own message echoed back), and the server
# saw a peer matching the extended regex PEER-PATTERN; sets CLIENT (the
# client's own address), PEER (what the server saw) and MSGLEN (the bytes
# the client sent)
through_tcp() {
	MSGLEN=$((${#1} + 7))	# "hello DEST\n"
	run -0 client tcp --msg "hello $1" "$1"
	echo "$output"
	CLIENT=$(field client "${lines[0]}")
	PEER=$(field peer "${lines[1]}")
	[ "$(field local "${lines[1]}")" = "$1" ]
	[ "${lines[2]}" = "hello $1" ]
	[[ $PEER =~ ^$2$ ]]
}

# udp_reply OUT MSG: OUT (a tpx_client.py udp output) is one reply to MSG,
# from the server's address
udp_reply() {
	local reply
	reply=$(sed -n 2p <<<"$1")
	[ "$(field from "$reply")" = 203.0.113.10:53 ]
	[ "$(field data "$reply")" = "$2" ]
}

setup_file() {
	: >"$NS_RECORD"
}

teardown_file() {
	# the last sweep: namespaces a test's teardown could not remove
	local n
	[ -f "$NS_RECORD" ] || return 0
	while read -r n; do
		topo_down "$n"
	done <"$NS_RECORD"
}

setup() {
	helper_setup
	GW_PRE=()
	SEARCHABLE=()
	NS_C=tpx-c-$$
	NS_G=tpx-g-$$
	NS_S=tpx-s-$$
	if [ "$(id -u)" -ne 0 ]; then
		echo "transparent.bats needs root (network namespaces, nft)" >&2
		return 1
	fi
}

teardown() {
	local rc=0 d
	# a failed test shows what tproxy said
	if [ -z "${BATS_TEST_COMPLETED:-}" ]; then
		echo "--- tproxy stderr:"
		cat "$T/tproxy.err" 2>/dev/null || true
		echo "--- tproxy stdout (last 20 lines):"
		tail -n 20 "$T/tproxy.out" 2>/dev/null || true
		echo "--- last output:"
		echo "${output:-}"
	fi
	helper_teardown || rc=$?
	topo_down "$NS_C" "$NS_G" "$NS_S"
	for d in "${SEARCHABLE[@]}"; do
		chmod o-x "$d" || rc=1
	done
	return "$rc"
}

@test "a client's connection through a tcp-tproxy gateway reaches the server it asked for, and log names that server" {
	topo_up
	gw_tproxy tcp-tproxy:8080 orig log
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
	wait_for "$T/tproxy.out" \
		"#[0-9]+ c2s $(re "$CLIENT") > 203\.0\.113\.10:80 $MSGLEN bytes"
}

@test "tcp-tproxy with tls=auto intercepts a TLS client and relays a plain one on the same port" {
	topo_up
	ip -n "$NS_S" addr add 203.0.113.12/24 dev eth0
	openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 2 \
		-keyout "$T/ca.key" -out "$T/ca.pem" -subj /CN=tpx-auto-ca \
		-addext basicConstraints=critical,CA:TRUE,pathlen:0 \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
	openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 2 \
		-keyout "$T/up.key" -out "$T/up.pem" -subj /CN=up.test \
		-addext subjectAltName=DNS:up.test 2>/dev/null
	# a TLS server on port 80 (the port the gateway diverts), its own address
	bg ip netns exec "$NS_S" openssl s_server -quiet -www \
		-accept 203.0.113.12:80 -cert "$T/up.pem" -key "$T/up.key"
	local i
	for ((i = 0; i < 200; i++)); do
		ip netns exec "$NS_S" ss -ltn | grep -q '203\.0\.113\.12:80 ' && break
		sleep 0.025
	done
	gw_tproxy --ca-cert="$T/ca.pem" --ca-key="$T/ca.key" \
		tcp-tproxy:8080,tls=auto orig,verify=0 log
	# a plain client: relayed as before
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
	# a TLS client: the certificate it sees is forged by the tproxy CA
	run timeout 20 ip netns exec "$NS_C" curl -sS -v --cacert "$T/ca.pem" \
		--resolve up.test:80:203.0.113.12 -o /dev/null https://up.test:80/
	echo "$output"
	[ "$status" -eq 0 ]
	contains "issuer: CN=tpx-auto-ca" "$output"
	wait_for "$T/tproxy.out" "c2s .* > 203\.0\.113\.12:80 [0-9]+ bytes"
}

@test "with --json, the accept event's dst is the original destination" {
	topo_up
	gw_tproxy --json tcp-tproxy:8080 orig
	through_tcp 203.0.113.11:80 '203\.0\.113\.1:[0-9]+'
	wait_for "$T/tproxy.out" '"event": ?"accept"'
	run -0 grep '"event": \?"accept"' "$T/tproxy.out"
	echo "$output"
	[[ $output == *'"dst":"203.0.113.11:80"'* || $output == *'"dst": "203.0.113.11:80"'* ]]
	[[ $output == *"\"src\":\"$CLIENT\""* || $output == *"\"src\": \"$CLIENT\""* ]]
}

@test "with orig,spoof the server sees the client's own address and port" {
	topo_up
	gw_tproxy tcp-tproxy:8080 orig,spoof
	through_tcp 203.0.113.10:80 '198\.51\.100\.2:[0-9]+'
	[ "$PEER" = "$CLIENT" ]
	# and again, to a second address, from a new port
	through_tcp 203.0.113.11:80 '198\.51\.100\.2:[0-9]+'
	[ "$PEER" = "$CLIENT" ]
}

@test "an IPv6 client reaches its IPv6 server through tcp-tproxy:[::]:8080" {
	topo_up
	gw_tproxy 'tcp-tproxy:[::]:8080' orig log
	through_tcp '[2001:db8:2::10]:80' '\[2001:db8:2::1\]:[0-9]+'
	wait_for "$T/tproxy.out" \
		"#[0-9]+ c2s $(re "$CLIENT") > \[2001:db8:2::10\]:80 $MSGLEN bytes"
}

@test "with orig,spoof over IPv6 the server sees the client's own address and port" {
	topo_up
	gw_tproxy 'tcp-tproxy:[::]:8080' orig,spoof
	through_tcp '[2001:db8:2::10]:80' '\[2001:db8:1::2\]:[0-9]+'
	[ "$PEER" = "$CLIENT" ]
}

@test "a UDP datagram through udp-tproxy gets its reply from the address and port it was sent to" {
	topo_up
	gw_tproxy udp-tproxy:8080 orig log
	run -0 client udp --msg ping 203.0.113.10:53
	echo "$output"
	[ "${#lines[@]}" -eq 2 ]
	CLIENT=$(field client "${lines[0]}")
	# recvfrom() says the reply came from the server's address
	[ "$(field from "${lines[1]}")" = 203.0.113.10:53 ]
	[ "$(field local "${lines[1]}")" = 203.0.113.10:53 ]
	[ "$(field data "${lines[1]}")" = ping ]
	[[ $(field peer "${lines[1]}") =~ ^203\.0\.113\.1:[0-9]+$ ]]
	wait_for "$T/tproxy.out" \
		"#[0-9]+ c2s $(re "$CLIENT") > 203\.0\.113\.10:53 4 bytes"
}

@test "two UDP clients each get their own reply through udp-tproxy, one after the other and at once" {
	local a b
	topo_up
	gw_tproxy udp-tproxy:8080 orig
	# one after the other: the first session (and its sockets) still
	# exists when the second client writes to the same server
	run -0 client udp --msg one 203.0.113.10:53
	echo "$output"
	udp_reply "$output" one
	a=$(field peer "${lines[1]}")
	run -0 client udp --msg two 203.0.113.10:53
	echo "$output"
	udp_reply "$output" two
	b=$(field peer "${lines[1]}")
	# one session each: two upstream sockets
	[ "$a" != "$b" ]
	# at once
	client udp --msg three 203.0.113.10:53 >"$T/c1" 2>&1 &
	a=$!
	client udp --msg four 203.0.113.10:53 >"$T/c2" 2>&1 &
	b=$!
	wait "$a" || { cat "$T/c1"; false; }
	wait "$b" || { cat "$T/c2"; false; }
	cat "$T/c1" "$T/c2"
	udp_reply "$(cat "$T/c1")" three
	udp_reply "$(cat "$T/c2")" four
}

@test "one UDP client writing to two servers gets each reply from the server it wrote to" {
	topo_up
	gw_tproxy udp-tproxy:8080 orig
	run -0 client udp --msg both 203.0.113.10:53 203.0.113.11:53
	echo "$output"
	[ "${#lines[@]}" -eq 3 ]
	run -0 printf '%s\n' "${lines[@]:1}"
	run -0 sort <<<"$output"
	[ "$(field from "${lines[0]}")" = 203.0.113.10:53 ]
	[ "$(field local "${lines[0]}")" = 203.0.113.10:53 ]
	[ "$(field from "${lines[1]}")" = 203.0.113.11:53 ]
	[ "$(field local "${lines[1]}")" = 203.0.113.11:53 ]
}

@test "with udp-tproxy and orig,spoof the server sees the UDP client's own address and port" {
	topo_up
	gw_tproxy udp-tproxy:8080 orig,spoof
	run -0 client udp --msg spoofed 203.0.113.10:53
	echo "$output"
	[ "$(field from "${lines[1]}")" = 203.0.113.10:53 ]
	[ "$(field peer "${lines[1]}")" = "$(field client "${lines[0]}")" ]
	[ "$(field data "${lines[1]}")" = spoofed ]
}

@test "an IPv6 UDP datagram through udp-tproxy:[::]:8080 gets its reply from its IPv6 server" {
	topo_up
	gw_tproxy 'udp-tproxy:[::]:8080' orig
	run -0 client udp --msg ping6 '[2001:db8:2::10]:53'
	echo "$output"
	[ "$(field from "${lines[1]}")" = '[2001:db8:2::10]:53' ]
	[ "$(field data "${lines[1]}")" = ping6 ]
	[[ $(field peer "${lines[1]}") =~ ^\[2001:db8:2::1\]:[0-9]+$ ]]
}

@test "the documented example 'tcp-tproxy:8080 orig,spoof log + udp-tproxy:8080 orig log' works as written" {
	topo_up
	gw_tproxy tcp-tproxy:8080 orig,spoof log + udp-tproxy:8080 orig log
	through_tcp 203.0.113.10:80 '198\.51\.100\.2:[0-9]+'
	[ "$PEER" = "$CLIENT" ]
	wait_for "$T/tproxy.out" \
		"#[0-9]+ c2s $(re "$CLIENT") > 203\.0\.113\.10:80 $MSGLEN bytes"
	run -0 client udp --msg example 203.0.113.10:53
	echo "$output"
	udp_reply "$output" example
	CLIENT=$(field client "${lines[0]}")
	wait_for "$T/tproxy.out" \
		"#[0-9]+ c2s $(re "$CLIENT") > 203\.0\.113\.10:53 7 bytes"
}

@test "one tproxy with a listener per family serves IPv4 and IPv6 clients over TCP and UDP" {
	topo_up
	gw_tproxy tcp-tproxy:8080 orig + 'tcp-tproxy:[::]:8080,ipv6only=1' orig \
		+ udp-tproxy:8080 orig + 'udp-tproxy:[::]:8080,ipv6only=1' orig
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
	through_tcp '[2001:db8:2::10]:80' '\[2001:db8:2::1\]:[0-9]+'
	run -0 client udp --msg four 203.0.113.10:53
	echo "$output"
	udp_reply "$output" four
	run -0 client udp --msg six '[2001:db8:2::10]:53'
	echo "$output"
	[ "$(field from "${lines[1]}")" = '[2001:db8:2::10]:53' ]
	[ "$(field data "${lines[1]}")" = six ]
}

@test "one dual-stack [::] listener serves IPv4 clients too, over TCP and UDP alike" {
	topo_up
	gw_tproxy 'tcp-tproxy:[::]:8080' orig + 'udp-tproxy:[::]:8080' orig
	# the server sees the gateway's IPv4 address: the connection went
	# through tproxy, not around it
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
	through_tcp '[2001:db8:2::10]:80' '\[2001:db8:2::1\]:[0-9]+'
	run -0 client udp --msg six '[2001:db8:2::10]:53'
	echo "$output"
	[ "$(field from "${lines[1]}")" = '[2001:db8:2::10]:53' ]
	run -0 client udp --msg four 203.0.113.10:53
	echo "$output"
	udp_reply "$output" four
	[[ $(field peer "${lines[1]}") =~ ^203\.0\.113\.1:[0-9]+$ ]]
}

@test "with --json, UDP data events carry the client and the original destination" {
	topo_up
	gw_tproxy --json udp-tproxy:8080 orig log
	run -0 client udp --msg json 203.0.113.10:53
	echo "$output"
	CLIENT=$(field client "${lines[0]}")
	wait_for "$T/tproxy.out" '"dir": ?"c2s"'
	run -0 grep '"dir": \?"c2s"' "$T/tproxy.out"
	echo "$output"
	[[ $output =~ \"dst\":\ ?\"203\.0\.113\.10:53\" ]]
	[[ $output =~ \"src\":\ ?\"$(re "$CLIENT")\" ]]
}

@test "datagrams to udp-tproxy's own listener are dropped, 1000 of them without a leaked descriptor" {
	local before
	topo_up
	gw_tproxy udp-tproxy:8080 orig
	run -0 client udp --msg first 203.0.113.10:53
	udp_reply "$output" first
	sleep 0.2
	before=$(fd_count "$TP_PID")
	run -0 gw_client udp-noreply --count 1000 198.51.100.1:8080
	echo "$output"
	run -0 gw_client udp-noreply --count 100 127.0.0.1:8080
	echo "$output"
	run -0 client udp-noreply --count 100 198.51.100.1:8080
	echo "$output"
	wait_fd_count "$TP_PID" "$before" 5
	grep -iE 'loop|itself|own|self|refus' "$T/tproxy.err"
	run -0 client udp --msg after 203.0.113.10:53
	udp_reply "$output" after
}

@test "behind an nft redirect, tcp-listen with orig reaches the original destination (SO_ORIGINAL_DST)" {
	topo_up redirect
	gw_tproxy tcp-listen:0.0.0.0:8080 orig log
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
	wait_for "$T/tproxy.out" \
		"#[0-9]+ c2s $(re "$CLIENT") > 203\.0\.113\.10:80 $MSGLEN bytes"
}

@test "behind an IPv6 nft redirect, tcp-listen:[::] with orig reaches the original destination" {
	topo_up redirect
	gw_tproxy 'tcp-listen:[::]:8080' orig log
	through_tcp '[2001:db8:2::10]:80' '\[2001:db8:2::1\]:[0-9]+'
	wait_for "$T/tproxy.out" \
		"#[0-9]+ c2s $(re "$CLIENT") > \[2001:db8:2::10\]:80 $MSGLEN bytes"
}

@test "behind a redirect, an IPv4 client on a dual-stack listener reaches its server, and accept names it" {
	topo_up redirect
	gw_tproxy --json 'tcp-listen:[::]:8080' orig
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
	wait_for "$T/tproxy.out" '"event": ?"accept"'
	run -0 grep '"event": \?"accept"' "$T/tproxy.out"
	echo "$output"
	[[ $output == *'"dst":"203.0.113.10:80"'* ]]
}

@test "orig,port-map=80:10080 sends the connection for port 80 to the server's port 10080" {
	topo_up
	gw_tproxy tcp-tproxy:8080 'orig,port-map=443:10443;80:10080' log
	run -0 client tcp --msg mapped 203.0.113.10:80
	echo "$output"
	[ "$(field local "${lines[1]}")" = 203.0.113.10:10080 ]
	[ "${lines[2]}" = mapped ]
	# the server saw one connection, on 10080, none on 80
	run -0 grep -c '^tcp .*local=203\.0\.113\.10:10080$' "$T/server.log"
	[ "$output" -eq 1 ]
	run -1 grep 'local=203\.0\.113\.10:80$' "$T/server.log"
}

@test "when the original destination refuses, the client's connection is closed at once and the reason logged" {
	topo_up
	gw_tproxy tcp-tproxy:8080 orig,port-map=80:10081 log
	run -0 client refused --count 3 203.0.113.10:80
	echo "$output"
	wait_for "$T/tproxy.err" '203\.0\.113\.10:10081.*[Rr]efused'
	# tproxy goes on
	kill -0 "$TP_PID"
}

@test "with udp-tproxy and port-map=53:5353 the server's port 5353 answers, and the reply still comes from port 53" {
	topo_up
	gw_tproxy udp-tproxy:8080 orig,port-map=53:5353
	run -0 client udp --msg mapped 203.0.113.10:53
	echo "$output"
	[ "$(field local "${lines[1]}")" = 203.0.113.10:5353 ]
	# the client wrote to :53 and must see its answer come from there
	udp_reply "$output" mapped
}

@test "a connection to tcp-tproxy's own listener is closed at once, 1000 times without a leaked descriptor" {
	local before
	topo_up
	gw_tproxy tcp-tproxy:8080 orig
	# one ordinary connection first, so that lazily made state is there
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
	sleep 0.2
	before=$(fd_count "$TP_PID")
	run -0 gw_client refused --count 1000 198.51.100.1:8080
	echo "$output"
	run -0 gw_client refused --count 50 127.0.0.1:8080
	echo "$output"
	# also from the client side, straight to the gateway's port
	run -0 client refused --count 50 198.51.100.1:8080
	echo "$output"
	wait_fd_count "$TP_PID" "$before" 5
	# the refusals are logged, and tproxy still serves
	grep -iE 'loop|itself|own|self|refus' "$T/tproxy.err"
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
}

@test "an IPv6 connection to tcp-tproxy:[::]'s own listener is closed at once without a leak" {
	local before
	topo_up
	gw_tproxy 'tcp-tproxy:[::]:8080' orig
	through_tcp '[2001:db8:2::10]:80' '\[2001:db8:2::1\]:[0-9]+'
	sleep 0.2
	before=$(fd_count "$TP_PID")
	run -0 gw_client refused --count 200 '[::1]:8080'
	echo "$output"
	run -0 gw_client refused --count 200 '[2001:db8:1::1]:8080'
	echo "$output"
	run -0 client refused --count 50 '[2001:db8:1::1]:8080'
	echo "$output"
	wait_fd_count "$TP_PID" "$before" 5
	through_tcp '[2001:db8:2::10]:80' '\[2001:db8:2::1\]:[0-9]+'
}

@test "behind a redirect, a connection to tcp-listen's own port with orig is closed at once, 1000 times without a leak" {
	local before
	topo_up redirect
	gw_tproxy tcp-listen:0.0.0.0:8080 orig
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
	sleep 0.2
	before=$(fd_count "$TP_PID")
	run -0 gw_client refused --count 1000 127.0.0.1:8080
	echo "$output"
	run -0 gw_client refused --count 50 198.51.100.1:8080
	echo "$output"
	wait_fd_count "$TP_PID" "$before" 5
	grep -iE 'loop|itself|own|self|refus' "$T/tproxy.err"
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
}

@test "behind a redirect, a client's connection to 127.0.0.1:80 is refused with the reason logged, and never reaches the gateway's loopback" {
	topo_up redirect
	gw_loopback_service
	client_to_loopback
	gw_tproxy tcp-listen:0.0.0.0:8080 orig log
	# closed at once, without a byte from the gateway's own service
	run -0 client refused --count 5 127.0.0.1:80
	echo "$output"
	wait_for "$T/tproxy.err" \
		'refused: the original destination 127\.0\.0\.1:80 is a loopback address'
	[ ! -s "$T/gwlo.log" ]
	# other connections go on
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
	kill -0 "$TP_PID"
}

@test "through dual-stack tcp-tproxy and udp-tproxy listeners, loopback original destinations are refused even where route_localnet lets them in" {
	topo_up
	# a gateway that accepts 127.0.0.0/8 from the wire (as vethrelay.sh
	# once set up): TPROXY then delivers such packets to tproxy
	ns "$NS_G" sysctl -qw net.ipv4.conf.veth-c.route_localnet=1
	gw_loopback_service
	client_to_loopback
	gw_tproxy 'tcp-tproxy:[::]:8080' orig + 'udp-tproxy:[::]:8080' orig
	run -0 client refused --count 5 127.0.0.1:80
	echo "$output"
	run -0 client udp-noreply --count 5 127.0.0.1:53
	echo "$output"
	# an IPv4 destination on an IPv6 socket is ::ffff:127.0.0.1
	wait_for "$T/tproxy.err" \
		'original destination (\[::ffff:)?127\.0\.0\.1\]?:80 is a loopback address'
	wait_for "$T/tproxy.err" \
		'original destination (\[::ffff:)?127\.0\.0\.1\]?:53 is a loopback address'
	[ ! -s "$T/gwlo.log" ]
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
	run -0 client udp --msg after 203.0.113.10:53
	echo "$output"
	udp_reply "$output" after
}

@test "the gateway's own connections to 127.0.0.1:80 and [::1]:80, redirected to tproxy, are refused as loopback destinations" {
	topo_up none
	gw_loopback_service
	ns "$NS_G" nft -f - <<-'EOF'
	table inet tpxout {
		chain out {
			type nat hook output priority -100;
			meta skuid nobody tcp dport 80 redirect to :8080
		}
	}
	EOF
	gw_tproxy tcp-listen:0.0.0.0:8080 orig + 'tcp-listen:[::]:8080,ipv6only=1' orig
	# only the client's connections (as nobody) are redirected, not
	# tproxy's own (a loop, were it to connect); the client is bash's
	# /dev/tcp, which nobody can run: it prints what it receives until
	# the connection ends
	for dst in 127.0.0.1 ::1; do
		run --separate-stderr timeout 10 ip netns exec "$NS_G" setpriv \
			--reuid=nobody --regid=nogroup --clear-groups bash -c \
			'exec 3<>"/dev/tcp/$1/80" && cat <&3' gw-client "$dst"
		echo "$dst: status $status, output: $output, stderr: $stderr"
		# ended by tproxy, without a byte
		[ "$status" -ne 124 ]
		[ -z "$output" ]
	done
	wait_for "$T/tproxy.err" 'original destination 127\.0\.0\.1:80 is a loopback address'
	wait_for "$T/tproxy.err" 'original destination \[::1\]:80 is a loopback address'
	[ ! -s "$T/gwlo.log" ]
}

@test "orig,allow-loopback relays to a loopback original destination, as the user asked" {
	topo_up redirect
	gw_loopback_service
	client_to_loopback
	gw_tproxy tcp-listen:0.0.0.0:8080 orig,allow-loopback
	run -0 client tcp --msg allowed 127.0.0.1:80
	echo "$output"
	[ "$(field local "${lines[1]}")" = 127.0.0.1:80 ]
	[ "${lines[2]}" = allowed ]
	grep -q 'local=127\.0\.0\.1:80$' "$T/gwlo.log"
	run -1 grep 'loopback' "$T/tproxy.err"
}

@test "--user=nobody with tcp-tproxy and plain orig keeps no capability and still works" {
	topo_up
	gw_tproxy --user=nobody tcp-tproxy:8080 orig
	wait_dropped "$TP_PID"
	[ "$(cap_field "$TP_PID" CapEff)" = 0000000000000000 ]
	[ "$(cap_field "$TP_PID" CapPrm)" = 0000000000000000 ]
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
	# none can come back: an empty bounding set, and no new privileges
	[ "$(cap_field "$TP_PID" CapBnd)" = 0000000000000000 ]
	[ "$(cap_field "$TP_PID" NoNewPrivs)" = 1 ]
}

@test "--user=nobody with orig,spoof keeps only CAP_NET_ADMIN and still spoofs" {
	topo_up
	gw_tproxy --user=nobody tcp-tproxy:8080 orig,spoof
	wait_dropped "$TP_PID"
	[ "$(cap_field "$TP_PID" CapEff)" = 0000000000001000 ]
	[ "$(cap_field "$TP_PID" CapPrm)" = 0000000000001000 ]
	through_tcp 203.0.113.10:80 '198\.51\.100\.2:[0-9]+'
	[ "$PEER" = "$CLIENT" ]
	[ "$(cap_field "$TP_PID" CapBnd)" = 0000000000001000 ]
	[ "$(cap_field "$TP_PID" NoNewPrivs)" = 1 ]
}

@test "--user=nobody with udp-tproxy keeps only what replies need and still answers from the server's address" {
	local eff
	topo_up
	gw_tproxy --user=nobody udp-tproxy:8080 orig
	wait_dropped "$TP_PID"
	# CAP_NET_ADMIN (0x1000) for the transparent reply sockets; replies from
	# a port below 1024 (DNS's 53 here) also need CAP_NET_BIND_SERVICE
	# (0x400) to bind that port: nothing else
	eff=$(cap_field "$TP_PID" CapEff)
	[ "$eff" = 0000000000001000 ] || [ "$eff" = 0000000000001400 ]
	[ "$(cap_field "$TP_PID" CapPrm)" = "$eff" ]
	run -0 client udp --msg dropped 203.0.113.10:53
	echo "$output"
	[ "$(field from "${lines[1]}")" = 203.0.113.10:53 ]
	[ "$(field data "${lines[1]}")" = dropped ]
	[ "$(cap_field "$TP_PID" CapBnd)" = 0000000000001400 ]
	[ "$(cap_field "$TP_PID" NoNewPrivs)" = 1 ]
}

@test "with file capabilities, as nobody, tproxy keeps none once a tcp-tproxy and a port-81 listener are bound, and still relays" {
	topo_up
	cap_copy cap_net_admin,cap_net_bind_service+ep
	# IP_TRANSPARENT on the listener needs CAP_NET_ADMIN, port 81
	# CAP_NET_BIND_SERVICE: neither once they are bound
	TPROXY=$CAP_BIN gw_tproxy tcp-tproxy:8080 orig + tcp-listen:198.51.100.1:81 tcp:203.0.113.11:80
	caps_of "$TP_PID"
	[ "$(awk '$1 == "Uid:" { print $2, $3, $4, $5 }' "/proc/$TP_PID/status")" = "65534 65534 65534 65534" ]
	[ "$(cap_field "$TP_PID" CapEff)" = 0000000000000000 ]
	[ "$(cap_field "$TP_PID" CapPrm)" = 0000000000000000 ]
	[ "$(cap_field "$TP_PID" CapInh)" = 0000000000000000 ]
	[ "$(cap_field "$TP_PID" CapAmb)" = 0000000000000000 ]
	[ "$(cap_field "$TP_PID" NoNewPrivs)" = 1 ]
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
	run -0 client tcp --msg low 198.51.100.1:81
	echo "$output"
	[ "$(field local "${lines[1]}")" = 203.0.113.11:80 ]
	[ "${lines[2]}" = low ]
	# not root: no word about running as root
	run -1 grep 'as root' "$T/tproxy.err"
}

@test "with file capabilities, as nobody, orig,spoof keeps only CAP_NET_ADMIN and still spoofs" {
	topo_up
	cap_copy cap_net_admin,cap_net_bind_service+ep
	TPROXY=$CAP_BIN gw_tproxy tcp-tproxy:8080 orig,spoof
	caps_of "$TP_PID"
	[ "$(cap_field "$TP_PID" CapEff)" = 0000000000001000 ]
	[ "$(cap_field "$TP_PID" CapPrm)" = 0000000000001000 ]
	[ "$(cap_field "$TP_PID" NoNewPrivs)" = 1 ]
	through_tcp 203.0.113.10:80 '198\.51\.100\.2:[0-9]+'
	[ "$PEER" = "$CLIENT" ]
}

@test "with file capabilities, as nobody, udp-tproxy keeps CAP_NET_ADMIN and CAP_NET_BIND_SERVICE and answers from port 53" {
	topo_up
	cap_copy cap_net_admin,cap_net_bind_service+ep
	TPROXY=$CAP_BIN gw_tproxy udp-tproxy:8080 orig
	caps_of "$TP_PID"
	[ "$(cap_field "$TP_PID" CapEff)" = 0000000000001400 ]
	[ "$(cap_field "$TP_PID" CapPrm)" = 0000000000001400 ]
	[ "$(cap_field "$TP_PID" NoNewPrivs)" = 1 ]
	run -0 client udp --msg capped 203.0.113.10:53
	echo "$output"
	udp_reply "$output" capped
}

@test "with file capabilities that include CAP_SETPCAP, tproxy also empties the bounding set of what it does not keep" {
	topo_up
	cap_copy cap_net_admin,cap_net_bind_service,cap_setpcap+ep
	TPROXY=$CAP_BIN gw_tproxy tcp-tproxy:8080 orig,spoof
	caps_of "$TP_PID"
	[ "$(cap_field "$TP_PID" CapEff)" = 0000000000001000 ]
	[ "$(cap_field "$TP_PID" CapPrm)" = 0000000000001000 ]
	[ "$(cap_field "$TP_PID" CapBnd)" = 0000000000001000 ]
	through_tcp 203.0.113.10:80 '198\.51\.100\.2:[0-9]+'
}

@test "tcp-tproxy without CAP_NET_ADMIN exits 1 saying which capability and how to grant it" {
	topo_up none
	run -1 ns "$NS_G" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		--inh-caps=-all "$TPROXY" tcp-tproxy:8080 orig
	echo "$output"
	[[ $output == *CAP_NET_ADMIN* ]]
	[[ $output == *"setcap cap_net_admin+ep"* ]]
	run -1 ns "$NS_G" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		--inh-caps=-all "$TPROXY" udp-tproxy:8080 orig
	echo "$output"
	[[ $output == *CAP_NET_ADMIN* ]]
	[[ $output == *"setcap cap_net_admin+ep"* ]]
}

@test "--print-rules prints the nft and ip rule commands for tcp-tproxy and udp-tproxy routes and exits 0" {
	run -0 timeout 10 "$TPROXY" --print-rules tcp-tproxy:8080 orig + udp-tproxy:8080 orig
	echo "$output"
	[[ $output =~ tcp[^$'\n']*tproxy\ ip\ to\ :8080 ]]
	[[ $output =~ udp[^$'\n']*tproxy\ ip\ to\ :8080 ]]
	[[ $output == *"ip rule add fwmark"* ]]
	[[ $output =~ ip\ route\ add\ local\ 0\.0\.0\.0/0\ dev\ lo ]]
	# nothing was started: no "listening" line
	[[ $output != *"listening on"* ]]
}

@test "--print-rules for an IPv6 listener prints ip6 tproxy rules and ip -6 rule commands" {
	run -0 timeout 10 "$TPROXY" --print-rules 'tcp-tproxy:[::]:8080' orig
	echo "$output"
	[[ $output == *"tproxy ip6 to :8080"* ]]
	[[ $output == *"ip -6 rule add fwmark"* ]]
	[[ $output =~ ip\ -6\ route\ add\ local\ ::/0\ dev\ lo ]]
}

@test "the commands --print-rules prints, run on a bare gateway, make tcp-tproxy and udp-tproxy work" {
	topo_up none
	run -0 timeout 10 "$TPROXY" --print-rules tcp-tproxy:8080 orig + udp-tproxy:8080 orig
	echo "$output" >"$T/rules.sh"
	cat "$T/rules.sh"
	ns "$NS_G" sh -e "$T/rules.sh"
	gw_tproxy tcp-tproxy:8080 orig log + udp-tproxy:8080 orig
	through_tcp 203.0.113.10:80 '203\.0\.113\.1:[0-9]+'
	wait_for "$T/tproxy.out" \
		"#[0-9]+ c2s $(re "$CLIENT") > 203\.0\.113\.10:80 $MSGLEN bytes"
	run -0 client udp --msg ruled 203.0.113.10:53
	echo "$output"
	[ "$(field from "${lines[1]}")" = 203.0.113.10:53 ]
	[ "$(field data "${lines[1]}")" = ruled ]
}
