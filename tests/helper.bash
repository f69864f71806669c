# tests/helper.bash - loaded by every bats suite (load helper).
#
# TPROXY names the binary under test (default: ./tproxy at the top of the
# tree; `make check` runs the suites a second time with the ASan+UBSan build).
# Every process a test starts is recorded and killed in teardown.

# Variables set here are read by the suites that load this file.
# shellcheck disable=SC2034
TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
TPROXY=${TPROXY:-$TOP/tproxy}
TOOLS=$TOP/tests/tools
export TPROXY TOP TOOLS

# The test tools use only Python's standard library, and tests/deps.sh
# installs Debian's python3.  Use that one even when a version manager's
# shim comes first in PATH: a shim costs about a second per start, and the
# suites start a few hundred Python tools.
if [ -x /usr/bin/python3 ] && [ "$(command -v python3)" != /usr/bin/python3 ]; then
	mkdir -p "$BATS_RUN_TMPDIR/bin"
	ln -sf /usr/bin/python3 "$BATS_RUN_TMPDIR/bin/python3"
	PATH=$BATS_RUN_TMPDIR/bin:$PATH
fi

# pids to kill in teardown
PIDS=()

setup() {
	T=$BATS_TEST_TMPDIR
	PIDS=()
}

teardown() {
	local p
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait_gone "$p" 3 || kill -KILL "$p" 2>/dev/null || true
	done
	# sanitizer reports from the ASan build fail the test that caused them
	if [ -s "$T/tproxy.err" ] && grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T/tproxy.err"; then
		echo "sanitizer report in tproxy stderr:" >&2
		cat "$T/tproxy.err" >&2
		return 1
	fi
}

# wait_gone PID SECONDS: 0 once PID has exited
wait_gone() {
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}

# bg CMD...: run CMD in the background, recorded for teardown; sets BG_PID
bg() {
	"$@" &
	BG_PID=$!
	PIDS+=("$BG_PID")
}

# start_tproxy ARGS...: start tproxy with stdout in $T/tproxy.out (or in
# $TP_STDOUT when set) and stderr in $T/tproxy.err, wait until every route
# listens.  Sets TP_PID, and PORT (the
# first route's port), PORTS (all of them).  Fails if tproxy exits.
start_tproxy() {
	local routes=1 a i n
	for a in "$@"; do [ "$a" = + ] && routes=$((routes + 1)); done
	"$TPROXY" "$@" >"${TP_STDOUT:-$T/tproxy.out}" 2>"$T/tproxy.err" &
	TP_PID=$!
	PIDS+=("$TP_PID")
	for ((i = 0; i < 200; i++)); do
		n=$(grep -c '^tproxy: listening on' "$T/tproxy.err" 2>/dev/null || true)
		if [ "${n:-0}" -ge "$routes" ]; then
			PORTS=$(sed -n 's/^tproxy: listening on [a-z]* .*:\([0-9]*\) -> .*/\1/p' "$T/tproxy.err")
			PORT=$(echo "$PORTS" | head -n 1)
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

# stop_tproxy: SIGTERM, wait, and set TP_STATUS to the exit status
stop_tproxy() {
	kill -TERM "$TP_PID"
	TP_STATUS=0
	wait "$TP_PID" || TP_STATUS=$?
}

# wait_for FILE PATTERN [SECONDS]: wait until FILE has a line matching PATTERN
wait_for() {
	local i
	for ((i = 0; i < ${3:-5} * 20; i++)); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "timed out waiting for /$2/ in $1:" >&2
	cat "$1" >&2 2>/dev/null
	return 1
}

# fd_count PID: open descriptors of PID
fd_count() {
	ls "/proc/$1/fd" | wc -l
}

# contains TEXT STRING: STRING contains the fixed string TEXT
contains() {
	[[ $2 == *"$1"* ]] && return 0
	printf 'expected to contain: %s\n--- got:\n%s\n---\n' "$1" "$2" >&2
	return 1
}

# matches REGEX STRING: some line of STRING matches the extended REGEX
matches() {
	grep -qE -- "$1" <<<"$2" && return 0
	printf 'expected a line matching: %s\n--- got:\n%s\n---\n' "$1" "$2" >&2
	return 1
}

# lacks TEXT STRING: STRING does not contain the fixed string TEXT
lacks() {
	[[ $2 != *"$1"* ]] && return 0
	printf 'expected not to contain: %s\n--- got:\n%s\n---\n' "$1" "$2" >&2
	return 1
}
