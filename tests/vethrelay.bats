#!/usr/bin/env bats
# tests/vethrelay.bats - the TPROXY lab helper, vethrelay.sh: setup, status
# and teardown, idempotence, exact restoration, refusals and usage errors, and
# an end-to-end check that the plumbing delivers diverted TCP (IPv4 and IPv6)
# and UDP to a transparent listener with the original destination intact.
#
# Every test works in network namespaces of its own (tpx-vr*-PID-N), deleted
# in teardown; the root namespace's network and nftables are never changed.
# State files go to the test's temporary directory (-s) unless a test is
# about the default one.

bats_require_minimum_version 1.5.0

load helper

VR=$TOP/vethrelay.sh

eval "$(declare -f setup | sed '1s/setup/helper_setup/')"
eval "$(declare -f teardown | sed '1s/teardown/helper_teardown/')"

setup() {
	helper_setup
	NSS=()
	[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
	ns_add NS tpx-vr
	ip -n "$NS" link set lo up
	STATE_DIR=$T/state
}

teardown() {
	local rc=0 ns
	helper_teardown || rc=$?
	for ns in "${NSS[@]}"; do
		# a test's default-directory state file, if it left one
		if [ -e "/run/netns/$ns" ]; then
			rm -f /run/vethrelay/state-*-"$(stat -L -c %i "/run/netns/$ns")"
		fi
		ip netns del "$ns" 2>/dev/null || true
	done
	return "$rc"
}

# ns_add VAR PREFIX: create namespace PREFIX-PID-TESTNUMBER, recorded for
# teardown, and set VAR to its name
ns_add() {
	local ns=$2-$$-$BATS_TEST_NUMBER
	NSS+=("$ns")
	ip netns add "$ns"
	printf -v "$1" %s "$ns"
}

# vr ARGS...: vethrelay.sh in the test's namespace with its own state directory
vr() {
	ip netns exec "$NS" "$VR" -s "$STATE_DIR" "$@"
}

# in_ns NS CMD...: CMD inside namespace NS
in_ns() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

# sysctls NS: every readable net.ipv4 and net.ipv6 sysctl of NS, one per line
sysctls() {
	# one grep for all of them: a process per file took seconds
	in_ns "$1" find /proc/sys/net/ipv4 /proc/sys/net/ipv6 -type f -perm -0444 -print0 |
		sort -z | in_ns "$1" xargs -0 grep -sH '' | sed 's|^/proc/sys/||; s|:|=|'
}

# snapshot NS: what setup may change in NS, for before/after comparisons
snapshot() {
	in_ns "$1" bash -c '
		echo "== link"; ip link
		echo "== addr"; ip addr
		echo "== rule"; ip rule; ip -6 rule
		echo "== route"; ip route show table all; ip -6 route show table all
		echo "== nft"; nft list ruleset'
	echo "== sysctl"
	sysctls "$1"
}

# settle NS: wait until no address of NS is tentative (the link-local ones
# finish duplicate address detection a moment after a link comes up, and
# gain a local route then), so that two snapshots can be compared
settle() {
	local i
	for ((i = 0; i < 100; i++)); do
		ip -n "$1" addr | grep -q tentative || return 0
		sleep 0.1
	done
	echo "addresses of $1 still tentative" >&2
	return 1
}

# same FILE1 FILE2: the files are identical, or show the difference
same() {
	diff -u "$1" "$2" >&2
}

# sysctl_of NS KEY: the value of /proc/sys/KEY in NS
sysctl_of() {
	in_ns "$1" cat "/proc/sys/$2"
}

# tproxy_rules TEXT VETH PORT DPORT: TEXT has the four diverting rules
tproxy_rules() {
	local proto fam
	for proto in tcp udp; do
		for fam in ip ip6; do
			matches "iifname \"$2\" $proto dport $4 tproxy $fam to :$3 meta mark set (0x0*)?1 accept" "$1" || return 1
		done
	done
}

# client_ns: move tpx1 from $NS into a new namespace $CNS with
# 198.51.100.2/24 and 2001:db8:100::2/64, default routes via the host end
client_ns() {
	ns_add CNS tpx-vrc
	in_ns "$NS" ip link set tpx1 netns "$CNS"
	ip -n "$CNS" link set lo up
	ip -n "$CNS" addr add 198.51.100.2/24 dev tpx1
	ip -n "$CNS" -6 addr add 2001:db8:100::2/64 dev tpx1 nodad
	ip -n "$CNS" link set tpx1 up
	ip -n "$CNS" route add default via 198.51.100.1
	ip -n "$CNS" -6 route add default via 2001:db8:100::1
}

# write_tools: $T/listen.py, a transparent listener on port 8080
# (tcp4|tcp6|udp4) printing what it sees, and $T/client.py PROTO HOST PORT
# [TIMEOUT]
write_tools() {
	cat >"$T/listen.py" <<'EOF'
import socket, sys
IP_TRANSPARENT, IP_RECVORIGDSTADDR = 19, 20
IPV6_TRANSPARENT, IPV6_V6ONLY = 75, 26
mode = sys.argv[1]
if mode == "tcp6":
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_V6ONLY, 1)
    s.bind(("::", 8080))
else:
    kind = socket.SOCK_STREAM if mode == "tcp4" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
    s.setsockopt(socket.SOL_IP, IP_RECVORIGDSTADDR, 1)
    s.bind(("0.0.0.0", 8080))
s.settimeout(20)
if mode == "udp4":
    print("listening", flush=True)
    data, anc, _, src = s.recvmsg(2048, socket.CMSG_SPACE(16))
    orig = None
    for level, kind, d in anc:
        if level == socket.SOL_IP and kind == IP_RECVORIGDSTADDR:
            orig = (socket.inet_ntoa(d[4:8]), int.from_bytes(d[2:4], "big"))
    print("udp from %s:%d to %s:%d %s" % (src + orig + (data.decode(),)), flush=True)
    # answer from the original destination, as tproxy does
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
    r.bind(orig)
    r.sendto(b"pong", src)
else:
    s.listen(1)
    print("listening", flush=True)
    c, peer = s.accept()
    local = c.getsockname()
    print("tcp from %s port %d to %s port %d %s"
          % (peer[0], peer[1], local[0], local[1], c.recv(100).decode()), flush=True)
    c.sendall(b"pong")
EOF
	cat >"$T/client.py" <<'EOF'
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 5
if proto == "tcp":
    c = socket.create_connection((host, port), timeout=timeout)
    c.sendall(b"ping")
    print("got", c.recv(100).decode())
else:
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(timeout)
    c.connect((host, port))
    c.send(b"ping")
    data, src = c.recvfrom(100)
    print("got %s from %s:%d" % (data.decode(), src[0], src[1]))
EOF
}

