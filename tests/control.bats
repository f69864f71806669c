#!/usr/bin/env bats
# tests/control.bats - the control socket (--control=PATH) as a user and a
# toxiproxy-style test script meet it (../shared/spec/cli.md, "Control
# socket and inspect"): stats and connections as JSON lines, killing
# connections, switching, adding and deleting filters at run time, inspect
# decided over the socket, the socket file's rules, bad and hostile
# clients, and SIGUSR1.

# shellcheck disable=SC2154 # $output, $stderr, $lines: set by bats' run
bats_require_minimum_version 1.5.0

load helper

FC=$TOOLS/filt_client.py
FS=$TOOLS/filt_server.py

# upstream NAME: an echo server logging what it receives to $T/NAME.log
upstream() {
	bg python3 "$FS" --echo --log "$T/$1.log" "$T/$1.port"
	wait_for "$T/$1.port" '^[0-9]+$' 10
	SPORT=$(cat "$T/$1.port")
}

# ctl CMD...: send the lines CMD... to the control socket; the reply on stdout
ctl() {
	printf '%s\n' "$@" | timeout 10 socat -t5 - "UNIX-CONNECT:$T/c.sock"
}

# has JQ-CONDITION: some JSON object in $output satisfies it
has() {
	printf '%s\n' "$output" | jq -s -e "any(.[]; $1)" >/dev/null
}

# wait_st PID: wait for PID, its exit status in ST
wait_st() {
	ST=0
	wait "$1" || ST=$?
}

# held_id: the id of the first held chunk (waits for one)
held_id() {
	local i id
	for ((i = 0; i < 100; i++)); do
		id=$(ctl 'show held' | jq -r 'select(.id) | .id' | head -n 1)
		[ -n "$id" ] && { echo "$id"; return 0; }
		sleep 0.05
	done
	return 1
}

@test "show stats counts what passed, per route and in total, then an empty line" {
	upstream up
	start_tproxy --control="$T/c.sock" tcp-listen:0 "tcp:127.0.0.1:$SPORT" + tcp-listen:0 echo
	run python3 "$FC" 127.0.0.1 "$PORT" 's:hello\n' 'u:hello\n'
	[ "$status" -eq 0 ]
	p2=$(echo "$PORTS" | sed -n 2p)
	run python3 "$FC" 127.0.0.1 "$p2" 's:0123456789' 'u:0123456789'
	[ "$status" -eq 0 ]
	sleep 0.2
	run ctl 'show stats'
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	[ -z "$(printf '%s' "$output" | tail -c 0)" ]
	[ "$(printf '%s\n' "$output" | jq -c 'select(.route == 1) | [.accepted, .active, .bytes_c2s, .bytes_s2c, .errors]')" = "[1,0,6,6,0]" ]
	[ "$(printf '%s\n' "$output" | jq -c 'select(.route == 2) | [.accepted, .bytes_c2s, .bytes_s2c, .target]')" = '[1,10,10,"echo"]' ]
	[ "$(printf '%s\n' "$output" | jq -c 'select(.route == "total") | [.accepted, .active, .bytes_c2s, .bytes_s2c]')" = "[2,0,16,16]" ]
	has '.route == 1 and (.listen | test("^tcp 127.0.0.1:[0-9]+$"))'
	# the reply ends with an empty line
	printf 'show stats\n' | socat -t5 - "UNIX-CONNECT:$T/c.sock" >"$T/raw"
	[ "$(tail -c 2 "$T/raw" | od -An -c | tr -d ' ')" = '\n\n' ]
}

@test "show stats counts a connection whose upstream refused it as an error" {
	dead=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	start_tproxy --control="$T/c.sock" tcp-listen:0 "tcp:127.0.0.1:$dead"
	run python3 "$FC" 127.0.0.1 "$PORT" 's:x' 'eof'
	sleep 0.2
	run ctl 'show stats'
	[ "$(printf '%s\n' "$output" | jq -c 'select(.route == 1) | [.accepted, .active, .errors]')" = "[1,0,1]" ]
	[ "$(printf '%s\n' "$output" | jq -c 'select(.route == "total") | .errors')" = 1 ]
}

