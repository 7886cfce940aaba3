# warden - a policy-driven compliance gateway for LLM API traffic.
# `make run` and `make test` are the two commands; see README.md.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
PKGS    := libevent libevent_pthreads libcurl openssl yaml-0.1 jansson \
           tss2-esys tss2-tctildr tss2-mu tss2-rc

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wvla -Wno-format-nonliteral
CFLAGS  := -std=c17 -g $(OPT) $(WARN) -D_GNU_SOURCE -I. $(PKG_CFLAGS) \
           -fstack-protector-strong $(SAN) $(EXTRA_CFLAGS)
LDFLAGS := $(SAN) $(EXTRA_LDFLAGS)
LDLIBS  := $(PKG_LIBS) -lpthread

# Everything but main() goes into one archive that tests link too.
LIB_SRC := $(wildcard common/*.c policy/*.c secrets/*.c audit/*.c) \
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
        bench fuzz clean node-deps swtpm-start swtpm-stop soak

all: $(BUILD)/warden $(BUILD)/mock_provider $(BUILD)/unit_tests \
     $(BUILD)/integration_tests $(FUZZ_BIN)

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
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(shell pkg-config --libs libevent jansson)

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

$(BUILD)/soak: tests/soak/soak.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(shell pkg-config --libs libcurl)

tests/openai-node/node_modules: tests/openai-node/package-lock.json
	cd tests/openai-node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

node-deps: tests/openai-node/node_modules

test-unit: $(BUILD)/unit_tests $(BUILD)/warden
	$(BUILD)/unit_tests
	$(BUILD)/warden test -c rules/example.yaml rules/example.tests.yaml

test-fuzz: $(FUZZ_BIN)
	@sh tests/fuzz/replay.sh $(BUILD)/fuzz

test-integration: $(BUILD)/warden $(BUILD)/mock_provider $(BUILD)/integration_tests node-deps
	WARDEN_BIN=$(BUILD)/warden MOCK_BIN=$(BUILD)/mock_provider \
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
	$(MAKE) asan
	$(MAKE) $(BUILD)/soak
	SOAK_BIN=$(BUILD)/soak sh tests/soak/soak.sh build/asan 3000 64
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(MAKE) BUILD=build/asan OPT=-O1 SAN="$(ASAN_FLAGS)" \
	    test-fuzz test-unit test-integration

run: deps all
	@sh scripts/demo.sh $(BUILD)

bench: deps all $(BUILD)/bench_decide $(BUILD)/bench_audit
	@sh tests/bench/bench.sh $(BUILD)
	@$(BUILD)/bench_decide
	@$(BUILD)/bench_audit

# Soak with faults (tests/soak/soak.sh): 50,000 requests at 256
# connections on the ASan build (sanitizers), then on this build (RSS).
soak: deps all asan $(BUILD)/soak
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

clean:
	rm -rf build