# server_ns: the real 203.0.113.9 in a namespace $SNS of its own behind a
# second veth of $NS (via 192.0.2.9), answering TCP and UDP on port 80
# with "server" and writing "tcp" or "udp" to $T/server.out for each
server_ns() {
	ns_add SNS tpx-vrs
	in_ns "$NS" ip link add up0 type veth peer name up1 netns "$SNS"
	ip -n "$NS" addr add 192.0.2.1/24 dev up0
	ip -n "$NS" link set up0 up
	ip -n "$NS" route add 203.0.113.0/24 via 192.0.2.9
	ip -n "$SNS" link set lo up
	ip -n "$SNS" addr add 192.0.2.9/24 dev up1
	ip -n "$SNS" addr add 203.0.113.9/32 dev lo
	ip -n "$SNS" link set up1 up
	ip -n "$SNS" route add default via 192.0.2.1
	cat >"$T/both.py" <<'EOF'
import select, socket
t = socket.create_server(("203.0.113.9", 80))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("203.0.113.9", 80))
print("listening", flush=True)
while True:
    r, _, _ = select.select([t, u], [], [], 60)
    if not r:
        break
    if t in r:
        c, _ = t.accept()
        print("tcp", flush=True)
        c.sendall(b"server")
        c.close()
    if u in r:
        data, src = u.recvfrom(100)
        print("udp", flush=True)
        u.sendto(b"server", src)
EOF
	bg in_ns "$SNS" python3 "$T/both.py" >"$T/server.out" 2>&1
	wait_for "$T/server.out" '^listening' 10
}

# listen MODE: start the listener in $NS, wait until it listens
listen() {
	bg in_ns "$NS" python3 "$T/listen.py" "$1" >"$T/listen.out" 2>"$T/listen.err"
	LISTEN_PID=$BG_PID
	wait_for "$T/listen.out" '^listening' 10
}