@test "show conns lists open connections; kill conn resets one, the other goes on; kill all" {
	upstream up
	start_tproxy --control="$T/c.sock" tcp-listen:0 "tcp:127.0.0.1:$SPORT"
	python3 "$FC" 127.0.0.1 "$PORT" 's:one1' 'u:one1' 't:20' 'eof' >"$T/c1.out" 2>"$T/c1.err" &
	c1=$!
	python3 "$FC" 127.0.0.1 "$PORT" 's:two' 'u:two' "f:$T/go" 's:more' 'u:more' >"$T/c2.out" 2>"$T/c2.err" &
	c2=$!
	PIDS+=("$c1" "$c2")
	wait_for "$T/up.log" 'one1' && wait_for "$T/up.log" 'two'
	sleep 0.2
	run ctl 'show conns'
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | jq -s 'map(select(.conn)) | length')" -eq 2 ]
	has '.conn and .route == 1 and .state == "open" and .bytes_c2s == 4 and .bytes_s2c == 4 and .sni == null and (.src | test("^127.0.0.1:")) and .dst == "127.0.0.1:'"$SPORT"'" and .age_ms >= 0 and .idle_ms >= 0'
	id1=$(printf '%s\n' "$output" | jq -r 'select(.conn) | select(.bytes_c2s == 4) | .conn')
	run ctl "kill conn $id1"
	[ "$output" = '{"ok":true}' ]
	wait_st "$c1"
	[ "$ST" -eq 1 ]
	contains "reset" "$(cat "$T/c1.err")"
	touch "$T/go"
	wait_st "$c2"
	[ "$ST" -eq 0 ]
	[ "$(cat "$T/c2.out")" = "twomore" ]
	run ctl "kill conn $id1"
	[ "$(printf '%s\n' "$output" | jq -r .error)" = "no connection $id1" ]
	python3 "$FC" 127.0.0.1 "$PORT" 's:x' 'u:x' 't:20' 'eof' >/dev/null 2>"$T/c3.err" &
	c3=$!
	PIDS+=("$c3")
	wait_for "$T/up.log" 'x'
	run ctl 'kill all'
	[ "$output" = '{"ok":true}' ]
	wait_st "$c3"
	[ "$ST" -eq 1 ]
	run ctl 'show stats'
	[ "$(printf '%s\n' "$output" | jq 'select(.route == 1) | .active')" -eq 0 ]
}

@test "disable filter stops s/// on an open connection at its next chunk, held bytes first; enable brings it back" {
	upstream up
	start_tproxy --control="$T/c.sock" tcp-listen:0 "tcp:127.0.0.1:$SPORT" log 's/abc/X/g'
	bg python3 "$FC" 127.0.0.1 "$PORT" 's:1abc.' 'u:1X.' 's:2ab' "f:$T/go1" 's:c.' 'u:2abc.' "f:$T/go2" 's:3abc.' 'u:3X.'
	client=$BG_PID
	wait_for "$T/up.log" '1X\.'
	run ctl 'show filters'
	[ "$(printf '%s\n' "$output" | jq -c 'select(.route) | [.route, .index, .spec, .enabled]' | tr '\n' ' ')" = '[1,1,"log",true] [1,2,"s/abc/X/g",true] ' ]
	run ctl 'disable filter 1 2'
	[ "$output" = '{"ok":true}' ]
	run ctl 'show filters'
	[ "$(printf '%s\n' "$output" | jq -c 'select(.index == 2) | .enabled')" = false ]
	touch "$T/go1"
	wait_for "$T/up.log" '2abc\.'
	run ctl 'enable filter 1 2'
	[ "$output" = '{"ok":true}' ]
	touch "$T/go2"
	wait_st "$client"
	[ "$ST" -eq 0 ]
	[ "$(cat "$T/up.log")" = "1X.2abc.3X." ]
}

@test "a toxiproxy-style script switches reset on and off, and adds and deletes filters for new connections" {
	upstream up
	start_tproxy --control="$T/c.sock" tcp-listen:0 "tcp:127.0.0.1:$SPORT"
	run ctl 'add filter 1 reset'
	[ "$output" = '{"ok":true}' ]
	run python3 "$FC" 127.0.0.1 "$PORT" 's:a' 'u:a'
	[ "$status" -eq 1 ]
	run ctl 'disable filter 1 1'
	[ "$output" = '{"ok":true}' ]
	run python3 "$FC" 127.0.0.1 "$PORT" 's:b' 'u:b'
	[ "$status" -eq 0 ]
	run ctl 'enable filter 1 1'
	run python3 "$FC" 127.0.0.1 "$PORT" 's:c' 'u:c'
	[ "$status" -eq 1 ]
	run ctl 'del filter 1 1'
	[ "$output" = '{"ok":true}' ]
	run python3 "$FC" 127.0.0.1 "$PORT" 's:d' 'u:d'
	[ "$status" -eq 0 ]
	[ "$(ctl 'show filters' | grep -c route || true)" -eq 0 ]
}

