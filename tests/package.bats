#!/usr/bin/env bats
# Packaging and shell integration: the Debian package (built once, from a
# copy of the tree, installed and removed), bash completion, and the
# systemd unit template.

bats_require_minimum_version 1.5.0
load helper

# the default of an interactive bash: completion splits words at : = and @
WORDBREAKS=$' \t\n"\'@><=;|&(:'

teardown_file() {
	# a package that a failed test left installed goes too
	if [ -e "$BATS_FILE_TMPDIR/installed" ]; then
		dpkg -r tproxy >/dev/null 2>&1 || true
	fi
}

# deb: build the package once for this file, from a copy of the tree, into
# $BATS_FILE_TMPDIR/deb; sets DEB to the .deb
deb() {
	local d=$BATS_FILE_TMPDIR/deb
	if ! ls "$d"/tproxy_*.deb >/dev/null 2>&1; then
		local t0=$SECONDS
		make -s -C "$TOP" deb DEBDIR="$d" >"$BATS_FILE_TMPDIR/deb.log" 2>&1 || {
			tail -n 40 "$BATS_FILE_TMPDIR/deb.log" >&2
			return 1
		}
		echo "# package built in $((SECONDS - t0)) s" >&3
	fi
	DEB=$(ls "$d"/tproxy_*.deb)
}