# ---------------------------------------------------------------------------

@test "setup makes the veth, the tproxy rules, the ip rules, the local routes and the sysctls, and status shows them" {
	in_ns "$NS" sh -c 'echo 1 >/proc/sys/net/ipv4/conf/all/rp_filter'

	run -0 vr setup
	contains "tproxy tcp-tproxy:8080 orig log + udp-tproxy:8080 orig log" "$output"
	matches "^  nft add rule inet vethrelay prerouting .*dport 443 tproxy to :8080" "$output"

	# the kernel's view
	run -0 ip -n "$NS" addr show dev tpx0
	contains "inet 198.51.100.1/24" "$output"
	contains "inet6 2001:db8:100::1/64" "$output"
	matches "tpx0@tpx1: <.*UP" "$output"
	run -0 ip -n "$NS" link show dev tpx1
	run -0 in_ns "$NS" nft list table inet vethrelay
	matches "type filter hook prerouting priority mangle; policy accept;" "$output"
	matches "meta l4proto \{ tcp, udp \} socket transparent 1 meta mark set (0x0*)?1 accept" "$output"
	tproxy_rules "$output" tpx0 8080 80
	# fails closed: what no socket took is dropped
	matches 'iifname "tpx0" meta l4proto \{ tcp, udp \} th dport 80 drop' "$output"
	run -0 ip -n "$NS" rule
	contains "fwmark 0x1 lookup 100" "$output"
	run -0 ip -n "$NS" -6 rule
	contains "fwmark 0x1 lookup 100" "$output"
	run -0 ip -n "$NS" route show table 100
	matches "^local default dev lo " "$output"
	run -0 ip -n "$NS" -6 route show table 100
	matches "^local default dev lo " "$output"
	[ "$(sysctl_of "$NS" net/ipv4/conf/tpx0/rp_filter)" = 0 ]
	[ "$(sysctl_of "$NS" net/ipv4/conf/all/rp_filter)" = 2 ]
	# TPROXY does not need route_localnet, which would let in packets to
	# 127.0.0.0/8 from the veth
	[ "$(sysctl_of "$NS" net/ipv4/conf/tpx0/route_localnet)" = 0 ]
	[ "$(sysctl_of "$NS" net/ipv4/ip_forward)" = 1 ]

	# and what status tells
	run -0 vr status
	matches "^vethrelay.sh: set up " "$output"
	contains "inet 198.51.100.1/24" "$output"
	contains "inet6 2001:db8:100::1/64" "$output"
	tproxy_rules "$output" tpx0 8080 80
	matches "socket transparent 1 meta mark set" "$output"
	[ "$(grep -c 'fwmark 0x1 lookup 100' <<<"$output")" = 2 ]
	[ "$(grep -c '^local default dev lo ' <<<"$output")" = 2 ]
	contains "net.ipv4.conf.tpx0.rp_filter = 0" "$output"
	contains "net.ipv4.conf.all.rp_filter = 2" "$output"
	lacks "route_localnet" "$output"
	contains "net.ipv4.ip_forward = 1" "$output"
	contains "it is dropped (fails closed" "$output"
	contains "setup changed net.ipv4.conf.all.rp_filter from 1" "$output"
}

@test "status without a setup says so and exits 3" {
	run -3 vr status
	contains "not set up" "$output"
}

@test "running setup twice is fine and the second changes nothing" {
	run -0 vr setup
	settle "$NS"
	snapshot "$NS" >"$T/once"
	cp "$STATE_DIR"/state-* "$T/state.once"
	run -0 vr setup
	contains "already set up" "$output"
	contains "nothing changed" "$output"
	snapshot "$NS" >"$T/twice"
	same "$T/once" "$T/twice"
	same "$T/state.once" "$STATE_DIR"/state-*
	[ "$(in_ns "$NS" nft list ruleset | grep -c 'tproxy ip to :8080')" = 2 ]
	[ "$(ip -n "$NS" rule | grep -c 'fwmark 0x1 lookup 100')" = 1 ]
	[ "$(ip -n "$NS" -6 rule | grep -c 'fwmark 0x1 lookup 100')" = 1 ]
}