@test "disabling delay lets the chunks it holds go on at once" {
	upstream up
	start_tproxy --control="$T/c.sock" tcp-listen:0 "tcp:127.0.0.1:$SPORT" delay:60000,dir=c2s
	bg python3 "$FC" 127.0.0.1 "$PORT" 't:20' 's:late1' 'w:0.1' 's:late2' 'u:late1late2'
	client=$BG_PID
	sleep 0.5
	[ ! -s "$T/up.log" ]
	[ "$(ctl 'disable filter 1 1')" = '{"ok":true}' ]
	wait_st "$client"
	[ "$ST" -eq 0 ]
	[ "$(cat "$T/up.log")" = "late1late2" ]
}

@test "add filter hexdump applies to connections accepted afterwards; an open one keeps its chain" {
	upstream up
	start_tproxy --control="$T/c.sock" tcp-listen:0 "tcp:127.0.0.1:$SPORT" 's/q/Q/g'
	bg python3 "$FC" 127.0.0.1 "$PORT" 's:q1' 'u:Q1' "f:$T/go" 's:q2' 'u:Q2'
	old=$BG_PID
	wait_for "$T/up.log" 'Q1'
	run ctl 'add filter 1 hexdump'
	[ "$output" = '{"ok":true}' ]
	run ctl 'del filter 1 1'
	[ "$output" = '{"ok":true}' ]
	run ctl 'show filters'
	[ "$(printf '%s\n' "$output" | jq -c 'select(.route) | [.index, .spec]')" = '[1,"hexdump"]' ]
	touch "$T/go"
	wait_st "$old"
	[ "$ST" -eq 0 ]
	# the old connection kept s/// (deleted since) and had no hexdump
	[ "$(cat "$T/up.log")" = "Q1Q2" ]
	[ ! -s "$T/tproxy.out" ]
	run python3 "$FC" 127.0.0.1 "$PORT" 's:new q' 'u:new q'
	[ "$status" -eq 0 ]
	wait_for "$T/tproxy.out" 'new q'
	contains "6e 65 77 20 71" "$(cat "$T/tproxy.out")"
}

@test "bad commands get an error and the control connection goes on" {
	start_tproxy --control="$T/c.sock" tcp-listen:0 echo log
	run ctl 'frobnicate' 'show stats' 'show nothing' 'kill conn x' 'disable filter 1 9' 'disable filter 7 1' 'add filter 1 nosuch:1' 'replace 5 zz' 'forward 99' 'help'
	[ "$status" -eq 0 ]
	errs=$(printf '%s\n' "$output" | jq -r 'select(.error) | .error')
	[ "$(echo "$errs" | wc -l)" -eq 8 ]
	matches "^unknown command 'frobnicate'" "$errs"
	matches "route 1 has no filter 9" "$errs"
	matches "no route 7" "$errs"
	matches "unknown filter 'nosuch'" "$errs"
	matches "no held chunk 99" "$errs"
	has '.route == "total"'
	has '.command == "show stats"'
	kill -0 "$TP_PID"
}

@test "a line over 64 KiB closes that control connection only" {
	start_tproxy --control="$T/c.sock" tcp-listen:0 echo
	run bash -c "{ head -c 70000 /dev/zero | tr '\\0' a; printf '\\nshow stats\\n'; sleep 1; } | timeout 10 socat -t5 - UNIX-CONNECT:$T/c.sock"
	lacks '"total"' "$output"
	run ctl 'show stats'
	contains '"route":"total"' "$output"
	# 60 KiB is still a line (an unknown command)
	run bash -c "{ head -c 60000 /dev/zero | tr '\\0' a; printf '\\nshow stats\\n'; } | timeout 10 socat -t5 - UNIX-CONNECT:$T/c.sock"
	contains '"error"' "$output"
	contains '"route":"total"' "$output"
}

