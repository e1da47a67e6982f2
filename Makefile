# Celltrail: a global control plane and regional data planes.
#
#   make run      start the local multi-region stack (deploy/local/stack.sh)
#   make stop     stop every process the stack started
#   make test     unit + integration tests, then again under ASan+UBSan, then
#                 the rollout, moves, log, streams, CLI and TLS tests
#                 (tests/deploy/), the alert rules and the Kubernetes
#                 manifests, and the fault scenarios but expiry (tests/faults/)
#   make test-streams  log streams end to end (tests/deploy/streams_test.sh)
#   make test-cli the admin CLI (bin/celltrail) on a private stack
#   make test-tls TLS on every hop of a private stack, certificates renewed
#                 under load without a restart (tests/deploy/tls_test.sh)
#   make bench    HTTP benchmarks against a same-run hello-world baseline
#   make faults   fault scenarios on a private stack under load (tests/faults/)
#   make soak     bounded soak: mixed traffic, a control-plane restart, RSS
#   make fuzz     libFuzzer targets of tests/fuzz/, FUZZ_SECONDS (60) each
#
# Every target first runs `deps`, which installs missing Debian packages
# (as root) and is a no-op when everything is present.

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc

# Debian packages the two services build with (all the container image's
# build stage installs), and those this tree builds, runs and tests with.
# zlib compresses exports (gzip) as they stream: a small library, stable
# for decades and maintained, in every distribution.
BUILD_PACKAGES := gcc libc6-dev make pkg-config \
	libmicrohttpd-dev libpq-dev libjansson-dev libjwt-dev libssl-dev \
	libcurl4-openssl-dev zlib1g-dev
DEB_PACKAGES := $(BUILD_PACKAGES) ca-certificates curl check libsubunit-dev \
	postgresql-15 wrk python3 python3-jwt python3-cryptography python3-yaml \
	haproxy socat
# openssl: the local stack's CA and certificates (deploy/local/certs.sh).
DEB_PACKAGES += openssl
# jq: the README's walk-through (and its test) reads the answers with it.
DEB_PACKAGES += jq
# clang with its libFuzzer runtime, and llvm-symbolizer for the reports (make fuzz).
DEB_PACKAGES += clang libclang-rt-dev llvm
# valgrind memcheck of the services (make test-valgrind).
DEB_PACKAGES += valgrind
# promtool (in Debian's prometheus package) checks both services' /metrics.
DEB_PACKAGES += prometheus
# Node runs the Redocly CLI that lints both OpenAPI files (make lint-openapi).
# Debian's npm is a package of its own, installed by that target when no npm
# is on the PATH (a Node from elsewhere brings its own and conflicts with it).
DEB_PACKAGES += nodejs
# python3-jwcrypto: an independent JOSE implementation that the sealed
# stream secrets and the signed key sets are checked against
# (tests/unit/seal_interop.py, tests/unit/keyset_interop.py).
DEB_PACKAGES += python3-jwcrypto
# The openssl command makes the test CAs of the stream receivers
# (tests/streams/), whose S3 server, s3rver, npm installs like Redocly.
DEB_PACKAGES += openssl
# ss (iproute2): the streams test finds the data plane with a batch in
# flight by its connection to a stopped receiver (tests/deploy/streams_test.sh).
DEB_PACKAGES += iproute2

PKGS := libmicrohttpd libpq jansson libjwt openssl libcurl zlib

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wno-format-nonliteral
CFLAGS  ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE $(WARN) -MMD -MP -Icommon
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) -lpthread -lm
CHECK_LIBS = $(shell pkg-config --libs check)

SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all

# Quiet by default; `make V=1` shows the commands.
ifeq ($(V),1)
Q :=
else
Q := @
endif

# BUILD is where objects go; the sanitizer build uses build/asan.
BUILD ?= build/release
BIN   ?= bin