@test "a second setup with other ports changes nothing and says how to change them" {
	run -0 vr setup
	in_ns "$NS" nft list ruleset >"$T/before"
	run -0 vr setup -p 9090 -d 443
	contains "nothing changed" "$output"
	contains "teardown first" "$output"
	in_ns "$NS" nft list ruleset >"$T/after"
	same "$T/before" "$T/after"
}

@test "teardown restores the namespace exactly as it was before setup" {
	# make the restoration non-trivial: strict rp_filter, and a device's
	# forwarding and all.accept_redirects not what ip_forward=0 would make
	# them (writing ip_forward clobbers both)
	in_ns "$NS" sh -c 'echo 0 >/proc/sys/net/ipv4/ip_forward
		echo 1 >/proc/sys/net/ipv4/conf/all/rp_filter
		echo 1 >/proc/sys/net/ipv4/conf/lo/forwarding
		echo 0 >/proc/sys/net/ipv4/conf/all/accept_redirects'
	ip -n "$NS" link add ext0 type veth peer name ext1
	ip -n "$NS" addr add 192.0.2.1/24 dev ext0
	ip -n "$NS" -6 addr add 2001:db8:200::1/64 dev ext0 nodad
	ip -n "$NS" link set ext0 up
	ip -n "$NS" link set ext1 up
	settle "$NS"
	in_ns "$NS" nft add table ip other
	in_ns "$NS" nft add chain ip other input '{ type filter hook input priority 0; }'
	ip -n "$NS" rule add fwmark 7 lookup 7
	snapshot "$NS" >"$T/before"
	[ "$(sysctl_of "$NS" net/ipv4/conf/lo/forwarding)" = 1 ]

	run -0 vr setup
	[ "$(sysctl_of "$NS" net/ipv4/ip_forward)" = 1 ]
	run -0 vr teardown
	contains "removed" "$output"
	snapshot "$NS" >"$T/after"
	same "$T/before" "$T/after"
	[ "$(sysctl_of "$NS" net/ipv4/conf/lo/forwarding)" = 1 ]
	[ "$(sysctl_of "$NS" net/ipv4/conf/all/accept_redirects)" = 0 ]
	[ "$(sysctl_of "$NS" net/ipv4/conf/all/rp_filter)" = 1 ]
	[ ! -e "$STATE_DIR" ]
}

@test "teardown without setup has nothing to remove, and teardown twice is fine" {
	mkdir "$STATE_DIR"
	snapshot "$NS" >"$T/before"
	run -0 vr teardown
	contains "nothing to remove" "$output"
	run -0 vr setup
	run -0 vr teardown
	run -0 vr teardown
	contains "nothing to remove" "$output"
	snapshot "$NS" >"$T/after"
	same "$T/before" "$T/after"
	run -3 vr status
	# a state directory that was there before stays
	[ -d "$STATE_DIR" ]
}

@test "teardown leaves alone an ip rule and a local route that were there before setup" {
	ip -n "$NS" rule add fwmark 1 lookup 100
	ip -n "$NS" route add local 0.0.0.0/0 dev lo table 100
	snapshot "$NS" >"$T/before"
	run -0 vr setup
	[ "$(ip -n "$NS" rule | grep -c 'fwmark 0x1 lookup 100')" = 1 ]
	run -0 grep -c '^rule ' "$STATE_DIR"/state-*
	[ "$output" = 1 ]
	run -0 vr teardown
	snapshot "$NS" >"$T/after"
	same "$T/before" "$T/after"
	run -0 ip -n "$NS" rule
	contains "fwmark 0x1 lookup 100" "$output"
}

@test "setup refuses a tpx0 or a vethrelay table it did not make, and teardown leaves them alone" {
	ip -n "$NS" link add tpx0 type veth peer name other0
	snapshot "$NS" >"$T/before"
	run -1 --separate-stderr vr setup
	contains "tpx0 already exists" "$stderr"
	snapshot "$NS" >"$T/after"
	same "$T/before" "$T/after"
	run -0 vr teardown
	contains "nothing to remove" "$output"
	run -0 ip -n "$NS" link show dev tpx0
	ip -n "$NS" link del tpx0
	run -1 ip -n "$NS" link show dev other0

	in_ns "$NS" nft add table inet vethrelay
	run -1 --separate-stderr vr setup
	contains "table inet vethrelay already exists" "$stderr"
	run -1 ip -n "$NS" link show dev tpx0
	run -0 vr teardown
	run -0 in_ns "$NS" nft list table inet vethrelay
	[ -z "$(ls -A "$STATE_DIR" 2>/dev/null)" ]
}

