#!/bin/bash
# vethrelay.sh - lab plumbing for tproxy's TPROXY mode.
#
# setup makes a veth pair (tpx0 here, tpx1 for a client), gives the host end
# addresses from the documentation ranges, and installs what TPROXY needs:
# an nftables table of its own (inet vethrelay) that diverts the lab ports
# arriving on the veth to tproxy's port, policy routing (fwmark 1 -> table
# 100 -> local) for IPv4 and IPv6, and the sysctls (rp_filter loose or off on
# the veth, ip_forward).  Every change is written to a state file first, so
# teardown undoes exactly what setup did and nothing else.
#
# It fails closed: while nothing listens on tproxy's port, the diverted
# traffic is dropped (a tproxy statement that finds no socket lets the packet
# go on, to be routed to its destination uninspected); --fail-open keeps that.
#
# route_localnet is left alone: TPROXY does not need it (the diverted
# packets are addressed to other hosts), and with it a client's packets to
# 127.0.0.1 would be accepted from the veth and diverted too.
#
# It works in the network namespace it is started in (ip netns exec NS ...).
# The state file name carries that namespace's inode number, and the objects
# it made carry a random token (the veth's alias, the nft table's comment), so
# a state file left behind by a namespace that is gone is recognised as stale
# rather than applied to a new namespace that happens to reuse the number.
#
# Exit status: 0 done (also when there was nothing to do), 1 failure (not
# root, something in the way, a command failed), 2 usage error; status exits
# 3 when not set up.

set -eu

PROG=${0##*/}
VETH=${VETH:-tpx0}
PORT=8080
DPORTS=""
STATEDIR=/run/vethrelay
CMD=""
FAILMODE=closed

ADDR4=198.51.100.1/24
ADDR6=2001:db8:100::1/64
MARK=1
RTABLE=100
NFTABLE=vethrelay

usage() {
	cat <<EOF
usage: $PROG setup|status|teardown [-h] [--fail-open] [-i NAME] [-p PORT]
       [-d PORT]... [-s DIR]

  setup     create the veth pair NAME/peer with $ADDR4 and
            $ADDR6 on NAME, the nftables table inet $NFTABLE
            (TCP and UDP, IPv4 and IPv6), ip rules fwmark $MARK lookup $RTABLE with
            local routes in table $RTABLE, and the sysctls TPROXY needs; a second
            setup changes nothing.  Diverted traffic is dropped while nothing
            listens on PORT (it fails closed)
  status    show what is set up (exit 0), or say it is not (exit 3)
  teardown  undo exactly what setup did; without a setup, nothing to do

  -h        print this help and exit
  --fail-open
            let diverted traffic go on to its destination, uninspected,
            while nothing listens on PORT (what the nft tproxy statement
            alone does); the default drops it
  -i NAME   host end of the veth (default tpx0, or \$VETH); the peer is NAME
            with its trailing number plus one (tpx0 -> tpx1), else NAME + "p"
  -p PORT   the port tproxy listens on (default 8080)
  -d PORT   divert traffic to PORT arriving on the veth (repeatable; default 80)
  -s DIR    directory of the state file (default /run/vethrelay); the file is
            DIR/state-NAME-NETNS, NETNS being the namespace's inode number

Needs root (CAP_NET_ADMIN), ip (iproute2) and nft (nftables).  Runs in the
network namespace it is started in, e.g.  ip netns exec lab $PROG setup
EOF
}

# err MSG...: print MSG on stderr and exit 1
err() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 1
}

# warn MSG...: print MSG on stderr and carry on
warn() {
	printf '%s: %s\n' "$PROG" "$*" >&2
}

# usage_err MSG...: print MSG and the usage on stderr and exit 2
usage_err() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	usage >&2
	exit 2
}

# port_arg OPT VALUE: VALUE as a port number (1-65535), or a usage error
# naming OPT
port_arg() {
	case $2 in
	'' | *[!0-9]*) usage_err "$1: not a port number: '$2'" ;;
	esac
	if [ "${#2}" -gt 5 ] || [ "$((10#$2))" -lt 1 ] || [ "$((10#$2))" -gt 65535 ]; then
		usage_err "$1: port out of range (1-65535): $2"
	fi
	echo "$((10#$2))"
}