COMMON_SRC := $(wildcard common/*.c)
CP_SRC     := $(wildcard control-plane/*.c)
# The router agent is its own binary; it shares the cache module.
ROUTER_SRC := data-plane/cell_router.c data-plane/config_store.c data-plane/trust_store.c
# The move agent too: it calls the cells' move routes and the control plane.
# (It links data-plane/jscan.c as well, which the data plane has.)
MOVER_SRC  := data-plane/mover.c data-plane/mover_call.c
# The offline verifier of exports (no network, no database) as well.
VERIFY_SRC := data-plane/celltrail_verify.c
DP_SRC     := $(filter-out data-plane/cell_router.c $(MOVER_SRC) $(VERIFY_SRC),$(wildcard data-plane/*.c))
UNIT_SRC   := $(wildcard tests/unit/*.c)
IT_SRC     := $(wildcard tests/integration/*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

COMMON_OBJ := $(call obj,$(COMMON_SRC))
CP_OBJ     := $(call obj,$(CP_SRC))
DP_OBJ     := $(call obj,$(DP_SRC))

.PHONY: all deps services testbins benchbins run stop test test-fast test-deploy bench install clean \
	faults soak
.DEFAULT_GOAL := all

deps:
	@sh deploy/deps.sh $(DEB_PACKAGES)

all: deps
	@$(MAKE) --no-print-directory services

services: $(BIN)/control-plane $(BIN)/data-plane $(BIN)/cell-router $(BIN)/mover $(BIN)/celltrail-verify \
	$(BIN)/celltrail
testbins: check-includes services $(BIN)/unit-tests $(BIN)/it-tests $(BIN)/http-testd $(BIN)/merkle-vectors
benchbins: services $(BIN)/faults-load $(BIN)/hello-bench $(BIN)/cfgdoc-bench $(BIN)/delta-bench $(BIN)/retention-bench $(BIN)/propagation-bench $(BIN)/feed-bench

# No include cycle between modules, nothing in common/ that includes a
# service, neither service including the other (tests/includes.sh).
.PHONY: check-includes
check-includes:
	@sh tests/includes.sh --self-test >/dev/null
	@sh tests/includes.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $(BUILD)/$*.o"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

# Each service's OpenAPI document, compiled in (GET /openapi.yaml,
# common/apidoc.h) as a C array written with od and sed, which every
# machine that builds has (xxd is not on a minimal Debian): nothing to
# install beside the binary or to find at run time, and the bytes served
# are the file's.
$(BUILD)/gen/%-openapi.c: %/openapi.yaml
	@mkdir -p $(dir $@)
	@echo "  GEN   $@"
	$(Q){ echo '/* Generated by the Makefile from $<: do not edit. */'; \
	  echo '#include "apidoc.h"'; \
	  echo 'static const unsigned char doc[] = {'; \
	  od -An -v -tx1 $< | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '};'; \
	  echo 'const unsigned char *apidoc_yaml(size_t *len)'; \
	  echo '{'; \
	  echo '	*len = sizeof doc;'; \
	  echo '	return doc;'; \
	  echo '}'; } >$@.tmp && mv $@.tmp $@

.PRECIOUS: $(BUILD)/gen/%-openapi.c
$(BUILD)/gen/%-openapi.o: $(BUILD)/gen/%-openapi.c
	@echo "  CC    $@"
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BIN)/control-plane: $(CP_OBJ) $(COMMON_OBJ) $(BUILD)/gen/control-plane-openapi.o
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

$(BIN)/data-plane: $(DP_OBJ) $(COMMON_OBJ) $(BUILD)/gen/data-plane-openapi.o
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

$(BIN)/cell-router: $(call obj,$(ROUTER_SRC)) $(COMMON_OBJ)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

$(BIN)/mover: $(call obj,$(MOVER_SRC) data-plane/jscan.c) $(COMMON_OBJ)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

$(BIN)/celltrail-verify: $(call obj,$(VERIFY_SRC)) $(COMMON_OBJ)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