@test "a setup that fails half-way undoes what it did" {
	# IPv6 disabled: the veth and its IPv4 address are made, the IPv6 one fails
	in_ns "$NS" sh -c 'echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6
		echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6
		echo 1 >/proc/sys/net/ipv4/conf/all/rp_filter'
	snapshot "$NS" >"$T/before"
	run -1 --separate-stderr vr setup
	contains "cannot add 2001:db8:100::1/64 to tpx0" "$stderr"
	contains "undoing" "$stderr"
	snapshot "$NS" >"$T/after"
	same "$T/before" "$T/after"
	[ ! -e "$STATE_DIR" ]
}

@test "a state file whose namespace is gone is not applied to this one" {
	in_ns "$NS" sh -c 'echo 1 >/proc/sys/net/ipv4/conf/all/rp_filter'
	run -0 vr setup
	cp "$STATE_DIR"/state-* "$T/stale"
	run -0 vr teardown
	# as if it came from an earlier namespace with the same inode number
	in_ns "$NS" sh -c 'echo 0 >/proc/sys/net/ipv4/conf/all/rp_filter'
	state=$STATE_DIR/state-tpx0-$(stat -L -c %i "/run/netns/$NS")
	mkdir -p "$STATE_DIR"
	cp "$T/stale" "$state"
	snapshot "$NS" >"$T/before"

	run -3 vr status
	contains "stale" "$output"
	run -0 --separate-stderr vr teardown
	contains "stale" "$stderr"
	[ ! -e "$state" ]
	snapshot "$NS" >"$T/after"
	same "$T/before" "$T/after"

	mkdir -p "$STATE_DIR"
	cp "$T/stale" "$state"
	run -0 --separate-stderr vr setup
	contains "stale" "$stderr"
	run -0 vr status
	run -0 vr teardown
	[ "$(sysctl_of "$NS" net/ipv4/conf/all/rp_filter)" = 0 ]
}

@test "a loopback that is down is brought up for the local routes and taken down again" {
	local lns
	ns_add lns tpx-vrl
	snap() {
		in_ns "$lns" bash -c 'ip -br link; ip -br addr; ip rule; ip -6 rule
			ip route show table all; ip -6 route show table all; nft list ruleset'
		sysctls "$lns"
	}
	snap >"$T/before"
	run -0 in_ns "$lns" "$VR" -s "$STATE_DIR" setup
	run -0 ip -n "$lns" -br link show dev lo
	matches "^lo +UNKNOWN" "$output"
	run -0 ip -n "$lns" -6 route show table 100
	matches "^local default dev lo " "$output"
	run -0 in_ns "$lns" "$VR" -s "$STATE_DIR" status
	contains "setup brought lo up" "$output"
	run -0 in_ns "$lns" "$VR" -s "$STATE_DIR" teardown
	run -0 ip -n "$lns" -br link show dev lo
	matches "^lo +DOWN" "$output"
	# (the kernel leaves lo's qdisc as noqueue once it has been up, which
	# ip -br does not show)
	snap >"$T/after"
	same "$T/before" "$T/after"
}

@test "-p 9090 -d 443 puts those ports in the rules and the advice" {
	run -0 vr setup -p 9090 -d 443
	contains "tproxy tcp-tproxy:9090 orig log + udp-tproxy:9090 orig log" "$output"
	run -0 in_ns "$NS" nft list table inet vethrelay
	tproxy_rules "$output" tpx0 9090 443
	lacks "dport 80 " "$output"
	lacks ":8080" "$output"
	run -0 vr status
	contains "port 9090 divert 443" "$output"
}

@test "-d can be given more than once and each port gets its rules" {
	run -0 vr setup -d 80 -d 443 -d 8443 -d 443
	run -0 in_ns "$NS" nft list table inet vethrelay
	tproxy_rules "$output" tpx0 8080 80
	tproxy_rules "$output" tpx0 8080 443
	tproxy_rules "$output" tpx0 8080 8443
	[ "$(grep -c 'dport 443 tproxy' <<<"$output")" = 4 ]
}

