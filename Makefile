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

# The ASan pass leaves out package.bats: the package holds a build of its
# own, and building it once is enough.
check: deps tproxy tproxy-asan tproxy-poll
	$(BATS) tests
	TPROXY=$(CURDIR)/tproxy-asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(BATS) $(filter-out tests/package.bats,$(wildcard tests/*.bats))
	TPROXY=$(CURDIR)/tproxy-poll $(BATS) $(POLL_SUITES)
	mandoc -Tlint -W warning man/tproxy.1
	shellcheck -S warning tests/*.sh tests/*.bash tests/bench/*.sh $(wildcard vethrelay.sh)
	shellcheck -S warning -s bash completion/tproxy.bash
	$(MAKE) fuzz FUZZ_SECONDS=$${FUZZ_SECONDS:-20}

# libFuzzer harnesses for the parsers of untrusted input
FUZZERS = build/fuzz/fuzz_addr build/fuzz/fuzz_sed build/fuzz/fuzz_hello \
	build/fuzz/fuzz_tlsdetect \
	build/fuzz/fuzz_proxy
FUZZ_SECONDS ?= 60
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE $(PKG_CFLAGS)

fuzz: $(FUZZERS)
	@for f in $(FUZZERS); do \
	    n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
	    echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=0 \
	        build/fuzz/corpus-$$n tests/fuzz/seeds-$$n 2>build/fuzz/$$n.log \
	        || { tail -n 40 build/fuzz/$$n.log; exit 1; }; \
	    grep -E '^(#[0-9]+ *DONE|Done)' build/fuzz/$$n.log | tail -n 1; \
	done

build/fuzz/%: tests/fuzz/%.c $(LIBSRC) $(HDR)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_FLAGS) -o $@ $< $(LIBSRC) $(PKG_LIBS)

bench: tproxy
	bash tests/bench/run.sh

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

.PHONY: all deps demo check fuzz bench install uninstall deb clean
