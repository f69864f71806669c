#!/usr/bin/env bats
# tests/inspect.bats - the inspect filter at a real terminal (tmux drives
# it): each held chunk shown with a prompt on the terminal, never on
# stdout; one key decides it (f d e a F); the editor (an EDITOR script
# here) edits raw text or the hexdump; the terminal's mode comes back at
# exit and on SIGINT (../shared/spec/cli.md, "Control socket and inspect").

# shellcheck disable=SC2154 # $output, $stderr, $lines: set by bats' run
bats_require_minimum_version 1.5.0

load helper

FC=$TOOLS/filt_client.py
FS=$TOOLS/filt_server.py

eval "helper_$(declare -f teardown)"
teardown() {
	local rc=0
	helper_teardown || rc=$?
	tmux -L "$TM" kill-server 2>/dev/null || true
	return "$rc"
}

setup() {
	T=$BATS_TEST_TMPDIR
	PIDS=()
	TM=tproxy-inspect-$$-$BATS_TEST_NUMBER
	command -v tmux >/dev/null || skip "tmux is not installed (tests/deps.sh)"
	cat >"$T/ed.sh" <<'ED'
#!/bin/sh
# the editor: upper-cases hello, ping becomes pong, the first byte of a
# hexdump 00 becomes ff
sed -i -e 's/hello/HELLO/' -e 's/ping/pong/' -e 's/^0000  00 01/0000  ff 01/' "$1"
ED
	chmod +x "$T/ed.sh"
}

upstream() {
	bg python3 "$FS" --echo --log "$T/up.log" "$T/up.port"
	wait_for "$T/up.port" '^[0-9]+$' 10
	SPORT=$(cat "$T/up.port")
}

# term_tproxy ARGS...: tproxy in a tmux pane (its terminal on stdin),
# stdout to $T/tproxy.out; after it exits the pane records its status and
# the terminal's mode.  Sets PORT.
term_tproxy() {
	local q="" a
	for a in "$@"; do q="$q '$a'"; done
	tmux -L "$TM" new-session -d -s tp -x 160 -y 50 \
	    "cd '$T'; VISUAL= EDITOR='$T/ed.sh' TMPDIR='$T' sh -c 'echo \$\$ >tp.pid; exec \"\$@\"' sh '$TPROXY' $q >'$T/tproxy.out' 2>'$T/tproxy.err'; echo \$? >'$T/status'; stty -a >'$T/stty'; sleep 60"
	wait_for "$T/tproxy.err" '^tproxy: listening on' 10
	PORT=$(sed -n 's/^tproxy: listening on [a-z]* .*:\([0-9]*\) -> .*/\1/p' "$T/tproxy.err" | head -n 1)
	TP_PID=$(cat "$T/tp.pid")
	PIDS+=("$TP_PID")
}

screen() {
	tmux -L "$TM" capture-pane -p -t tp -S -200
}

# wait_screen REGEX: until the pane shows a line matching REGEX
wait_screen() {
	local i
	for ((i = 0; i < 200; i++)); do
		screen | grep -qE -- "$1" && return 0
		sleep 0.05
	done
	echo "timed out waiting for /$1/ on the terminal:" >&2
	screen >&2
	return 1
}

key() {
	tmux -L "$TM" send-keys -t tp -l "$1"
}

@test "f forwards and d drops a held chunk; the prompt is on the terminal, never on stdout" {
	upstream
	term_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT" inspect,dir=c2s hexdump
	bg python3 "$FC" 127.0.0.1 "$PORT" 't:20' 's:one' 'u:one' 'w:0.3' 's:two' 'w:0.3' 's:three' 'u:three'
	client=$BG_PID
	wait_screen 'inspect #1: conn 1 c2s 3 bytes'
	screen | grep -q '6f 6e 65'
	wait_screen '\[f\]orward \[d\]rop \[e\]dit \[a\]nswer \[F\]orward all'
	[ ! -s "$T/up.log" ]
	key f
	wait_for "$T/up.log" 'one'
	wait_screen 'inspect #2: '
	key d
	wait_screen 'inspect #3: '
	key f
	wait "$client"
	[ "$(cat "$T/up.log")" = "onethree" ]
	# observations (the hexdump) went to stdout, the prompt did not
	wait_for "$T/tproxy.out" 'one'
	lacks "[f]orward" "$(cat "$T/tproxy.out")"
	lacks "inspect #" "$(cat "$T/tproxy.out")"
}

@test "e edits a text chunk raw and forwards it; a sends the edited bytes back instead" {
	upstream
	term_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT" inspect,dir=c2s
	bg python3 "$FC" 127.0.0.1 "$PORT" 't:20' 's:say hello\r\n' 'u:say HELLO\r\n' 's:ping' 'u:pong' 's:end' 'u:end'
	client=$BG_PID
	wait_screen 'inspect #1: '
	key e
	wait_for "$T/up.log" 'say HELLO'
	wait_screen 'inspect #2: '
	key a
	wait_screen 'inspect #3: '
	key f
	wait "$client"
	[ "$(cat "$T/up.log")" = "$(printf 'say HELLO\r\nend')" ]
}