@test "-i and VETH= name the veth, and its peer follows the name" {
	run -0 vr -i lab0 setup
	run -0 ip -n "$NS" link show dev lab0
	run -0 ip -n "$NS" link show dev lab1
	run -0 in_ns "$NS" nft list table inet vethrelay
	tproxy_rules "$output" lab0 8080 80
	[ -e "$STATE_DIR/state-lab0-$(stat -L -c %i "/run/netns/$NS")" ]
	run -0 vr -i lab0 status
	run -3 vr status
	run -0 vr -i lab0 teardown
	run -1 ip -n "$NS" link show dev lab0

	run -0 in_ns "$NS" env VETH=lab "$VR" -s "$STATE_DIR" setup
	run -0 ip -n "$NS" link show dev labp
	run -0 in_ns "$NS" env VETH=lab "$VR" -s "$STATE_DIR" teardown
	run -1 ip -n "$NS" link show dev lab
}

@test "the state file is in /run/vethrelay by default and goes with teardown" {
	local state had_dir=""
	state=/run/vethrelay/state-tpx0-$(stat -L -c %i "/run/netns/$NS")
	[ ! -d /run/vethrelay ] || had_dir=1
	run -0 in_ns "$NS" "$VR" setup
	contains "$state" "$output"
	[ -f "$state" ]
	run -0 in_ns "$NS" "$VR" status
	run -0 in_ns "$NS" "$VR" teardown
	[ ! -e "$state" ]
	# the directory goes too if setup made it
	[ -n "$had_dir" ] || [ ! -e /run/vethrelay ]
}

@test "setup in a namespace leaves the root namespace alone" {
	local before after
	before=$(ip link show dev tpx0 2>&1 || true; nft list table inet vethrelay 2>&1 || true)
	run -0 vr setup
	after=$(ip link show dev tpx0 2>&1 || true; nft list table inet vethrelay 2>&1 || true)
	[ "$before" = "$after" ]
	run -0 vr teardown
}

@test "someone who is not root is refused with a message saying what is needed" {
	snapshot "$NS" >"$T/before"
	for cmd in setup status teardown; do
		run -1 --separate-stderr in_ns "$NS" setpriv --reuid=nobody --regid=nogroup --clear-groups \
			"$VR" -s "$STATE_DIR" "$cmd"
		contains "must be run as root" "$stderr"
		contains "CAP_NET_ADMIN" "$stderr"
		[ -z "$output" ]
	done
	run -1 --separate-stderr in_ns "$NS" su nobody -s /bin/sh -c "$VR setup"
	contains "must be run as root" "$stderr"
	snapshot "$NS" >"$T/after"
	same "$T/before" "$T/after"
}

@test "bad arguments are usage errors: usage on stderr, exit 2, nothing changed" {
	snapshot "$NS" >"$T/before"
	local args
	for args in "" "bogus" "setup extra" "setup -x" "--frob setup" "setup -p" \
		"setup -p 0" "setup -p 65536" "setup -p http" "setup -p 123456" \
		"setup -d" "setup -d -1" "setup -d 80x" "setup -i a/b" \
		"setup -i averyveryverylongname" "status -q" "teardown -i ''"; do
		eval "set -- $args"
		run -2 --separate-stderr vr "$@"
		contains "usage: vethrelay.sh" "$stderr"
		[ -z "$output" ]
	done
	run -2 --separate-stderr vr setup -p 0
	contains "-p: port out of range" "$stderr"
	run -2 --separate-stderr vr bogus
	contains "unknown command: bogus" "$stderr"
	run -2 --separate-stderr vr setup -x
	contains "unknown option: -x" "$stderr"
	snapshot "$NS" >"$T/after"
	same "$T/before" "$T/after"
}

@test "-h prints the usage on stdout and exits 0, also for someone who is not root" {
	run -0 --separate-stderr vr -h
	contains "usage: vethrelay.sh setup|status|teardown" "$output"
	contains "-d PORT" "$output"
	[ -z "$stderr" ]
	run -0 --separate-stderr in_ns "$NS" setpriv --reuid=nobody --regid=nogroup --clear-groups "$VR" setup -h
	contains "usage:" "$output"
}