# comp LINE: complete LINE, with the cursor at its end, as bash would with
# the completion loaded; sets REPLY_WORDS to COMPREPLY sorted, one a line,
# and OPTS to the compopt options asked for
comp() {
	local COMP_LINE=$1 COMP_POINT=${#1} COMP_WORDBREAKS=$WORDBREAKS
	local -a COMP_WORDS
	local COMP_CWORD
	read -ra COMP_WORDS <<<"$1"
	[[ $1 == *' ' ]] && COMP_WORDS+=("")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	OPTS=""
	_tproxy "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}"
	REPLY_WORDS=$(printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort)
}

# compopt is a builtin only while bash runs a completion: record its options
compopt() {
	OPTS+=" $*"
}

# unit NAME BINDIR: the unit template as `make install` writes it, with
# BINDIR, in $T/units/tproxy@.service; prints the instance's path
unit() {
	mkdir -p "$T/units"
	sed "s|@BINDIR@|$2|g" "$TOP/systemd/tproxy@.service.in" >"$T/units/tproxy@.service"
	echo "$T/units/tproxy@$1.service"
}

@test "the package's version is the program's" {
	run -0 "$TPROXY" --version
	local v=${output#tproxy }
	run -0 dpkg-parsechangelog -l "$TOP/debian/changelog" -S Version
	[ "${output%%-*}" = "$v" ]
}

@test "make install puts the completion, the unit with BINDIR, and vethrelay.sh under DESTDIR" {
	run -0 make -s -C "$TOP" install DESTDIR="$T/root" PREFIX=/opt/tp
	[ -f "$T/root/opt/tp/share/bash-completion/completions/tproxy" ]
	[ -x "$T/root/opt/tp/share/tproxy/vethrelay.sh" ]
	run -0 cat "$T/root/opt/tp/lib/systemd/system/tproxy@.service"
	contains "exec /opt/tp/bin/tproxy" "$output"
	lacks "@BINDIR@" "$output"
	run -0 make -s -C "$TOP" uninstall DESTDIR="$T/root" PREFIX=/opt/tp
	run -0 find "$T/root" -type f
	[ -z "$output" ]
}

@test "completion: tcp-l completes to the tcp-listen: address type, without a space" {
	source "$TOP/completion/tproxy.bash"
	comp "$TPROXY tcp-l"
	[ "$REPLY_WORDS" = "tcp-listen:" ]
	contains nospace "$OPTS"
	comp "$TPROXY tcp-listen:80 "
	contains "tcp:" "$REPLY_WORDS"
	contains "orig" "$REPLY_WORDS"
	lacks "tcp-listen:" "$REPLY_WORDS"
}

@test "completion: after a comma, the address options (bash's word starts after the colon)" {
	source "$TOP/completion/tproxy.bash"
	comp "$TPROXY tcp-listen:80,"
	for o in reuseaddr backlog= tls cert= key= keylog= verify=; do
		grep -qxF -- "80,$o" <<<"$REPLY_WORDS"
	done
	comp "$TPROXY tcp-listen:80,tls,ke"
	[ "$REPLY_WORDS" = $'80,tls,key=\n80,tls,keylog=' ]
	comp "$TPROXY tcp-listen:80 tcp:example.org:443,tls,verify="
	[ "$REPLY_WORDS" = $'0\n1' ]
}

@test "completion: filter names after the target, and their keys after a comma" {
	source "$TOP/completion/tproxy.bash"
	comp "$TPROXY tcp-listen:80 echo hex"
	[ "$REPLY_WORDS" = hexdump ]
	comp "$TPROXY tcp-listen:80 echo log hexdump "
	for f in log hexdump s/ drop answer: delay: +; do
		grep -qxF -- "$f" <<<"$REPLY_WORDS"
	done
	comp "$TPROXY tcp-listen:80 echo delay:100,"
	[ "$REPLY_WORDS" = "$(printf '100,%s\n' dir= dport= dst= jitter= sni= src= | LC_ALL=C sort)" ]
	comp "$TPROXY tcp-listen:80 echo log,dir="
	[ "$REPLY_WORDS" = $'both\nc2s\ns2c' ]
	# a + starts the next route: a listener again
	comp "$TPROXY tcp-listen:80 echo log + udp-l"
	[ "$REPLY_WORDS" = "udp-listen:" ]
}

@test "completion: long options, and file names for --ca-cert, cert=, keylog= and answer:@" {
	source "$TOP/completion/tproxy.bash"
	comp "$TPROXY --ca-"
	[ "$REPLY_WORDS" = $'--ca-cert=\n--ca-key=' ]
	contains nospace "$OPTS"
	mkdir -p "$T/pki/sub"
	touch "$T/pki/ca.pem" "$T/pki/ca.key"
	comp "$TPROXY --ca-cert=$T/pki/ca."
	[ "$REPLY_WORDS" = "$(printf '%s\n' "$T/pki/ca.key" "$T/pki/ca.pem")" ]
	contains filenames "$OPTS"
	comp "$TPROXY --ca-key $T/pki/s"
	[ "$REPLY_WORDS" = "$T/pki/sub" ]
	comp "$TPROXY --json tcp-listen:443,tls,cert=$T/pki/ca.p"
	[ "$REPLY_WORDS" = "$T/pki/ca.pem" ]
	comp "$TPROXY tcp-listen:443,tls,keylog=$T/pki/s"
	[ "$REPLY_WORDS" = "$T/pki/sub" ]
	# @ is a word break that readline keeps in the word
	comp "$TPROXY tcp-listen:80 echo answer:@$T/pki/ca.k"
	[ "$REPLY_WORDS" = "@$T/pki/ca.key" ]
}

@test "completion: without a tproxy to ask, the built-in word lists complete" {
	source "$TOP/completion/tproxy.bash"
	comp "/nonexistent/tproxy tcp-l"
	[ "$REPLY_WORDS" = "tcp-listen:" ]
	comp "/nonexistent/tproxy tcp-listen:80 echo hex"
	[ "$REPLY_WORDS" = hexdump ]
	comp "/nonexistent/tproxy --ca-"
	[ "$REPLY_WORDS" = $'--ca-cert=\n--ca-key=' ]
}

@test "completion: a word that tproxy --help gains completes without an edit here" {
	# the help of a later tproxy: an option, an address, an address option
	# with choices, a filter taking a file
	"$TPROXY" --help | sed \
		-e 's/^      --json /      --pid-file=FILE\n&/' \
		-e 's/^TARGET:  /&sctp:HOST:PORT   /' \
		-e 's/verify=0|1\./verify=0|1, proxy-protocol=v1|v2./' \
		-e 's/^FILTER:$/&\n         snoop:FILE[,snaplen=N]/' >"$T/help"
	grep -q 'snoop:FILE' "$T/help"
	mkdir -p "$T/bin" "$T/cap"
	printf '#!/bin/sh\ncat "%s"\n' "$T/help" >"$T/bin/tproxy"
	chmod +x "$T/bin/tproxy"
	touch "$T/cap/one.pcap"
	source "$TOP/completion/tproxy.bash"
	comp "$T/bin/tproxy --pid"
	[ "$REPLY_WORDS" = --pid-file= ]
	comp "$T/bin/tproxy tcp-listen:80 sc"
	[ "$REPLY_WORDS" = sctp: ]
	comp "$T/bin/tproxy tcp-listen:80 tcp:h:1,proxy-protocol="
	[ "$REPLY_WORDS" = $'v1\nv2' ]
	comp "$T/bin/tproxy tcp-listen:80 echo sn"
	[ "$REPLY_WORDS" = snoop: ]
	comp "$T/bin/tproxy tcp-listen:80 echo snoop:$T/cap/o"
	[ "$REPLY_WORDS" = "$T/cap/one.pcap" ]
	comp "$T/bin/tproxy tcp-listen:80 echo snoop:x,s"
	[ "$REPLY_WORDS" = $'x,snaplen=\nx,sni=\nx,src=' ]
}

@test "completion: in an interactive bash, TAB completes after a colon, a comma, an = and an @" {
	mkdir -p "$T/bin" "$T/pki"
	ln -s "$TPROXY" "$T/bin/tproxy"
	touch "$T/pki/ca.pem"
	# type a line and TAB in a bash on a terminal, then print the line's words
	run -0 timeout 20 python3 - "$TOP/completion/tproxy.bash" "$T/bin" \
		"tproxy tcp-l" "80,reusea" "echo log,dir=s2" "answer:@$T/pki/ca.p" <<'EOF'
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.environ["INPUTRC"] = "/dev/null"
    os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])
def read(until, secs=5):
    out, end = b"", time.time() + secs
    while until not in out and time.time() < end:
        if select.select([fd], [], [], 0.05)[0]:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    return out
os.write(fd, b"unset HISTFILE; PS1='$ '; source %s; PATH=%s:$PATH; w() { printf '<%%s>' \"$@\"; echo E\"\"ND; }; echo re\"\"ady\n"
         % (sys.argv[1].encode(), sys.argv[2].encode()))
read(b"ready")
time.sleep(0.2)
for keys in sys.argv[3:]:
    os.write(fd, keys.encode() + b"\t")
    time.sleep(0.3)
os.write(fd, b"\x01w \n")
sys.stdout.write(read(b"END").decode(errors="replace"))
os.write(fd, b"exit\n")
read(b"exit")
os.waitpid(pid, 0)
EOF
	contains "<tproxy><tcp-listen:80,reuseaddr><echo><log,dir=s2c><answer:@$T/pki/ca.pem>" "$output"
}