@test "ten control clients at once are all served, and one that never reads stalls nothing" {
	upstream up
	start_tproxy --control="$T/c.sock" tcp-listen:0 "tcp:127.0.0.1:$SPORT"
	# a client that sends show stats for ever and never reads
	bg python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.setblocking(False)
t = time.monotonic()
while time.monotonic() - t < 20:
    try:
        s.send(b"show stats\nshow filters\nhelp\n" * 100)
    except BlockingIOError:
        time.sleep(0.05)
' "$T/c.sock"
	sleep 1
	for i in 1 2 3 4 5 6 7 8 9 10; do
		{ printf 'show stats\n'; sleep 0.5; } | timeout 10 socat -t5 - "UNIX-CONNECT:$T/c.sock" >"$T/r$i" &
	done
	wait_n=0
	for i in 1 2 3 4 5 6 7 8 9 10; do
		wait_for "$T/r$i" '"route":"total"' 10
		wait_n=$((wait_n + 1))
	done
	[ "$wait_n" -eq 10 ]
	run python3 "$FC" 127.0.0.1 "$PORT" 's:still here' 'u:still here'
	[ "$status" -eq 0 ]
	# its memory stays bounded: the process is not growing without end
	rss=$(awk '/VmRSS/ { print $2 }' "/proc/$TP_PID/status")
	[ "$rss" -lt 200000 ]
}

@test "the socket is 0600, a stale one is replaced, another kind of file is left alone, and it goes at exit" {
	# a stale socket: a file left by a process that is gone
	python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T/c.sock"
	[ -S "$T/c.sock" ]
	start_tproxy --control="$T/c.sock" tcp-listen:0 echo
	[ "$(stat -c %a "$T/c.sock")" = 600 ]
	contains '"route":"total"' "$(ctl 'show stats')"
	# a live one is not taken over
	run "$TPROXY" --control="$T/c.sock" tcp-listen:0 echo
	[ "$status" -eq 1 ]
	contains "in use" "$output"
	stop_tproxy
	[ "$TP_STATUS" -eq 0 ]
	[ ! -e "$T/c.sock" ]
	echo keep >"$T/file"
	run "$TPROXY" --control="$T/file" tcp-listen:0 echo
	[ "$status" -eq 1 ]
	contains "not a socket" "$output"
	[ "$(cat "$T/file")" = keep ]
	mkdir "$T/dir"
	run "$TPROXY" --control="$T/dir" tcp-listen:0 echo
	[ "$status" -eq 1 ]
	[ -d "$T/dir" ]
	run -2 "$TPROXY" --control= tcp-listen:0 echo
	contains "--control" "$output"
}

@test "with --user the socket belongs to that user" {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	id nobody >/dev/null 2>&1 || skip "no user nobody"
	chmod 755 "$T"
	start_tproxy --user=nobody --control="$T/c.sock" tcp-listen:0 echo
	[ "$(stat -c %U "$T/c.sock")" = nobody ]
	[ "$(stat -c %a "$T/c.sock")" = 600 ]
}

@test "SIGUSR1 prints the stats lines on stderr and tproxy goes on, with or without --control" {
	start_tproxy tcp-listen:0 echo
	run python3 "$FC" 127.0.0.1 "$PORT" 's:abcd' 'u:abcd'
	kill -USR1 "$TP_PID"
	wait_for "$T/tproxy.err" '"route":"total"'
	line=$(grep '"route":1' "$T/tproxy.err")
	[ "$(jq -c '[.accepted, .bytes_c2s, .bytes_s2c]' <<<"$line")" = "[1,4,4]" ]
	run python3 "$FC" 127.0.0.1 "$PORT" 's:more' 'u:more'
	[ "$status" -eq 0 ]
	stop_tproxy
	[ "$TP_STATUS" -eq 0 ]
}

