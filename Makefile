# warden - a policy-driven compliance gateway for LLM API traffic.
# `make run` and `make test` are the two commands; see README.md.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
PKGS    := libevent libevent_pthreads libcurl openssl yaml-0.1 jansson \
           tss2-esys tss2-tctildr tss2-mu tss2-rc hiredis libhs

# pkg-config is asked when a recipe first needs its answer, never while
# the Makefile is read: on a fresh machine the packages it describes are
# installed by `deps`, which the top-level targets (run, test, bench, soak,
# fuzz) run before a sub-make builds anything.  pkg_once NAME,ARGS asks
# once and keeps the answer in NAME; a package still missing then stops
# the build with one line instead of hundreds of undefined references.
pkg_ask  = $(shell pkg-config $(1) 2>/dev/null || echo PKG-CONFIG-FAILED)
pkg_ok   = $(if $(filter PKG-CONFIG-FAILED,$(1)),$(error pkg-config $(2) \
           failed: a build dependency is missing; run `make deps` \
           (scripts/deps.sh)),$(1))
pkg_once = $(eval $(1) := $(call pkg_ok,$(call pkg_ask,$(2)),$(2)))$($(1))

PKG_CFLAGS = $(call pkg_once,PKG_CFLAGS,--cflags $(PKGS))
PKG_LIBS   = $(call pkg_once,PKG_LIBS,--libs $(PKGS))
CHECK_LIBS = $(call pkg_once,CHECK_LIBS,--libs check)
MOCK_LIBS  = $(call pkg_once,MOCK_LIBS,--libs libevent libevent_pthreads jansson) -lpthread
SOAK_LIBS  = $(call pkg_once,SOAK_LIBS,--libs libcurl)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wvla -Wno-format-nonliteral
CFLAGS   = -std=c17 -g $(OPT) $(WARN) -D_GNU_SOURCE -I. $(PKG_CFLAGS) \
           -fstack-protector-strong $(SAN) $(EXTRA_CFLAGS)
LDFLAGS  = $(SAN) $(EXTRA_LDFLAGS)
LDLIBS   = $(PKG_LIBS) -lpthread