@test "the unit passes each line of its .args file as one argument, skipping comments and blank lines" {
	mkdir -p "$T/bin"
	printf '#!/bin/sh\nprintf "<%%s>" "$@"\n' >"$T/bin/tproxy"
	chmod +x "$T/bin/tproxy"
	printf '%s\n' '# a gateway' 'tcp-tproxy:8080' '' 'orig,spoof' \
		"answer:HTTP/1.0 403 Forbidden\\r\\n\\r\\n,match=^DELETE" \
		"s|'a b'|\"\$x\"|g" >"$T/gw.args"
	unit gw "$T/bin" >/dev/null
	run -0 grep '^ExecStart=' "$T/units/tproxy@.service"
	# systemd's quoting: /bin/sh -c '<script>' /etc/tproxy/%i.args, $$ for $
	local script=${output#*-c \'}
	script=${script%\' *}
	script=${script//\$\$/\$}
	run -0 sh -c "$script" "$T/gw.args"
	[ "$output" = "<tcp-tproxy:8080><orig,spoof><answer:HTTP/1.0 403 Forbidden\\r\\n\\r\\n,match=^DELETE><s|'a b'|\"\$x\"|g>" ]
	# no .args file: exit status 2, which the unit does not restart on
	run -2 sh -c "$script" "$T/none.args"
}

@test "systemd-analyze verify finds nothing to say about the unit" {
	local u
	u=$(unit gw "$(dirname "$TPROXY")")
	# systemd-analyze needs no running systemd, but can fail in a container
	# without /proc or cgroups: skip then, and say why
	printf '[Service]\nExecStart=/bin/true\n' >"$T/units/probe.service"
	if ! systemd-analyze verify --man=no "$T/units/probe.service" >"$T/probe.out" 2>&1; then
		skip "systemd-analyze cannot run here: $(head -n 3 "$T/probe.out")"
	fi
	# the man page is not installed from the tree: the package test checks it
	run -0 systemd-analyze verify --man=no "$u"
	[ -z "$output" ]
}

@test "the package builds, passes lintian, installs, runs a route, and goes away with dpkg -r" {
	[ "$(id -u)" = 0 ] || skip "needs root for dpkg -i"
	if dpkg -s tproxy >/dev/null 2>&1; then
		skip "a tproxy package is installed already: left alone"
	fi
	local before=""
	[ -d "$TOP/.git" ] && before=$(git -C "$TOP" status --porcelain)
	deb
	# building from a copy leaves the tree as it was
	[ ! -d "$TOP/.git" ] || [ "$(git -C "$TOP" status --porcelain)" = "$before" ]
	run -0 dpkg-deb -c "$DEB"
	contains ./usr/bin/tproxy "$output"
	contains ./usr/share/man/man1/tproxy.1.gz "$output"
	contains ./usr/share/bash-completion/completions/tproxy "$output"
	contains ./lib/systemd/system/tproxy@.service "$output"
	contains ./usr/share/tproxy/vethrelay.sh "$output"
	# informational and pedantic tags too: the two that are not real
	# (ip-rule's "iif") are overridden in debian/tproxy.lintian-overrides
	run -0 lintian -I --pedantic --fail-on error,warning,info,pedantic "${DEB%.deb}.changes"
	lacks "E: " "$output"
	lacks "W: " "$output"
	lacks "I: " "$output"
	lacks "P: " "$output"

	touch "$BATS_FILE_TMPDIR/installed"
	run -0 dpkg -i "$DEB"
	run -0 /usr/bin/tproxy --version
	[ "$output" = "tproxy $(dpkg-query -W -f '${Version}' tproxy)" ]
	run -0 man -w tproxy
	[ "$output" = /usr/share/man/man1/tproxy.1.gz ]
	run -0 systemd-analyze verify /lib/systemd/system/tproxy@gw.service
	[ -z "$output" ]
	TPROXY=/usr/bin/tproxy start_tproxy tcp-listen:0 echo
	run -0 timeout 10 socat -t 5 - TCP:127.0.0.1:"$PORT" <<<"through the package"
	[ "$output" = "through the package" ]
	stop_tproxy
	[ "$TP_STATUS" = 0 ]

	run -0 dpkg -r tproxy
	rm -f "$BATS_FILE_TMPDIR/installed"
	local f
	for f in /usr/bin/tproxy /usr/share/man/man1/tproxy.1.gz \
		/usr/share/bash-completion/completions/tproxy \
		/lib/systemd/system/tproxy@.service /usr/share/tproxy; do
		[ ! -e "$f" ] || { echo "left behind: $f" >&2; return 1; }
	done
}
