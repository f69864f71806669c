#!/bin/sh
# tests/deps.sh - make sure what `make demo` and `make check` need is here.
# As root on Debian it installs what is missing with apt-get; otherwise it
# prints the exact command to run and fails.
set -eu

err() {
	printf 'deps: %s\n' "$*" >&2
	exit 1
}

# command -> Debian package
need_cmds="cc:build-essential make:make pkg-config:pkg-config clang:clang
bats:bats mandoc:mandoc shellcheck:shellcheck socat:socat nc:netcat-openbsd
python3:python3 jq:jq curl:curl ss:iproute2 ip:iproute2 nft:nftables
openssl:openssl dnsmasq:dnsmasq-base dig:dnsutils nginx:nginx-light
haproxy:haproxy tshark:tshark xxd:xxd tmux:tmux
microsocks:microsocks redis-server:redis-server"
# real clients for tests/clients.bats
need_cmds="$need_cmds wget:wget h2load:nghttp2-client git:git ssh:openssh-client
scp:openssh-client ssh-keygen:openssh-client redis-cli:redis-tools
testssl:testssl.sh"
# pkg-config module -> Debian package
need_libs="libpcre2-8:libpcre2-dev openssl:libssl-dev libcap:libcap-dev"
# the Debian package's build and tests/package.bats
need_cmds="$need_cmds dpkg-buildpackage:dpkg-dev dh:debhelper lintian:lintian
man:man-db systemd-analyze:systemd"
# make bench's peers that the tests do not use (socat and haproxy they do)
need_cmds="$need_cmds sslsplit:sslsplit redis-benchmark:redis-tools"

missing=""
for pair in $need_cmds; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
for pair in $need_libs; do
	pkg-config --exists "${pair%%:*}" 2>/dev/null || missing="$missing ${pair#*:}"
done
# bash-completion, which loads completion/tproxy.bash in an interactive bash
[ -f /usr/share/bash-completion/bash_completion ] ||
	missing="$missing bash-completion"
# sshd, outside a user's PATH, for tests/clients.bats
[ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
# dovecot's IMAP and POP3 servers, STARTTLS upstreams for autotls.bats
for p in imap pop3; do
	[ -x /usr/lib/dovecot/$p ] || missing="$missing dovecot-${p}d"
done
# libFuzzer and the sanitizer runtimes for clang
[ -n "$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ] ||
	missing="$missing libclang-rt-14-dev"

[ -z "$missing" ] && exit 0
missing=$(printf '%s\n' $missing | sort -u | tr '\n' ' ')
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "deps: installing $missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || err "apt-get update failed"
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
		err "apt-get install $missing failed"
	exit 0
fi
err "missing: $missing
run as root:  apt-get update && apt-get install -y $missing"