# Everything but main() goes into one archive that tests link too.
LIB_SRC := $(wildcard common/*.c policy/*.c secrets/*.c audit/*.c detect/*.c) \
           $(filter-out gateway/main.c,$(wildcard gateway/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
HDRS    := $(wildcard */*.h tests/*/*.h)

UNIT_SRC  := $(wildcard tests/unit/*.c)
INTEG_SRC := $(wildcard tests/integration/*.c)
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)

# warden refuses to serve as root unless told to; tests, the demo and the
# benchmark run as root on CI machines and say so here.
export WARDEN_ALLOW_ROOT = 1

# Sub-makes print no "Entering/Leaving directory": a test run ends with
# the test runners' own summary lines.
MAKEFLAGS += --no-print-directory

.PHONY: all deps run test test-unit test-integration test-fuzz asan \
        bench fuzz clean node-deps swtpm-start swtpm-stop soak \
        install uninstall test-dist

all: $(BUILD)/warden $(BUILD)/mock_provider $(BUILD)/unit_tests \
     $(BUILD)/integration_tests $(FUZZ_BIN) $(BUILD)/mock_cloud

deps:
	@sh scripts/deps.sh

$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libwarden.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/warden: $(BUILD)/gateway/main.o $(BUILD)/libwarden.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/mock_provider: tests/mock/mock_provider.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(MOCK_LIBS)

# The TLS cloud mock verifies SigV4 with warden's own signer (held to
# AWS's published vectors by the unit tests) over the request it received.
$(BUILD)/mock_cloud: $(BUILD)/tests/mock/mock_cloud.o $(BUILD)/libwarden.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -levent_openssl

$(BUILD)/unit_tests: $(UNIT_SRC:%.c=$(BUILD)/%.o) $(BUILD)/libwarden.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/integration_tests: $(INTEG_SRC:%.c=$(BUILD)/%.o) $(BUILD)/libwarden.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

# Fuzz targets, built for corpus replay with the ordinary compiler; `make
# fuzz` builds the same sources with libFuzzer.
$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/replay.o $(BUILD)/libwarden.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench_audit: $(BUILD)/tests/bench/bench_audit.o $(BUILD)/libwarden.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench_decide: $(BUILD)/tests/bench/bench_decide.o $(BUILD)/libwarden.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench_detect: $(BUILD)/tests/bench/bench_detect.o $(BUILD)/libwarden.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench_ttfb: tests/bench/bench_ttfb.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

# Portkey's gateway, the peer row of the benchmark, pinned in its lock
# file; without the registry the row says "not installed".
tests/bench/portkey/node_modules: tests/bench/portkey/package-lock.json
	@cd tests/bench/portkey && timeout 300 npm ci --ignore-scripts \
	    --no-audit --no-fund --loglevel=error || \
	    { rm -rf node_modules; echo "bench: npm ci of Portkey's gateway failed; its row says not installed" >&2; }

$(BUILD)/soak: tests/soak/soak.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(SOAK_LIBS)

tests/openai-node/node_modules: tests/openai-node/package-lock.json
	cd tests/openai-node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The official MCP SDK (client and server) for the MCP gateway's tests
# and the demo; pinned in its own lock file.
tests/mcp-node/node_modules: tests/mcp-node/package-lock.json
	cd tests/mcp-node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

node-deps: tests/openai-node/node_modules tests/mcp-node/node_modules

test-unit: $(BUILD)/unit_tests $(BUILD)/warden
	$(BUILD)/unit_tests
	$(BUILD)/warden test -c rules/example.yaml rules/example.tests.yaml
	$(BUILD)/warden test -c rules/cloud.yaml rules/cloud.tests.yaml

test-fuzz: $(FUZZ_BIN)
	@sh tests/fuzz/replay.sh $(BUILD)/fuzz

test-integration: $(BUILD)/warden $(BUILD)/mock_provider $(BUILD)/integration_tests node-deps $(BUILD)/mock_cloud
	WARDEN_BIN=$(BUILD)/warden MOCK_BIN=$(BUILD)/mock_provider \
	    MOCK_CLOUD_BIN=$(BUILD)/mock_cloud \
	    $(BUILD)/integration_tests

# ASan+UBSan build of everything, in its own tree.
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all \
              -fno-omit-frame-pointer
asan:
	$(MAKE) BUILD=build/asan OPT=-O1 SAN="$(ASAN_FLAGS)" all

test: deps
	$(MAKE) all
	$(MAKE) test-fuzz
	$(MAKE) test-unit
	$(MAKE) test-integration
	$(MAKE) test-dist
	$(MAKE) asan
	$(MAKE) $(BUILD)/soak
	SOAK_BIN=$(BUILD)/soak sh tests/soak/soak.sh build/asan 3000 64
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(MAKE) BUILD=build/asan OPT=-O1 SAN="$(ASAN_FLAGS)" \
	    test-fuzz test-unit test-integration

# run, bench and soak build in a sub-make that starts after deps ended,
# so that pkg-config is asked only once the packages are there (and -j
# cannot build while deps still installs).
run: deps
	@$(MAKE) all node-deps
	@sh scripts/demo.sh $(BUILD)

bench: deps
	@$(MAKE) all $(BUILD)/bench_decide $(BUILD)/bench_audit $(BUILD)/bench_detect \
	    $(BUILD)/bench_ttfb tests/bench/portkey/node_modules
	@sh tests/bench/bench.sh $(BUILD)
	@sh tests/bench/limits.sh $(BUILD)
	@$(BUILD)/bench_decide
	@$(BUILD)/bench_audit
	@$(BUILD)/bench_detect

# Soak with faults (tests/soak/soak.sh): 50,000 requests at 256
# connections on the ASan build (sanitizers), then on this build (RSS).
soak: deps
	$(MAKE) all asan $(BUILD)/soak
	SOAK_BIN=$(BUILD)/soak sh tests/soak/soak.sh build/asan 50000 256
	SOAK_BIN=$(BUILD)/soak sh tests/soak/soak.sh $(BUILD) 50000 256

fuzz: deps
	@sh tests/fuzz/fuzz.sh $(FUZZ_SECONDS)

# A software TPM for development (scripts/swtpm.sh), never a real one:
# `make swtpm-start` prints its TCTI; the state in SWTPM_DIR survives a
# stop and start, so what was sealed stays unsealable.
SWTPM_DIR ?= $(BUILD)/swtpm
swtpm-start:
	@sh scripts/swtpm.sh start $(SWTPM_DIR)
swtpm-stop:
	@sh scripts/swtpm.sh stop $(SWTPM_DIR)

# make install [PREFIX=/usr/local] [DESTDIR=staging]: the binary, the man
# pages, the example rules and the systemd unit (dist/); README.md,
# "Installing and running it as a service", says what to do next.
PREFIX      ?= /usr/local
SYSCONFDIR  ?= /etc
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
DATADIR     ?= $(PREFIX)/share/warden
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
INSTALLED   := $(BINDIR)/warden $(MANDIR)/man1/warden.1 \
               $(MANDIR)/man5/warden-rules.5 $(DATADIR)/example.yaml \
               $(DATADIR)/example.tests.yaml $(UNITDIR)/warden.service \
               $(SYSUSERSDIR)/warden.conf

install: $(BUILD)/warden
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(DATADIR) \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	install -m 0755 $(BUILD)/warden $(DESTDIR)$(BINDIR)/warden
	install -m 0644 dist/warden.1 $(DESTDIR)$(MANDIR)/man1/warden.1
	install -m 0644 dist/warden-rules.5 $(DESTDIR)$(MANDIR)/man5/warden-rules.5
	install -m 0644 rules/example.yaml rules/example.tests.yaml \
	    $(DESTDIR)$(DATADIR)/
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    dist/warden.service.in >$(DESTDIR)$(UNITDIR)/warden.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/warden.service
	install -m 0644 dist/warden.sysusers $(DESTDIR)$(SYSUSERSDIR)/warden.conf

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(DATADIR) 2>/dev/null

# make install into a staging directory, then check what it put there:
# the man pages render without warnings, systemd-analyze accepts the unit
# (where it exists), uninstall removes it all; and the README's tpm2-tools
# recovery recipe, run against swtpm.
test-dist: $(BUILD)/warden
	@sh tests/dist/install.sh $(BUILD)
	@sh tests/dist/recover.sh $(BUILD)

clean:
	rm -rf build