# peer_name NAME: the other end of the veth (tpx0 -> tpx1, lab -> labp)
peer_name() {
	local base num
	num=${1##*[!0-9]}
	base=${1%"$num"}
	if [ -n "$num" ] && [ "${#num}" -le 9 ]; then
		echo "$base$((10#$num + 1))"
	else
		echo "${1}p"
	fi
}

# ifname_ok NAME: 0 when NAME is a usable interface name
ifname_ok() {
	case $1 in
	'' | . | .. | *[!A-Za-z0-9_.-]*) return 1 ;;
	esac
	[ "${#1}" -le 15 ]
}

parse_args() {
	local p
	while [ $# -gt 0 ]; do
		case $1 in
		-h | --help)
			usage
			exit 0
			;;
		--fail-open)
			FAILMODE=open
			shift
			;;
		-i | -p | -d | -s)
			[ $# -ge 2 ] || usage_err "option $1 needs an argument"
			case $1 in
			-i) VETH=$2 ;;
			-p) PORT=$(port_arg -p "$2") ;;
			-d)
				p=$(port_arg -d "$2")
				case " $DPORTS " in
				*" $p "*) ;;
				*) DPORTS="${DPORTS:+$DPORTS }$p" ;;
				esac
				;;
			-s) STATEDIR=$2 ;;
			esac
			shift 2
			;;
		--)
			shift
			[ $# -eq 0 ] || [ -n "$CMD" ] || {
				CMD=$1
				shift
			}
			[ $# -eq 0 ] || usage_err "unexpected argument: $1"
			;;
		-*) usage_err "unknown option: $1" ;;
		*)
			[ -z "$CMD" ] || usage_err "unexpected argument: $1"
			CMD=$1
			shift
			;;
		esac
	done
	case $CMD in
	setup | status | teardown) ;;
	'') usage_err "no command given" ;;
	*) usage_err "unknown command: $CMD" ;;
	esac
	ifname_ok "$VETH" || usage_err "-i: not a usable interface name: '$VETH'"
	PEER=$(peer_name "$VETH")
	ifname_ok "$PEER" || usage_err "-i: no room for the peer's name: '$PEER'"
	[ -n "$STATEDIR" ] || usage_err "-s: empty directory name"
	DPORTS=${DPORTS:-80}
}

# --- the state file ---------------------------------------------------------
#
# One record per line, appended *before* the change it describes, so that a
# setup that dies half-way still leaves teardown enough to undo it:
#
#   token UUID            the mark on the veth's alias and the table's comment
#   config VETH PEER PORT DPORT...
#   mode closed|open      diverted traffic dropped while nothing listens, or not
#   statedir              created the state directory (removed if left empty)
#   link VETH             created the veth pair
#   lo-up                 brought lo up (the local routes need it)
#   lo-addr4              ... and that gave lo 127.0.0.1/8, which it lacked
#   sysctl KEY OLD        changed /proc/sys/KEY from OLD
#   nft                   created table inet vethrelay
#   rule 4|6              added ip [-6] rule fwmark 1 lookup 100
#   route 4|6             added ip [-6] route local default dev lo table 100
#   complete              setup finished
#
# Teardown reads it bottom-up.  It is parsed, never sourced, and every record
# is checked (state_check) before anything is done with it: the names under
# /proc/sys that teardown writes come from it.

# record WORD...: append a record to the state file
record() {
	printf '%s\n' "$*" >>"$STATE" || err "cannot write $STATE"
}

# state_get KEY: the rest of the first KEY record
state_get() {
	sed -n "s/^$1 //p" "$STATE" | head -n 1
}

# state_has KEY: 0 when the state file has a KEY record
state_has() {
	grep -q "^$1\( \|\$\)" "$STATE"
}