# The admin command line of the control-plane API (cli/, README "Admin
# CLI"); `make test-cli` drives it on a private stack (tests/deploy/
# cli_test.sh, ports from CLI_TEST_PORT, 19100; not part of `make test`).
CLI_SRC := $(wildcard cli/*.c)
$(BIN)/celltrail: $(call obj,$(CLI_SRC)) $(COMMON_OBJ)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

.PHONY: test-alerts
# The alert rules (promtool check and test rules), their runbook links and
# the dashboards' metrics (deploy/prometheus, deploy/grafana; seconds).
test-alerts: deps
	@sh tests/deploy/alerts_test.sh

.PHONY: test-kubernetes
# Every overlay of deploy/kubernetes rendered and validated offline against
# the Kubernetes API schemas (seconds; the first run installs the validator).
test-kubernetes: deps
	@sh tests/deploy/kubernetes_test.sh

.PHONY: test-cli
test-cli: deps
	@$(MAKE) --no-print-directory services
	@sh tests/deploy/cli_test.sh $(BIN)

.PHONY: test-tls
test-tls: deps
	@$(MAKE) --no-print-directory services $(BIN)/faults-load
	@sh tests/deploy/tls_test.sh $(BIN)

# RFC 9162 test vectors from common/merkle.c, for tests/log/verify_test.sh.
$(BIN)/merkle-vectors: $(call obj,tests/log/merkle_vectors.c) $(COMMON_OBJ)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

$(BIN)/unit-tests: $(call obj,$(UNIT_SRC)) $(call obj,control-plane/password.c) $(call obj,data-plane/config_store.c) $(COMMON_OBJ)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS) $(LDFLAGS)

$(BIN)/it-tests: $(call obj,$(IT_SRC)) $(COMMON_OBJ)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS) $(LDFLAGS)
# The stream-send suite drives the data plane's senders against real receivers.
$(BIN)/it-tests: $(call obj,data-plane/stream_send.c)

$(BIN)/http-testd: $(call obj,tests/support/http_testd.c) $(COMMON_OBJ)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

$(BIN)/cfgdoc-bench: $(call obj,tests/bench/cfgdoc_bench.c) $(COMMON_OBJ)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

$(BIN)/delta-bench: $(call obj,tests/bench/delta_bench.c) $(COMMON_OBJ)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

$(BIN)/retention-bench: $(call obj,tests/bench/retention_bench.c data-plane/partitions.c data-plane/db_partitions.c \
		data-plane/db_events.c) $(COMMON_OBJ)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

$(BIN)/propagation-bench: $(call obj,tests/bench/propagation.c)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

$(BIN)/feed-bench: $(call obj,tests/bench/feed_lag.c)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS) -lpthread

$(BIN)/hello-bench: $(call obj,tests/bench/hello.c)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

$(BIN)/faults-load: $(call obj,tests/faults/load.c)
	@mkdir -p $(BIN)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

# The sanitizer build: same sources, objects in build/asan.
# Compile jobs of make test's builds: one per core.
JOBS := $(shell nproc 2>/dev/null || echo 2)

ASAN_MAKE = $(MAKE) --no-print-directory BUILD=build/asan BIN=build/asan/bin \
	CFLAGS="$(SAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined"

# The regions as cells, two data planes per cell behind HAProxy, each
# region's router, so that deploy/rollout (driver local) replaces them one
# at a time; STACK_DP_INSTANCES=1 runs one per cell.
run: all
	@STACK_DP_INSTANCES=$${STACK_DP_INSTANCES:-2} sh deploy/local/stack.sh start

stop: deps
	@sh deploy/local/stack.sh stop

# Both OpenAPI files through the Redocly CLI's recommended rules: an error
# fails, warnings are shown. The CLI (pinned: 1.x runs on Debian 12's Node
# 18) is installed once with npm under build/tools, so a rerun is offline
# and takes about two seconds.
REDOCLY_VERSION := 1.34.5
REDOCLY_DIR := build/tools/redocly-$(REDOCLY_VERSION)
REDOCLY := $(REDOCLY_DIR)/node_modules/.bin/redocly

$(REDOCLY):
	@command -v npm >/dev/null 2>&1 || sh deploy/deps.sh npm
	@echo "  NPM   @redocly/cli@$(REDOCLY_VERSION) into $(REDOCLY_DIR)"
	$(Q)mkdir -p $(REDOCLY_DIR) && npm install --prefix $(REDOCLY_DIR) --no-audit --no-fund --no-save \
		--loglevel=error @redocly/cli@$(REDOCLY_VERSION) >/dev/null
	@test -x $@

.PHONY: lint-openapi
lint-openapi: deps
	@$(MAKE) --no-print-directory $(REDOCLY)
	@t0=$$(date +%s%N); \
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1 \
		$(REDOCLY) lint --extends=recommended --format=stylish \
		control-plane/openapi.yaml data-plane/openapi.yaml || exit 1; \
	echo "lint-openapi: both OpenAPI files pass the Redocly lint ($$(( ($$(date +%s%N) - t0) / 1000000 )) ms)"

# The whole suite twice: once as built, once under ASan+UBSan. Each run is
# split in two parts, the unit tests with the integration suites not listed
# below, and the suites listed below; the four parts go side by side, each
# with its own PostgreSQL and ports, since the suites mostly wait on
# services and timers (on two cores, about half the time of the two runs
# side by side). The other parts' output follows the first's.
IT_PART_B := export moves-dp events hostile feed login erasure cells-dp
# Suites that measure a rate against the clock run after the four parts,
# alone, one build at a time: on two busy cores the rate exchange between
# instances lags, and region_rate's 15 % would measure the machine.
IT_SOLO := ratelimit

.PHONY: test-suites
test-suites: deps
	@# Both builds use every core (half the time of one at a time).
	@$(MAKE) --no-print-directory -j$(JOBS) testbins
	@$(ASAN_MAKE) -j$(JOBS) testbins
	@ln -sfn ../../migrations build/asan/migrations  # as bin/../migrations
	@ln -sfn ../../deploy build/asan/deploy
	@solo="$$(printf '%s\n' $(IT_SOLO))"; \
	 b=$$(printf '%s\n' $(IT_PART_B) | grep -vxF "$$solo" | tr '\n' ' '); \
	 a=$$($(BIN)/it-tests --list | grep -vxF "$$(printf '%s\n' $$b $(IT_SOLO))" | tr '\n' ' '); \
	 IT_PART=release-b IT_SUITES="$$b" IT_UNIT=0 sh tests/run.sh $(BIN) release > build/tests-release-b.log 2>&1 & p1=$$!; \
	 IT_PART=asan-a IT_SUITES="$$a" sh tests/run.sh build/asan/bin asan > build/asan/tests-a.log 2>&1 & p2=$$!; \
	 IT_PART=asan-b IT_SUITES="$$b" IT_UNIT=0 sh tests/run.sh build/asan/bin asan > build/asan/tests-b.log 2>&1 & p3=$$!; \
	 trap 'kill $$p1 $$p2 $$p3 2>/dev/null; exit 1' INT TERM; \
	 r0=0; IT_PART=release-a IT_SUITES="$$a" sh tests/run.sh $(BIN) release || r0=$$?; \
	 r1=0; wait $$p1 || r1=$$?; cat build/tests-release-b.log; \
	 r2=0; wait $$p2 || r2=$$?; cat build/asan/tests-a.log; \
	 r3=0; wait $$p3 || r3=$$?; cat build/asan/tests-b.log; \
	 [ $$r0 = 0 ] && [ $$r1 = 0 ] && [ $$r2 = 0 ] && [ $$r3 = 0 ]
	@IT_PART=release-solo IT_SUITES="$(IT_SOLO)" IT_UNIT=0 sh tests/run.sh $(BIN) release
	@IT_PART=asan-solo IT_SUITES="$(IT_SOLO)" IT_UNIT=0 sh tests/run.sh build/asan/bin asan

test: deps
	@mkdir -p build
	@# The tools the jobs beside the builds need are installed first, one
	@# at a time: two package installs at once fail on dpkg's lock.
	@$(MAKE) --no-print-directory $(REDOCLY)
	@command -v kubectl >/dev/null 2>&1 || sh deploy/deps.sh kubernetes-client
	@# The OpenAPI lint (whose first run installs Redocly from npm), the
	@# alert rules' tests (promtool) and the Kubernetes manifests' offline
	@# validation go beside the builds and the suites; their output is
	@# printed after them.
	@$(MAKE) --no-print-directory lint-openapi > build/lint-openapi.out 2>&1 & o=$$!; \
	 sh tests/deploy/alerts_test.sh > build/alerts-test.out 2>&1 & a=$$!; \
	 sh tests/deploy/kubernetes_test.sh > build/kubernetes-test.out 2>&1 & k=$$!; \
	 trap 'kill $$o $$a $$k 2>/dev/null; exit 1' INT TERM; \
	 s=0; $(MAKE) --no-print-directory test-suites || s=$$?; \
	 r=0; wait $$o || r=$$?; cat build/lint-openapi.out; \
	 q=0; wait $$a || q=$$?; cat build/alerts-test.out; \
	 w=0; wait $$k || w=$$?; cat build/kubernetes-test.out; \
	 [ $$s = 0 ] && [ $$r = 0 ] && [ $$q = 0 ] && [ $$w = 0 ]
	@$(MAKE) --no-print-directory services $(BIN)/faults-load $(BIN)/celltrail-verify
	@# The end-to-end tests, each on a private stack (its own ports and
	@# clusters), mostly wait: on moves, appends, a stream receiver down
	@# for a minute. The streams, log, CLI, TLS and moves tests and the fuzz smoke
	@# runs (a core for a few seconds each) go side by side; their outputs
	@# are printed after. The fault scenarios, then the rollout test, run
	@# after them, each alone: their gates count every request that failed
	@# and compare latencies before and during a fault.
	@sh tests/deploy/streams_test.sh $(BIN) > build/streams-test.out 2>&1 & st=$$!; \
	 $(MAKE) --no-print-directory fuzz-smoke > build/fuzz-smoke.out 2>&1 & f=$$!; \
	 sh tests/deploy/log_test.sh $(BIN) > build/log-test.out 2>&1 & l=$$!; \
	 sh tests/deploy/cli_test.sh $(BIN) > build/cli-test.out 2>&1 & c=$$!; \
	 sh tests/deploy/tls_test.sh $(BIN) > build/tls-test.out 2>&1 & tl=$$!; \
	 trap 'kill $$st $$f $$l $$c $$tl 2>/dev/null; exit 1' INT TERM; \
	 m=0; sh tests/deploy/moves_test.sh $(BIN) || m=$$?; \
	 t=0; wait $$l || t=$$?; cat build/log-test.out; \
	 z=0; wait $$f || z=$$?; cat build/fuzz-smoke.out; \
	 x=0; wait $$st || x=$$?; cat build/streams-test.out; \
	 y=0; wait $$c || y=$$?; cat build/cli-test.out; \
	 v=0; wait $$tl || v=$$?; cat build/tls-test.out; \
	 [ $$m = 0 ] && [ $$t = 0 ] && [ $$z = 0 ] && [ $$x = 0 ] && [ $$y = 0 ] && [ $$v = 0 ]
	@FAULTS_SKIP="expiry $(TEST_SKIPS_FAULTS) $(MOVE_FAULTS)" $(MAKE) --no-print-directory faults
	@$(MAKE) --no-print-directory test-deploy

# Fault scenarios make test leaves to make faults, since an integration
# suite covers the same ground: the control plane hung (e2e-config), a data
# plane killed during ingest and its database restarted (events); the
# restart of a cell's own database is cell-db's.
TEST_SKIPS_FAULTS := cp-hang dp-kill regional-db

# The move scenarios of tests/faults/moves.sh (tenants of a million events:
# minutes); make test runs tests/deploy/moves_test.sh instead.
MOVE_FAULTS := move-cell move-region move-mover-kill move-cp-kill move-target-db-restart move-abort cell-drain

# The services under valgrind memcheck (tests/valgrind.sh): a subset of the
# integration suites, VALGRIND_SUITES, about a minute and a half; any memcheck
# error or definite leak fails it and its report is printed. Not part of
# `make test` (which runs every suite under ASan+UBSan and LeakSanitizer):
# its minute and a half would take `make test` past twenty minutes.
.PHONY: test-valgrind
test-valgrind: deps
	@$(MAKE) --no-print-directory testbins
	@sh tests/valgrind.sh $(BIN)

# One pass, no sanitizers: for a quick local loop.
test-fast: deps
	@$(MAKE) --no-print-directory testbins
	@sh tests/run.sh $(BIN) release

# deploy/rollout end to end, on a private local stack under traffic
# (about two minutes; ports from DEPLOY_TEST_PORT, 18600).
test-deploy: deps
	@$(MAKE) --no-print-directory services
	@sh tests/deploy/rollout_test.sh

# Tenant moves end to end (a cell move, a region move, an abort) on a
# private local stack under light load (under a minute; ports from
# MOVES_TEST_PORT, 18500).
.PHONY: test-moves
test-moves: deps
	@$(MAKE) --no-print-directory services $(BIN)/faults-load
	@sh tests/deploy/moves_test.sh $(BIN)

# Tamper evidence end to end: a clean trail verified by both verifiers,
# proofs, and tampering done in SQL as the database superuser, each
# detected and named (well under a minute; ports from LOG_TEST_PORT, 18400).
.PHONY: test-log
test-log: deps
	@$(MAKE) --no-print-directory services $(BIN)/celltrail-verify
	@sh tests/deploy/log_test.sh $(BIN)

# Log streams end to end: webhook, Splunk HEC and S3 receivers on this
# machine, a receiver down for a minute, a data plane killed mid-delivery,
# residency refusals, pause/resume/replay and no secret at rest (about 75
# s, most of it the receiver's minute down; ports from STREAMS_TEST_PORT,
# 18900).
.PHONY: test-streams
test-streams: deps
	@$(MAKE) --no-print-directory services
	@sh tests/deploy/streams_test.sh $(BIN)

bench: deps
	@$(MAKE) --no-print-directory benchbins
	@sh tests/bench/run.sh $(BIN)

# Fault scenarios on a private stack under load (tests/faults/README.md;
# ports from FAULTS_PORT, 18700), and the bounded soak (SOAK_SECONDS, 120;
# ports from SOAK_PORT, 18800).
faults: deps
	@$(MAKE) --no-print-directory services $(BIN)/faults-load
	@sh tests/faults/run.sh $(BIN)

soak: deps
	@$(MAKE) --no-print-directory services $(BIN)/faults-load
	@sh tests/faults/soak.sh $(BIN)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/celltrail/migrations/control-plane \
		$(DESTDIR)$(PREFIX)/share/celltrail/migrations/region \
		$(DESTDIR)$(PREFIX)/share/celltrail/migrations/region/contract
	install -m 0755 $(BIN)/control-plane $(BIN)/data-plane $(BIN)/cell-router $(BIN)/mover \
		$(BIN)/celltrail-verify $(BIN)/celltrail $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 migrations/control-plane/*.sql \
		$(DESTDIR)$(PREFIX)/share/celltrail/migrations/control-plane/
	install -m 0644 migrations/region/*.sql $(DESTDIR)$(PREFIX)/share/celltrail/migrations/region/
	install -m 0644 migrations/region/contract/*.sql \
		$(DESTDIR)$(PREFIX)/share/celltrail/migrations/region/contract/
	install -m 0644 deploy/regions.conf $(DESTDIR)$(PREFIX)/share/celltrail/

clean:
	rm -rf build $(BIN)

# Fuzzing: libFuzzer targets of tests/fuzz/, built with clang under
# ASan+UBSan in build/fuzz, each linking its harness and only the sources
# it exercises. `make fuzz` runs each FUZZ_SECONDS (60), `make fuzz-smoke`
# (part of `make test`) FUZZ_SMOKE_SECONDS (2); FUZZ_TARGETS picks some.
FUZZ_CC            ?= clang
FUZZ_SECONDS       ?= 60
FUZZ_SMOKE_SECONDS ?= 2
FUZZ_TARGETS       ?= event cp_request names cfgdoc cursor timefmt apikey routes jscan verify streams
FUZZ_PKGS   := jansson libcrypto
FUZZ_CFLAGS  = -std=c11 -D_GNU_SOURCE $(WARN) -MMD -MP -Icommon -O1 -g -fno-omit-frame-pointer \
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
	$(shell pkg-config --cflags $(FUZZ_PKGS))
fuzz_obj = $(patsubst %.c,build/fuzz/%.o,$(1))

.PHONY: fuzz fuzz-smoke fuzz-bins
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-bins
	@sh tests/fuzz/run.sh build/fuzz/bin $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: deps
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS)

fuzz-bins: $(patsubst %,build/fuzz/bin/fuzz-%,$(FUZZ_TARGETS))

build/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

build/fuzz/bin/fuzz-%:
	@mkdir -p $(dir $@)
	@echo "  LINK  $@"
	$(Q)$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $(filter %.o,$^) \
		$(shell pkg-config --libs $(FUZZ_PKGS))

build/fuzz/bin/fuzz-event: $(call fuzz_obj,tests/fuzz/fuzz_event.c data-plane/event.c \
	common/jsonx.c common/timefmt.c common/secret.c)
build/fuzz/bin/fuzz-cp_request: $(call fuzz_obj,tests/fuzz/fuzz_cp_request.c \
	control-plane/requests.c tests/fuzz/names_check.c common/jsonx.c common/names.c common/timefmt.c \
	common/usage_report.c)
build/fuzz/bin/fuzz-names: $(call fuzz_obj,tests/fuzz/fuzz_names.c tests/fuzz/names_check.c \
	common/names.c common/timefmt.c)
build/fuzz/bin/fuzz-cfgdoc: $(call fuzz_obj,tests/fuzz/fuzz_cfgdoc.c tests/fuzz/fuzz_trust.c common/cfgdoc.c \
	common/jws.c common/jwk.c common/names.c common/secret.c common/buf.c)
build/fuzz/bin/fuzz-routes: $(call fuzz_obj,tests/fuzz/fuzz_routes.c tests/fuzz/fuzz_trust.c common/cfgdoc.c \
	common/jws.c common/jwk.c common/names.c common/secret.c common/buf.c)
build/fuzz/bin/fuzz-jscan: $(call fuzz_obj,tests/fuzz/fuzz_jscan.c data-plane/jscan.c)
build/fuzz/bin/fuzz-cursor: $(call fuzz_obj,tests/fuzz/fuzz_cursor.c common/cursor.c common/secret.c)
build/fuzz/bin/fuzz-timefmt: $(call fuzz_obj,tests/fuzz/fuzz_timefmt.c tests/fuzz/names_check.c \
	common/timefmt.c common/names.c)
build/fuzz/bin/fuzz-apikey: $(call fuzz_obj,tests/fuzz/fuzz_apikey.c common/apikey.c common/secret.c \
	common/names.c)
build/fuzz/bin/fuzz-streams: $(call fuzz_obj,tests/fuzz/fuzz_streams.c common/residency.c common/seal.c \
	common/jwk.c common/secret.c)
build/fuzz/bin/fuzz-verify: $(call fuzz_obj,tests/fuzz/fuzz_verify.c common/checkpoint.c common/jws.c \
	common/jwk.c common/merkle.c common/names.c common/secret.c common/timefmt.c)

-include $(shell find build -name '*.d' 2>/dev/null)