@test "a TCP connection from the client namespace to 203.0.113.9:80 reaches the transparent listener with its original destination" {
	run -0 vr setup
	client_ns
	write_tools
	listen tcp4
	run -0 timeout 10 ip netns exec "$CNS" python3 "$T/client.py" tcp 203.0.113.9 80
	[ "$output" = "got pong" ]
	wait "$LISTEN_PID"
	run -0 cat "$T/listen.out"
	matches "^tcp from 198\.51\.100\.2 port [0-9]+ to 203\.0\.113\.9 port 80 ping$" "$output"
	# a port that is not diverted is not delivered
	run ! timeout 10 ip netns exec "$CNS" python3 "$T/client.py" tcp 203.0.113.9 81
	# teardown removes the peer too, wherever it was moved
	run -0 vr teardown
	run -1 ip -n "$CNS" link show dev tpx1
}

@test "a TCP connection over IPv6 reaches the transparent listener with its original destination" {
	run -0 vr setup
	client_ns
	write_tools
	listen tcp6
	run -0 timeout 10 ip netns exec "$CNS" python3 "$T/client.py" tcp 2001:db8:ffff::9 80
	[ "$output" = "got pong" ]
	wait "$LISTEN_PID"
	run -0 cat "$T/listen.out"
	matches "^tcp from 2001:db8:100::2 port [0-9]+ to 2001:db8:ffff::9 port 80 ping$" "$output"
}

@test "a UDP datagram to 203.0.113.9:80 reaches the transparent listener, and the answer comes from there" {
	run -0 vr setup
	client_ns
	write_tools
	listen udp4
	run -0 timeout 10 ip netns exec "$CNS" python3 "$T/client.py" udp 203.0.113.9 80
	[ "$output" = "got pong from 203.0.113.9:80" ]
	wait "$LISTEN_PID"
	run -0 cat "$T/listen.out"
	matches "^udp from 198\.51\.100\.2:[0-9]+ to 203\.0\.113\.9:80 ping$" "$output"
}

@test "with setup done and nothing listening, diverted TCP and UDP from the client namespace do not reach the server" {
	run -0 vr setup
	client_ns
	write_tools
	server_ns
	# the server can be reached on a port that is not diverted... (81 is
	# not served: a refusal is an answer from it)
	run ! timeout 10 ip netns exec "$CNS" python3 "$T/client.py" tcp 203.0.113.9 81 2
	[[ $output == *"efused"* ]]
	# ...but what is diverted to the empty port 8080 is dropped
	run ! timeout 10 ip netns exec "$CNS" python3 "$T/client.py" tcp 203.0.113.9 80 2
	echo "$output"
	[[ $output == *"timed out"* ]]
	run ! timeout 10 ip netns exec "$CNS" python3 "$T/client.py" udp 203.0.113.9 80 2
	echo "$output"
	run -0 cat "$T/server.out"
	[ "$output" = listening ]
	run -0 vr status
	contains "it is dropped (fails closed" "$output"
}

@test "with --fail-open and nothing listening, diverted TCP and UDP go on to the server uninspected" {
	run -0 vr --fail-open setup
	contains "--fail-open" "$output"
	run -0 in_ns "$NS" nft list table inet vethrelay
	lacks " drop" "$output"
	client_ns
	write_tools
	server_ns
	run -0 timeout 10 ip netns exec "$CNS" python3 "$T/client.py" tcp 203.0.113.9 80
	[ "$output" = "got server" ]
	run -0 timeout 10 ip netns exec "$CNS" python3 "$T/client.py" udp 203.0.113.9 80
	[ "$output" = "got server from 203.0.113.9:80" ]
	run -0 cat "$T/server.out"
	[ "$output" = $'listening\ntcp\nudp' ]
	run -0 vr status
	contains "uninspected (--fail-open)" "$output"
}

@test "with --fail-open, setup twice changes nothing and teardown restores the namespace exactly" {
	settle "$NS"
	snapshot "$NS" >"$T/before"
	run -0 vr --fail-open setup
	settle "$NS"
	snapshot "$NS" >"$T/once"
	run -0 vr --fail-open setup
	contains "nothing changed" "$output"
	lacks "teardown first" "$output"
	snapshot "$NS" >"$T/twice"
	same "$T/once" "$T/twice"
	# a setup that would fail closed says how to get there
	run -0 vr setup
	contains "fails open; to change that, teardown first" "$output"
	run -0 vr teardown
	snapshot "$NS" >"$T/after"
	same "$T/before" "$T/after"
}

