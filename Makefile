# tproxy - see README.md.  Every variable below can be overridden; the
# project's own flags are prepended to yours, never replace them.

PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
MANPREFIX ?= $(PREFIX)/share/man
DATADIR   ?= $(PREFIX)/share/tproxy
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR   ?=
CC        ?= cc
CFLAGS    ?= -O2 -g
CPPFLAGS  ?=
LDFLAGS   ?=
LDLIBS    ?=
WERROR    ?= -Werror
PKG_CONFIG ?= pkg-config
CLANG     ?= clang
BATS      ?= bats
# the loop's backend: epoll (Linux's default) or poll
POLLER    ?= epoll

PKGS      = libpcre2-8 openssl libcap
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null || echo -lpcre2-8 -lssl -lcrypto -lcap)

TP_CPPFLAGS = -D_GNU_SOURCE $(PKG_CFLAGS) $(CPPFLAGS)
TP_CFLAGS   = -std=c11 -Wall -Wextra $(WERROR) $(CFLAGS)

# every .c at the top and in taps/: a new filter is one file, no edit here
SRC  = $(sort $(wildcard *.c) $(wildcard taps/*.c))
HDR  = $(wildcard *.h)
# objects of each backend in their own directory; the stamp relinks tproxy
# when POLLER changes
ifeq ($(POLLER),poll)
OBJDIR = build/poll
else ifeq ($(POLLER),epoll)
OBJDIR = build
else
$(error POLLER must be epoll or poll)
endif
OBJ  = $(SRC:%.c=$(OBJDIR)/%.o)
POBJ = $(SRC:%.c=build/poll/%.o)
AOBJ = $(SRC:%.c=build/asan/%.o)
ASAN = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LIBSRC = $(filter-out tproxy.c,$(SRC))

all: tproxy

tproxy: $(OBJ) build/.poller-$(POLLER)
	$(CC) $(TP_CFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(PKG_LIBS) $(LDLIBS)

build/.poller-$(POLLER):
	@mkdir -p build
	@rm -f build/.poller-*
	@touch $@

build/%.o: %.c $(HDR)
	@mkdir -p $(@D)
	$(CC) $(TP_CPPFLAGS) $(TP_CFLAGS) -c -o $@ $<

# the poll() backend; `make check` runs these suites against it too
POLL_SUITES = tests/relay.bats tests/udp.bats tests/filters.bats \
	tests/transparent.bats
tproxy-poll: $(POBJ)
	$(CC) $(TP_CFLAGS) $(LDFLAGS) -o $@ $(POBJ) $(PKG_LIBS) $(LDLIBS)

build/poll/%.o: %.c $(HDR)
	@mkdir -p $(@D)
	$(CC) $(TP_CPPFLAGS) -DTPROXY_POLL $(TP_CFLAGS) -c -o $@ $<

# the same program under AddressSanitizer and UBSan, for the second test run
tproxy-asan: $(AOBJ)
	$(CC) $(TP_CFLAGS) $(ASAN) $(LDFLAGS) -o $@ $(AOBJ) $(PKG_LIBS) $(LDLIBS)

build/asan/%.o: %.c $(HDR)
	@mkdir -p $(@D)
	$(CC) $(TP_CPPFLAGS) $(TP_CFLAGS) -O1 $(ASAN) -c -o $@ $<

deps:
	@sh tests/deps.sh

demo: deps tproxy
	@bash tests/demo.sh

# The ASan pass leaves out package.bats (the package holds a build of its
# own, and building it once is enough) and vethrelay.bats (it tests the
# shell script; the TPROXY code it reaches runs under ASan in
# transparent.bats).
ASAN_SUITES = $(filter-out tests/package.bats tests/vethrelay.bats,$(wildcard tests/*.bats))

# The ASan pass runs beside the rest: the suites mostly wait on sockets and
# timers, so two passes at once take little longer than the longer one.
# Its output follows the rest's.  CHECK_SERIAL=1 runs it first, alone.
check: deps tproxy tproxy-asan tproxy-poll
	@rc=0; arc=0; apid=; \
	if [ "$(CHECK_SERIAL)" = 1 ]; then \
	    $(MAKE) -s check-asan || arc=$$?; \
	else \
	    echo "check: the ASan pass runs in the background, its output comes at the end"; \
	    $(MAKE) -s check-asan >build/check-asan.log 2>&1 & apid=$$!; \
	fi; \
	{ $(BATS) tests && \
	  TPROXY=$(CURDIR)/tproxy-poll $(BATS) $(POLL_SUITES) && \
	  mandoc -Tlint -W warning man/tproxy.1 && \
	  shellcheck -S warning tests/*.sh tests/*.bash tests/bench/*.sh $(wildcard vethrelay.sh) && \
	  shellcheck -S warning -s bash completion/tproxy.bash && \
	  $(MAKE) fuzz FUZZ_SECONDS=$${FUZZ_SECONDS:-20}; } || rc=$$?; \
	if [ -n "$$apid" ]; then \
	    wait $$apid || arc=$$?; \
	    echo "check: the ASan pass (exit status $$arc):"; cat build/check-asan.log; \
	fi; \
	echo "check: exit status $$rc, ASan pass $$arc"; \
	[ $$rc = 0 ] && [ $$arc = 0 ]

check-asan: tproxy-asan
	TPROXY=$(CURDIR)/tproxy-asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(BATS) $(ASAN_SUITES)

# libFuzzer harnesses for the parsers of untrusted input
FUZZERS = build/fuzz/fuzz_addr build/fuzz/fuzz_sed build/fuzz/fuzz_hello \
	build/fuzz/fuzz_proxy build/fuzz/fuzz_control build/fuzz/fuzz_socks \
	build/fuzz/fuzz_http build/fuzz/fuzz_tlsdetect
FUZZ_SECONDS ?= 60
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE $(PKG_CFLAGS)
FUZZ_OFLAGS = -g -O1 -fsanitize=fuzzer-no-link,address,undefined -D_GNU_SOURCE $(PKG_CFLAGS)

fuzz: $(FUZZERS)
	@for f in $(FUZZERS); do \
	    n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
	    echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=0 \
	        build/fuzz/corpus-$$n tests/fuzz/seeds-$$n 2>build/fuzz/$$n.log \
	        || { tail -n 40 build/fuzz/$$n.log; exit 1; }; \
	    grep -E '^(#[0-9]+ *DONE|Done)' build/fuzz/$$n.log | tail -n 1; \
	done

# the program's files are compiled once for all the harnesses
FOBJ = $(LIBSRC:%.c=build/fuzzobj/%.o)
build/fuzzobj/%.o: %.c $(HDR)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_OFLAGS) -c -o $@ $<

build/fuzz/%: tests/fuzz/%.c $(FOBJ) $(HDR)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_FLAGS) -o $@ $< $(FOBJ) $(PKG_LIBS)

bench: deps tproxy
	bash tests/bench/run.sh

# 10,000 connections held a minute, then a GiB each way through plain, log
# and UDP routes (a few minutes; not part of check)
soak: tproxy
	bash tests/soak.sh

# the unit template gets BINDIR written into it, so PREFIX=/usr/local works
install: tproxy
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANPREFIX)/man1 \
	    $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DATADIR)
	install -m 755 tproxy $(DESTDIR)$(BINDIR)/tproxy
	install -m 644 man/tproxy.1 $(DESTDIR)$(MANPREFIX)/man1/tproxy.1
	install -m 644 completion/tproxy.bash $(DESTDIR)$(BASHCOMPDIR)/tproxy
	sed 's|@BINDIR@|$(BINDIR)|g' systemd/tproxy@.service.in \
	    >$(DESTDIR)$(SYSTEMDUNITDIR)/tproxy@.service
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/tproxy@.service
	install -m 755 vethrelay.sh $(DESTDIR)$(DATADIR)/vethrelay.sh

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/tproxy $(DESTDIR)$(MANPREFIX)/man1/tproxy.1 \
	    $(DESTDIR)$(BASHCOMPDIR)/tproxy $(DESTDIR)$(SYSTEMDUNITDIR)/tproxy@.service \
	    $(DESTDIR)$(DATADIR)/vethrelay.sh
	rmdir $(DESTDIR)$(DATADIR) 2>/dev/null || true

# A Debian package, built by dpkg-buildpackage from a copy of this tree
# (without build products and .git), so the tree stays as it is; the .deb
# lands in DEBDIR.
DEBDIR ?= build/deb

deb:
	rm -rf $(DEBDIR)
	mkdir -p $(DEBDIR)/src
	tar -cf - --exclude=./.git --exclude=./build --exclude=./tproxy \
	    --exclude=./tproxy-asan . | tar -xf - -C $(DEBDIR)/src
	cd $(DEBDIR)/src && dpkg-buildpackage -us -uc -b
	@ls $(DEBDIR)/*.deb

clean:
	rm -rf build tproxy tproxy-asan tproxy-poll

.PHONY: all deps demo check check-asan fuzz bench soak install uninstall deb clean
