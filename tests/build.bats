#!/usr/bin/env bats
# The build as a user meets it: the quick-start demo, install, and the
# overridable variables of the Makefile.

bats_require_minimum_version 1.5.0
load helper

@test "make demo shows the hexdump of the sample and the rewritten reply" {
	run -0 make -s -C "$TOP" demo
	[[ $output == *"listening on tcp 127.0.0.1:"* ]]
	[[ $output == *"length=13 from=0 to=12"* ]]
	[[ $output == *"68 65 6c 6c 6f 2c 20 70 72 6f 78 79 0a"* ]]
	[[ $output == *"HELLO, proxy"* ]]
	[[ $output == *"nc 127.0.0.1 8080"* ]]
}

@test "make install puts the binary and the man page under DESTDIR and PREFIX" {
	run -0 make -s -C "$TOP" install DESTDIR="$T/root" PREFIX=/opt/tp
	[ -x "$T/root/opt/tp/bin/tproxy" ]
	[ -f "$T/root/opt/tp/share/man/man1/tproxy.1" ]
	run -0 "$T/root/opt/tp/bin/tproxy" --version
	[[ $output =~ ^tproxy\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
	run -0 make -s -C "$TOP" uninstall DESTDIR="$T/root" PREFIX=/opt/tp
	[ ! -e "$T/root/opt/tp/bin/tproxy" ]
}

@test "a build with the user's own CFLAGS still uses warnings as errors and links" {
	cp -r "$TOP"/*.c "$TOP"/*.h "$TOP"/Makefile "$TOP"/taps "$TOP"/man "$T/"
	run -0 make -s -C "$T" CFLAGS='-O1 -Wall -Wextra -Werror' tproxy
	run -0 "$T/tproxy" --version
	run -0 grep -q -- '-Werror' <(make -n -C "$T" -B build/tproxy.o CFLAGS=-O0)
}