@test "inspect over the control socket: show held, forward, replace, drop, answer" {
	upstream up
	start_tproxy --control="$T/c.sock" tcp-listen:0 "tcp:127.0.0.1:$SPORT" inspect,dir=c2s </dev/null
	bg python3 "$FC" 127.0.0.1 "$PORT" 't:20' 's:one' 'u:one' 's:two' 'u:TWO' 's:three' 'w:1' 's:four' 'u:ANSWER' 's:five' 'u:five'
	client=$BG_PID
	id=$(held_id)
	run ctl 'show held'
	[ "$(printf '%s\n' "$output" | jq -c 'select(.id) | [.dir, .len, .hex]')" = '["c2s",3,"6f6e65"]' ]
	has '.id and .conn >= 1'
	[ ! -s "$T/up.log" ]
	[ "$(ctl "forward $id")" = '{"ok":true}' ]
	wait_for "$T/up.log" 'one'
	id=$(held_id)
	[ "$(ctl "replace $id 54 57 4f")" = '{"ok":true}' ]
	wait_for "$T/up.log" 'TWO'
	id=$(held_id)
	[ "$(ctl "drop $id")" = '{"ok":true}' ]
	id=$(held_id)
	[ "$(ctl "answer $id $(printf ANSWER | od -An -tx1 | tr -d ' \n')")" = '{"ok":true}' ]
	id=$(held_id)
	[ "$(ctl "forward $id")" = '{"ok":true}' ]
	wait_st "$client"
	[ "$ST" -eq 0 ]
	[ "$(cat "$T/up.log")" = "oneTWOfive" ]
	[ "$(ctl "forward $id" | jq -r .error)" = "no held chunk $id" ]
}

@test "a held chunk stops only its own direction of its own connection; timeout= forwards it" {
	bg python3 "$FS" --greet 'hi>' --echo --log "$T/up.log" "$T/up.port"
	wait_for "$T/up.port" '^[0-9]+$' 10
	SPORT=$(cat "$T/up.port")
	start_tproxy --control="$T/c.sock" tcp-listen:0 "tcp:127.0.0.1:$SPORT" 'inspect:^held,timeout=2,dir=c2s' </dev/null
	bg python3 "$FC" 127.0.0.1 "$PORT" 't:20' 's:held' 'u:hi>' "f:$T/go" 's:after' 'u:heldafter'
	client=$BG_PID
	held_id >/dev/null
	# the other direction of the same connection goes on: the greeting
	[ "$(ctl 'show conns' | jq 'select(.conn) | .bytes_s2c' | sort -n | tail -n 1)" -eq 3 ]
	# another connection goes on, both ways
	run python3 "$FC" 127.0.0.1 "$PORT" 's:other' 'u:other'
	[ "$status" -eq 0 ]
	touch "$T/go"
	# the chunk behind it waits too, then both go on after the timeout
	wait_st "$client"
	[ "$ST" -eq 0 ]
	[ "$(cat "$T/up.log")" = "otherheldafter" ]
	[ "$(cat "$T/tproxy.out")" = "" ]
}

@test "behind a held chunk the sender is not read beyond the high-water mark" {
	upstream up
	start_tproxy --control="$T/c.sock" tcp-listen:0 "tcp:127.0.0.1:$SPORT" inspect,dir=c2s </dev/null
	bg python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"first")
s.settimeout(0.2)
block = b"x" * 65536
sent = 0
t = time.monotonic()
while time.monotonic() - t < 30 and sent < 8 << 20:
    try:
        sent += s.send(block)
    except socket.timeout:
        pass
time.sleep(30)
' "$PORT"
	held_id >/dev/null
	sleep 2
	read_bytes=$(ctl 'show conns' | jq 'select(.conn) | .bytes_c2s')
	# 8 MiB offered; what tproxy read is bounded (64 KiB mark, plus one read)
	[ "$read_bytes" -lt $((1024 * 1024)) ]
	[ ! -s "$T/up.log" ]
}

@test "disabling inspect lets what it holds go on" {
	upstream up
	start_tproxy --control="$T/c.sock" tcp-listen:0 "tcp:127.0.0.1:$SPORT" inspect </dev/null
	bg python3 "$FC" 127.0.0.1 "$PORT" 't:20' 's:kept' 'u:kept'
	client=$BG_PID
	held_id >/dev/null
	[ "$(ctl 'disable filter 1 1')" = '{"ok":true}' ]
	wait_st "$client"
	[ "$ST" -eq 0 ]
	[ -z "$(ctl 'show held')" ]
}

@test "inspect with neither a terminal nor --control is a usage error" {
	run -2 "$TPROXY" tcp-listen:0 echo inspect </dev/null
	contains "inspect" "$output"
	contains "--control" "$output"
	run -2 "$TPROXY" tcp-listen:0 echo 'inspect:(' </dev/null
	run -2 "$TPROXY" --control="$T/c.sock" tcp-listen:0 echo 'inspect,timeout=0' </dev/null
	contains "timeout" "$output"
	[ ! -e "$T/c.sock" ]
}
