#!/bin/bash
# tests/demo.sh - `make demo`: run tproxy's main job on a built-in default.
# An echo route with a hexdump and a rewrite; one sample goes through it so
# the dump and the rewritten reply show on the terminal.
set -eu

err() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

top=$(cd "$(dirname "$0")/.." && pwd)
tp=$top/tproxy
[ -x "$tp" ] || err "build tproxy first (make)"
tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "\$ tproxy tcp-listen:0 echo hexdump 's/hello/HELLO/'"
"$tp" tcp-listen:0 echo hexdump 's/hello/HELLO/' >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do
	grep -q 'listening on' "$tmp/err" && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/err" >&2; err "tproxy did not start"; }
	sleep 0.05
done
cat "$tmp/err"
port=$(sed -n 's/.*listening on tcp .*:\([0-9]*\) -> .*/\1/p' "$tmp/err")
[ -n "$port" ] || err "no port in: $(cat "$tmp/err")"

echo
printf '$ printf '"'"'hello, proxy\\n'"'"' | nc -q1 127.0.0.1 %s     # the client\n' "$port"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'hello, proxy\n' >&3
reply=""
IFS= read -r -t 5 reply <&3 || true
exec 3>&-
echo "$reply"
sleep 0.2

echo
echo "--- what tproxy printed on stdout (the hexdump of the client's bytes):"
cat "$tmp/out"
[ "$reply" = "HELLO, proxy" ] || err "expected 'HELLO, proxy' back, got '$reply'"

cat <<MSG

The client sent 'hello, proxy'; the hexdump shows it as it arrived, and the
rewrite s/hello/HELLO/ changed it on the way back.  Try it yourself:

  ./tproxy tcp-listen:8080 echo hexdump 's/hello/HELLO/'      # terminal 1
  nc 127.0.0.1 8080                                           # terminal 2

or put it in front of a real server and watch the traffic:

  ./tproxy tcp-listen:8081 tcp:127.0.0.1:80 log 's|/api|/forbidden|g'
  curl http://127.0.0.1:8081/api

More in README.md and 'man ./man/tproxy.1'.
MSG