@test "e edits a binary chunk as a hexdump whose hex columns are read back" {
	upstream
	term_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT" inspect,dir=c2s
	bg python3 "$FC" 127.0.0.1 "$PORT" 't:20' 's:\x00\x01bin\x02' 'n:5'
	client=$BG_PID
	wait_screen 'inspect #1: '
	key e
	wait "$client"
	[ "$(od -An -tx1 "$T/up.log" | tr -d ' \n')" = "ff0162696e02" ]
}

@test "F forwards this and every later chunk of the connection; another connection is still held" {
	upstream
	term_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT" inspect
	bg python3 "$FC" 127.0.0.1 "$PORT" 't:20' 's:a1' 'u:a1' 's:a2' 'u:a2' 's:a3' 'u:a3'
	client=$BG_PID
	wait_screen 'inspect #1: '
	key F
	wait "$client"
	[ "$(cat "$T/up.log")" = "a1a2a3" ]
	bg python3 "$FC" 127.0.0.1 "$PORT" 't:20' 's:b1' 'u:b1'
	client=$BG_PID
	wait_screen 'conn 2 c2s 2 bytes'
	[ "$(cat "$T/up.log")" = "a1a2a3" ]
	key f
	wait_screen 'conn 2 s2c 2 bytes'
	key f
	wait "$client"
}

@test "the terminal's mode comes back at exit, on SIGTERM and on SIGINT" {
	upstream
	term_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT" inspect
	bg python3 "$FC" 127.0.0.1 "$PORT" 't:20' 's:x' 'w:5'
	wait_screen 'inspect #1: '
	tmux -L "$TM" send-keys -t tp C-c
	wait_for "$T/status" '^[0-9]+$' 10
	[ "$(cat "$T/status")" -eq 0 ]
	grep -qw icanon "$T/stty"
	grep -qw echo "$T/stty"
	tmux -L "$TM" kill-server
	# a server of its own: a new session on the socket of one still
	# shutting down fails ("server exited unexpectedly")
	TM=$TM-2
	rm -f "$T/status" "$T/stty" "$T/tproxy.err" "$T/tp.pid"
	term_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT" inspect
	bg python3 "$FC" 127.0.0.1 "$PORT" 't:20' 's:y' 'w:5'
	wait_screen 'inspect #1: '
	kill -TERM "$TP_PID"
	wait_for "$T/status" '^[0-9]+$' 10
	[ "$(cat "$T/status")" -eq 0 ]
	grep -qw icanon "$T/stty"
	grep -qw echo "$T/stty"
}

@test "with a terminal and --control, a chunk decided over the socket or by timeout= leaves the prompt" {
	upstream
	term_tproxy --control="$T/c.sock" tcp-listen:0 "tcp:127.0.0.1:$SPORT" inspect,dir=c2s,timeout=1
	bg python3 "$FC" 127.0.0.1 "$PORT" 't:20' 's:first' 'u:FIRST' 's:second' 'u:second'
	client=$BG_PID
	wait_screen 'inspect #1: '
	[ "$(printf 'replace 1 4649525354\n' | timeout 10 socat -t5 - "UNIX-CONNECT:$T/c.sock")" = '{"ok":true}' ]
	wait_screen 'decided without a key'
	wait_screen 'inspect #2: '
	# nobody answers #2: timeout=1 lets it go
	wait "$client"
	[ "$(cat "$T/up.log")" = "FIRSTsecond" ]
	[ "$(screen | grep -c 'decided without a key')" -eq 2 ]
}

@test "while a person edits, other connections go on" {
	upstream
	cat >"$T/slow.sh" <<'ED'
#!/bin/sh
# an editor that takes its time: until the test says go
while [ ! -e "${0%/*}/go" ]; do sleep 0.05; done
sed -i 's/slow/SLOW/' "$1"
ED
	chmod +x "$T/slow.sh"
	cp "$T/slow.sh" "$T/ed.sh"
	term_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT" 'inspect:^slow,dir=c2s'
	bg python3 "$FC" 127.0.0.1 "$PORT" 't:20' 's:slow' 'u:SLOW'
	client=$BG_PID
	wait_screen 'inspect #1: '
	key e
	sleep 0.3
	run python3 "$FC" 127.0.0.1 "$PORT" 's:fast' 'u:fast'
	[ "$status" -eq 0 ]
	touch "$T/go"
	wait "$client"
	[ "$(cat "$T/up.log")" = "fastSLOW" ]
}

@test "SIGTERM while the editor runs ends both and gives the terminal back" {
	upstream
	printf '#!/bin/sh\nexec sleep 60\n' >"$T/ed.sh"
	term_tproxy tcp-listen:0 "tcp:127.0.0.1:$SPORT" inspect
	bg python3 "$FC" 127.0.0.1 "$PORT" 't:20' 's:z' 'w:5'
	wait_screen 'inspect #1: '
	key e
	sleep 0.3
	kill -TERM "$TP_PID"
	wait_for "$T/status" '^[0-9]+$' 10
	[ "$(cat "$T/status")" -eq 0 ]
	grep -qw icanon "$T/stty"
	# the file the editor had is gone
	[ -z "$(ls "$T"/tproxy-inspect-* 2>/dev/null)" ]
}
