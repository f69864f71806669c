#!/usr/bin/env bash
# tests/soak.sh - the soak run (make soak; not part of make check).
#
#  1. SOAK_N (10000) connections held through a plain route for SOAK_SECS
#     (60) seconds, a byte each way on every one every SOAK_EVERY (5) seconds,
#     then closed: none may be lost, tproxy's descriptors must be back to
#     where they were, and its anonymous RSS must give back at least two thirds of what
#     the connections took.
#  2. SOAK_MIB (1024) MiB each way through a plain route, a route with the
#     log filter (its lines to a file) and a UDP route: the SHA-256 of
#     what came back must equal that of what was sent.
#
# Prints one line per check and a summary; exit status 0 when all passed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
TPROXY=${TPROXY:-$top/tproxy}
SOAK_N=${SOAK_N:-10000}
SOAK_SECS=${SOAK_SECS:-60}
SOAK_EVERY=${SOAK_EVERY:-5}
SOAK_MIB=${SOAK_MIB:-1024}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
TOOL=$here/tools/soak_tool.py

fail=0
say() { printf 'soak: %s\n' "$*"; }
bad() { say "FAIL: $*"; fail=1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# the echo server (TCP and UDP on one port) from the benchmark's load.c
gcc -O2 -Wall -Wextra -o "$tmp/load" "$here/bench/load.c" -lpthread -DLOAD_NO_TLS
# tproxy needs two descriptors per connection: raise the limit (root may)
if [ "$(id -u)" = 0 ] && [ "$(ulimit -Hn)" -lt $((2 * SOAK_N + 200)) ]; then
	ulimit -Hn $((2 * SOAK_N + 200)) 2>/dev/null || true
fi
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((2 * SOAK_N + 200)) ]; then
	SOAK_N=$((($(ulimit -n) - 200) / 2))
	say "descriptor limit $(ulimit -n): holding $SOAK_N connections only"
fi
EPORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$tmp/load" echo -p "$EPORT" -L 100000 >/dev/null 2>&1 &
pids+=($!)

# start_tproxy NAME ARGS...: a tproxy in the background; sets PORT and TPID
start_tproxy() {
	local name=$1
	shift
	"$TPROXY" -q "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
	TPID=$!
	pids+=("$TPID")
	for _ in $(seq 100); do
		PORT=$(sed -n 's/.*"event":"listen".*"port":\([0-9]*\).*/\1/p' "$tmp/$name.out" | head -n 1)
		[ -n "$PORT" ] && return 0
		sleep 0.1
	done
	say "tproxy $name did not start: $(cat "$tmp/$name.err")"
	exit 1
}

fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
# anonymous memory: what the program allocated (file pages it touched are not)
rss() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }

# --- 1. many connections held, a trickle on each ---------------------------
start_tproxy hold --json tcp-listen:0 tcp:127.0.0.1:"$EPORT"
fd0=$(fds "$TPID"); rss0=$(rss "$TPID")
say "holding $SOAK_N connections for $SOAK_SECS s (a byte each way every $SOAK_EVERY s)"
$PY "$TOOL" hold "$SOAK_N" "$SOAK_SECS" "$SOAK_EVERY" 127.0.0.1 "$PORT" >"$tmp/trickle.out" &
hpid=$!
rssmax=$rss0
while kill -0 "$hpid" 2>/dev/null; do
	r=$(rss "$TPID")
	[ "$r" -gt "$rssmax" ] && rssmax=$r
	sleep 1
done
if wait "$hpid"; then
	say "held: $(cat "$tmp/trickle.out")"
else
	bad "held: $(cat "$tmp/trickle.out")"
fi
for _ in $(seq 50); do
	[ "$(fds "$TPID")" -le "$fd0" ] && break
	sleep 0.2
done
fd1=$(fds "$TPID"); rss1=$(rss "$TPID")
say "descriptors before $fd0, after $fd1; anonymous RSS before $rss0 KiB, held $rssmax KiB, after $rss1 KiB"
[ "$fd1" = "$fd0" ] || bad "descriptors not back: $fd0 before, $fd1 after"
# what may stay is the loop's tables sized for the peak (about 1.2 MiB for
# 10,000 connections) and pages still shared with live allocations, never
# the connections' own memory
[ $((rss1 - rss0)) -le $(((rssmax - rss0) / 3)) ] ||
	bad "RSS not back: $rss0 KiB before, $rssmax KiB held, $rss1 KiB after"
kill "$TPID"

# --- 2. a GiB each way through plain, log and UDP routes --------------------
start_tproxy plain --json tcp-listen:0 tcp:127.0.0.1:"$EPORT"
if out=$($PY "$TOOL" tcp "$SOAK_MIB" 127.0.0.1 "$PORT"); then
	say "plain: $out"
else
	bad "plain: $out"
fi
kill "$TPID"

start_tproxy log --json tcp-listen:0 tcp:127.0.0.1:"$EPORT" log
if out=$($PY "$TOOL" tcp "$SOAK_MIB" 127.0.0.1 "$PORT"); then
	say "log: $out (log lines: $(grep -c '"event":"data"' "$tmp/log.out"))"
else
	bad "log: $out"
fi
kill "$TPID"

start_tproxy udp --json udp-listen:0 udp:127.0.0.1:"$EPORT"
if out=$($PY "$TOOL" udp "$SOAK_MIB" 127.0.0.1 "$PORT"); then
	say "udp: $out"
else
	bad "udp: $out"
fi
kill "$TPID"

[ "$fail" = 0 ] && say "all passed" || say "FAILED"
exit "$fail"