@test "a client's connection to 127.0.0.1:80 over the veth is not diverted (no route_localnet)" {
	run -0 vr setup
	client_ns
	write_tools
	listen tcp4
	# a client that sends to 127.0.0.1 over the wire: its own loopback
	# without 127.0.0.1, and answers from 127.0.0.1 accepted
	ip -n "$CNS" addr del 127.0.0.1/8 dev lo
	in_ns "$CNS" sysctl -qw net.ipv4.conf.tpx1.route_localnet=1
	run ! timeout 10 ip netns exec "$CNS" python3 "$T/client.py" tcp 127.0.0.1 80 2
	echo "$output"
	# the listener is still waiting for its first connection
	run -0 timeout 10 ip netns exec "$CNS" python3 "$T/client.py" tcp 203.0.113.9 80
	[ "$output" = "got pong" ]
	wait "$LISTEN_PID"
	run -0 cat "$T/listen.out"
	matches "^tcp from 198\.51\.100\.2 port [0-9]+ to 203\.0\.113\.9 port 80 ping$" "$output"
}

@test "teardown refuses a state file with a record setup does not write, and changes nothing" {
	local state rec
	echo x >"$T/outside"
	run -0 vr setup
	settle "$NS"
	state=$(echo "$STATE_DIR"/state-*)
	cp "$state" "$T/good"
	snapshot "$NS" >"$T/before"
	for rec in "sysctl ../..$T/outside 1" "sysctl net/ipv4/tcp_syncookies 0" \
		"sysctl net/ipv4/conf/../../ipv4/ip_forward 0" \
		"sysctl net/ipv4/conf/lo/forwarding 1; touch $T/pwned" "link lo" \
		"rule 5" "bogus"; do
		# as if someone else had written it there
		{ sed '$d' "$T/good"; printf '%s\ncomplete\n' "$rec"; } >"$state"
		run -1 --separate-stderr vr teardown
		echo "$rec: $stderr"
		contains "not a record setup writes" "$stderr"
		contains "$rec" "$stderr"
		run -1 --separate-stderr vr status
		contains "not a record setup writes" "$stderr"
		[ "$(cat "$T/outside")" = x ]
		[ ! -e "$T/pwned" ]
	done
	snapshot "$NS" >"$T/after"
	same "$T/before" "$T/after"
	# the state as setup wrote it goes through
	cp "$T/good" "$state"
	run -0 vr teardown
	[ ! -e "$state" ]
}

@test "tproxy itself relays a diverted connection to its original destination (when built with tcp-tproxy)" {
	[ -x "$TPROXY" ] || skip "no tproxy binary at $TPROXY"
	"$TPROXY" --help 2>&1 | grep -q 'tcp-tproxy' || skip "this tproxy has no tcp-tproxy"
	run -0 vr setup
	client_ns
	write_tools
	# the real 203.0.113.9 lives in a third namespace behind a second veth
	ns_add SNS tpx-vrs
	in_ns "$NS" ip link add up0 type veth peer name up1 netns "$SNS"
	ip -n "$NS" addr add 192.0.2.1/24 dev up0
	ip -n "$NS" link set up0 up
	ip -n "$NS" route add 203.0.113.0/24 via 192.0.2.9
	ip -n "$SNS" link set lo up
	ip -n "$SNS" addr add 192.0.2.9/24 dev up1
	ip -n "$SNS" addr add 203.0.113.9/32 dev lo
	ip -n "$SNS" link set up1 up
	ip -n "$SNS" route add default via 192.0.2.1
	cat >"$T/server.py" <<'EOF'
import socket
s = socket.create_server(("203.0.113.9", 80))
s.settimeout(20)
print("listening", flush=True)
c, _ = s.accept()
c.sendall(b"hello from " + c.getsockname()[0].encode() + b" to " + c.recv(100))
EOF
	bg in_ns "$SNS" python3 "$T/server.py" >"$T/server.out" 2>&1
	wait_for "$T/server.out" '^listening' 10
	printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$NS" "$TPROXY" >"$T/tproxy-in-ns"
	chmod +x "$T/tproxy-in-ns"
	TPROXY=$T/tproxy-in-ns start_tproxy tcp-tproxy:8080 orig log
	run -0 timeout 10 ip netns exec "$CNS" python3 "$T/client.py" tcp 203.0.113.9 80
	[ "$output" = "got hello from 203.0.113.9 to ping" ]
}