# sysctl_key_ok KEY: 0 when KEY is one that setup records: ip_forward, or
# a per-device key of net/ipv4/conf it changes (directly, or as a side
# effect of ip_forward; route_localnet from an earlier version)
sysctl_key_ok() {
	local dev
	case $1 in
	net/ipv4/ip_forward) return 0 ;;
	net/ipv4/conf/*/rp_filter | net/ipv4/conf/*/route_localnet | \
		net/ipv4/conf/*/forwarding | net/ipv4/conf/*/accept_redirects)
		dev=${1#net/ipv4/conf/}
		dev=${dev%/*}
		ifname_ok "$dev"
		;;
	*) return 1 ;;
	esac
}

# state_check: err unless every record of the state file has the form
# setup writes, for this veth; nothing is done with a state file that fails
state_check() {
	local n=0 line kind a b
	while IFS= read -r line; do
		n=$((n + 1))
		read -r kind a b <<<"$line" || true
		case $kind in
		'' | '#'*) continue ;;
		token)
			[[ $a =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] &&
				[ -z "$b" ] && continue
			;;
		config)
			[ "$a" = "$VETH" ] && [[ $b =~ ^[A-Za-z0-9_.-]+( [0-9]{1,5})+$ ]] &&
				[ "${b%% *}" = "$PEER" ] && continue
			;;
		mode)
			case $a in open | closed) [ -z "$b" ] && continue ;; esac
			;;
		link)
			[ "$a" = "$VETH" ] && [ -z "$b" ] && continue
			;;
		rule | route)
			case $a in 4 | 6) [ -z "$b" ] && continue ;; esac
			;;
		sysctl)
			sysctl_key_ok "$a" && [[ $b =~ ^-?[0-9]{1,10}$ ]] && continue
			;;
		statedir | lo-up | lo-addr4 | nft | complete)
			[ -z "$a" ] && continue
			;;
		esac
		err "$STATE, line $n: not a record setup writes; refusing to use it: $line"
	done <"$STATE"
}

# link_alias DEV: the alias of DEV, empty if none or no such device
link_alias() {
	ip link show dev "$1" 2>/dev/null | sed -n 's/^ *alias //p'
}

# link_exists DEV: 0 when DEV exists in this namespace
link_exists() {
	ip link show dev "$1" >/dev/null 2>&1
}

# table_exists: 0 when table inet vethrelay exists in this namespace
table_exists() {
	nft list table inet "$NFTABLE" >/dev/null 2>&1
}

# ours_link / ours_table: 0 when the veth / nft table carries our token
ours_link() {
	[ "$(link_alias "$VETH")" = "vethrelay.sh $TOKEN" ]
}
ours_table() {
	nft list table inet "$NFTABLE" 2>/dev/null | grep -qF "\"vethrelay.sh $TOKEN\""
}

# rule_exists 4|6: 0 when ip [-6] rule fwmark 1 lookup 100 is there
rule_exists() {
	[ -n "$(ip "-$1" rule show fwmark "$MARK" lookup "$RTABLE" 2>/dev/null)" ]
}

# route_exists 4|6: 0 when the local default route of table 100 is there
route_exists() {
	local dst=0.0.0.0/0
	[ "$1" = 6 ] && dst=::/0
	ip "-$1" route show table "$RTABLE" exact "$dst" 2>/dev/null |
		grep -q '^local default dev lo '
}

# load_state: read the state file into TOKEN; 0 when there is one.
# A state file whose token is on neither the veth nor the table is stale: the
# namespace it was written in is gone (or everything was removed by hand).
load_state() {
	[ -f "$STATE" ] || return 1
	state_check
	TOKEN=$(state_get token)
	STALE=""
	if [ -z "$TOKEN" ] || { ! ours_link && ! ours_table; }; then
		STALE=1
	fi
	return 0
}

# --- sysctls ----------------------------------------------------------------

# sysctl_get KEY: the value of /proc/sys/KEY (KEY with slashes)
sysctl_get() {
	cat "/proc/sys/$1" 2>/dev/null || err "cannot read /proc/sys/$1"
}

# sysctl_set KEY VALUE: set KEY to VALUE, recording the old value when it
# changes
sysctl_set() {
	local old
	old=$(sysctl_get "$1")
	[ "$old" = "$2" ] && return 0
	record sysctl "$1" "$old"
	echo "$2" >"/proc/sys/$1" || err "cannot set $(sysctl_name "$1")=$2"
}

# sysctl_name KEY: KEY in sysctl(8) spelling
sysctl_name() {
	echo "$1" | tr / .
}

# forward_on: turn ip_forward on.  Writing it also sets every interface's
# forwarding and default/forwarding, and all/accept_redirects to its
# opposite; those are recorded first so that teardown, which restores
# ip_forward before them, can put each back as it was.
forward_on() {
	local f key
	[ "$(sysctl_get net/ipv4/ip_forward)" = 1 ] && return 0
	for f in /proc/sys/net/ipv4/conf/*/forwarding; do
		key=${f#/proc/sys/}
		case $key in
		*/all/* | */"$VETH"/* | */"$PEER"/*) continue ;;
		esac
		record sysctl "$key" "$(sysctl_get "$key")"
	done
	record sysctl net/ipv4/conf/all/accept_redirects \
		"$(sysctl_get net/ipv4/conf/all/accept_redirects)"
	sysctl_set net/ipv4/ip_forward 1
}

# --- setup ------------------------------------------------------------------

# nft_script: the table, for nft -f -
nft_script() {
	local p proto fam
	printf 'table inet %s {\n' "$NFTABLE"
	printf '\tcomment "vethrelay.sh %s"\n' "$TOKEN"
	printf '\tchain prerouting {\n'
	printf '\t\ttype filter hook prerouting priority mangle; policy accept;\n'
	printf '\t\tmeta l4proto { tcp, udp } socket transparent 1 meta mark set %s accept\n' "$MARK"
	for p in $DPORTS; do
		for proto in tcp udp; do
			for fam in ip ip6; do
				printf '\t\tiifname "%s" meta l4proto %s th dport %s tproxy %s to :%s meta mark set %s accept\n' \
					"$VETH" "$proto" "$p" "$fam" "$PORT" "$MARK"
			done
		done
		# reached only when no socket took the packet
		[ "$FAILMODE" = open ] ||
			printf '\t\tiifname "%s" meta l4proto { tcp, udp } th dport %s drop\n' \
				"$VETH" "$p"
	done
	printf '\t}\n}\n'
}

# rollback: the EXIT trap while setup runs; undoes a setup that failed
rollback() {
	local rc=$?
	trap - EXIT
	if [ "$rc" -ne 0 ] && [ -f "$STATE" ]; then
		warn "setup failed; undoing what it did"
		undo || true
	fi
	exit "$rc"
}

do_setup() {
	local fam dst cfg mode made_dir=""
	if load_state; then
		if [ -n "$STALE" ]; then
			warn "removing stale state $STATE (nothing it made is left here)"
			remove_state
		elif ! state_has complete; then
			err "an unfinished setup left $STATE: run '$PROG teardown' first"
		else
			echo "$PROG: already set up ($STATE); nothing changed"
			read -r -a cfg <<<"$(state_get config)"
			mode=$(state_get mode)
			if [ "$VETH $PEER $PORT $DPORTS" != "${cfg[*]}" ] ||
				[ "$FAILMODE" != "${mode:-open}" ]; then
				echo "$PROG: it diverts port(s) ${cfg[*]:3} to ${cfg[2]} and fails ${mode:-open}; to change that, teardown first"
			fi
			return 0
		fi
	fi
	link_exists "$VETH" && err "$VETH already exists and is not ours (no state in $STATEDIR)"
	link_exists "$PEER" && err "$PEER already exists (the peer of $VETH)"
	table_exists && err "table inet $NFTABLE already exists and is not ours (set up under another name or state directory?)"

	TOKEN=$(cat /proc/sys/kernel/random/uuid) || err "cannot make a token"
	[ -d "$STATEDIR" ] || made_dir=1
	mkdir -p "$STATEDIR" || err "cannot create $STATEDIR"
	trap rollback EXIT
	trap 'exit 1' HUP INT TERM
	{
		echo "# $PROG state for net:[$NETNS]: what setup changed, undone bottom-up"
		echo "token $TOKEN"
		echo "config $VETH $PEER $PORT $DPORTS"
		echo "mode $FAILMODE"
		[ -z "$made_dir" ] || echo statedir
	} >"$STATE" || err "cannot write $STATE"

	record link "$VETH"
	ip link add "$VETH" type veth peer name "$PEER" || err "cannot create veth $VETH/$PEER"
	ip link set dev "$VETH" alias "vethrelay.sh $TOKEN" || err "cannot set the alias of $VETH"
	if ! ip link show dev lo | grep -q '[<,]UP[,>]'; then
		record lo-up
		ip -4 addr show dev lo | grep -q ' 127\.0\.0\.1/8 ' || record lo-addr4
		ip link set dev lo up || err "cannot bring lo up"
	fi
	ip addr add "$ADDR4" dev "$VETH" || err "cannot add $ADDR4 to $VETH"
	ip -6 addr add "$ADDR6" dev "$VETH" nodad || err "cannot add $ADDR6 to $VETH"
	ip link set dev "$VETH" up || err "cannot bring $VETH up"
	ip link set dev "$PEER" up || err "cannot bring $PEER up"

	# rp_filter: the effective value is the larger of all and the device's;
	# off on the veth, and strict (1) on all made loose (2).
	sysctl_set "net/ipv4/conf/$VETH/rp_filter" 0
	[ "$(sysctl_get net/ipv4/conf/all/rp_filter)" = 1 ] &&
		sysctl_set net/ipv4/conf/all/rp_filter 2
	forward_on

	record nft
	nft_script | nft -f - || err "cannot load table inet $NFTABLE"

	for fam in 4 6; do
		dst=0.0.0.0/0
		[ "$fam" = 6 ] && dst=::/0
		if ! rule_exists "$fam"; then
			record rule "$fam"
			ip "-$fam" rule add fwmark "$MARK" lookup "$RTABLE" ||
				err "cannot add ip -$fam rule fwmark $MARK lookup $RTABLE"
		fi
		if ! route_exists "$fam"; then
			record route "$fam"
			ip "-$fam" route add local "$dst" dev lo table "$RTABLE" ||
				err "cannot add ip -$fam route local $dst dev lo table $RTABLE"
		fi
	done
	record complete
	trap - EXIT HUP INT TERM

	cat <<EOF
$PROG: set up $VETH ($ADDR4, $ADDR6) with peer $PEER; state in $STATE
TCP and UDP to port(s) $DPORTS arriving on $VETH go to port $PORT.
$(fail_text)
Run tproxy here:
  tproxy tcp-tproxy:$PORT orig log + udp-tproxy:$PORT orig log
Clients: $PEER is the other end (move it into a namespace, give it an
address in ${ADDR4%.*/*}.0/24 with default route via ${ADDR4%/*}).
To divert another port too (443 here):
  nft add rule inet $NFTABLE prerouting 'iifname "$VETH" meta l4proto { tcp, udp } th dport 443 tproxy to :$PORT meta mark set $MARK accept'
EOF
	if [ "$FAILMODE" = closed ]; then
		cat <<EOF
  nft add rule inet $NFTABLE prerouting 'iifname "$VETH" meta l4proto { tcp, udp } th dport 443 drop'
EOF
	fi
}

# fail_text [MODE [PORT]]: what happens to diverted traffic while nothing
# listens
fail_text() {
	if [ "${1:-$FAILMODE}" = open ]; then
		echo "While nothing listens on port ${2:-$PORT}, it goes on to its destination uninspected (--fail-open)."
	else
		echo "While nothing listens on port ${2:-$PORT}, it is dropped (fails closed; --fail-open lets it through)."
	fi
}

# --- teardown ---------------------------------------------------------------

# undo: undo the state file's records bottom-up, then remove it.  Keeps going
# past failures; returns 1 if any.
undo() {
	local kind a b fail=0 dst
	while read -r kind a b; do
		case $kind in
		route)
			dst=0.0.0.0/0
			[ "$a" = 6 ] && dst=::/0
			if route_exists "$a"; then
				ip "-$a" route del local "$dst" dev lo table "$RTABLE" || fail=1
			fi
			;;
		rule)
			if rule_exists "$a"; then
				ip "-$a" rule del fwmark "$MARK" lookup "$RTABLE" || fail=1
			fi
			;;
		nft)
			if ours_table; then
				nft delete table inet "$NFTABLE" || fail=1
			fi
			;;
		sysctl)
			# a device's keys vanish with the device
			[ -e "/proc/sys/$a" ] || continue
			if [ "$(cat "/proc/sys/$a")" != "$b" ]; then
				echo "$b" >"/proc/sys/$a" || fail=1
			fi
			;;
		link)
			if ours_link; then
				ip link del dev "$a" || fail=1
			elif link_exists "$a"; then
				warn "$a is not the one setup made; left alone"
			fi
			;;
		lo-addr4)
			ip addr del 127.0.0.1/8 dev lo 2>/dev/null || true
			;;
		lo-up)
			ip link set dev lo down || fail=1
			;;
		esac
	done < <(tac "$STATE")
	[ "$fail" = 0 ] || {
		warn "some steps failed; keeping $STATE"
		return 1
	}
	remove_state
}

# remove_state: remove the state file, and its directory if setup made it
# and nothing else is in it
remove_state() {
	if state_has statedir; then
		rm -f "$STATE"
		rmdir "$STATEDIR" 2>/dev/null || true
	else
		rm -f "$STATE"
	fi
}

do_teardown() {
	if ! load_state; then
		echo "$PROG: not set up (no state $STATE); nothing to remove"
		return 0
	fi
	if [ -n "$STALE" ]; then
		warn "stale state $STATE (nothing it made is left here); removed it"
		remove_state
		return 0
	fi
	undo || err "teardown incomplete"
	echo "$PROG: removed $VETH, table inet $NFTABLE and what else setup changed"
}

# --- status -----------------------------------------------------------------

do_status() {
	local fam kind a b
	if ! load_state; then
		echo "$PROG: not set up (no state $STATE)"
		return 3
	fi
	if [ -n "$STALE" ]; then
		echo "$PROG: not set up (stale state $STATE: nothing it made is left here)"
		return 3
	fi
	if state_has complete; then
		echo "$PROG: set up (state $STATE)"
	else
		echo "$PROG: partly set up: setup did not finish (state $STATE); run teardown"
	fi
	echo "config: $(state_get config | awk '{ printf "veth %s peer %s port %s divert", $1, $2, $3; for (i = 4; i <= NF; i++) printf " %s", $i }')"
	a=$(state_get mode)
	fail_text "${a:-open}" "$(state_get config | awk '{ print $3 }')"
	echo
	echo "== veth"
	ip addr show dev "$VETH" 2>&1 || true
	ip link show dev "$PEER" 2>/dev/null || echo "($PEER is not in this namespace)"
	echo
	echo "== sysctls"
	for a in "net/ipv4/conf/$VETH/rp_filter" net/ipv4/conf/all/rp_filter \
		net/ipv4/ip_forward; do
		if [ -e "/proc/sys/$a" ]; then
			echo "$(sysctl_name "$a") = $(cat "/proc/sys/$a")"
		fi
	done
	while read -r kind a b; do
		if [ "$kind" = sysctl ]; then
			echo "  (setup changed $(sysctl_name "$a") from $b)"
		fi
	done <"$STATE"
	if state_has lo-up; then
		echo "  (setup brought lo up)"
	fi
	echo
	echo "== nft"
	nft list table inet "$NFTABLE" 2>&1 || true
	for fam in 4 6; do
		echo
		echo "== ip -$fam rule"
		ip "-$fam" rule show
		echo "== ip -$fam route show table $RTABLE"
		ip "-$fam" route show table "$RTABLE" 2>&1 || true
	done
	state_has complete || return 3
}

main() {
	local ns
	parse_args "$@"
	[ "$(id -u)" = 0 ] ||
		err "must be run as root: it needs CAP_NET_ADMIN to create the veth, load nftables rules, add ip rules and routes, and write net sysctls"
	command -v ip >/dev/null || err "ip (iproute2) not found"
	command -v nft >/dev/null || err "nft (nftables) not found"
	ns=$(readlink /proc/self/ns/net) || err "cannot read /proc/self/ns/net"
	NETNS=${ns//[!0-9]/}
	STATE=$STATEDIR/state-$VETH-$NETNS
	case $CMD in
	setup) do_setup ;;
	teardown) do_teardown ;;
	status) do_status || exit "$?" ;;
	esac
}

main "$@"
