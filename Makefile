# amosd — see README.md. Every target installs what it needs (scripts/ensure-tools.sh).
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# BUILT: the commit's time (reproducible); amosd believes no server_time before it
BUILT   ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.built=$(BUILT)
BUILDFLAGS := -trimpath -tags nethttpomithttp2 -ldflags '$(LDFLAGS)'
# The handset binary is built without inlining: 0.6 MiB smaller on armv7, and amosd
# spends its life asleep (docs/operations.md, budgets).
HANDSET_GCFLAGS := -gcflags=all=-l
CMDS := amosd amos-collector

FUZZTIME ?= 30s
CI_FUZZTIME ?= 10s
TEST_TIMEOUT ?= 15m

.PHONY: all build cross release release-check android-prebuilt vm-test test test-arm lint fuzz bench ci demo tools clean

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

all: build

tools:
	@bash scripts/ensure-tools.sh

## build: the host binaries into out/host/
build:
	@mkdir -p out/host
	CGO_ENABLED=0 $(GO) build $(BUILDFLAGS) -o out/host/ $(addprefix ./cmd/,$(CMDS))

## cross: static stripped binaries for the handsets into out/arm/ (GOARM=7) and out/arm64/
cross:
	@mkdir -p out/arm out/arm64
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build $(BUILDFLAGS) $(HANDSET_GCFLAGS) -o out/arm/ ./cmd/amosd
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(BUILDFLAGS) $(HANDSET_GCFLAGS) -o out/arm64/ ./cmd/amosd
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build $(BUILDFLAGS) -o out/arm/ $(addprefix ./cmd/,$(filter-out amosd,$(CMDS)))
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(BUILDFLAGS) -o out/arm64/ $(addprefix ./cmd/,$(filter-out amosd,$(CMDS)))
	@ls -l out/arm/* out/arm64/*

## release: the handset (arm, arm64) and collector (arm, arm64, amd64) binaries built
## reproducibly into out/release/, with SHA256SUMS and each binary's module list
## (go version -m) for a firmware manifest; release-check also rebuilds them from a copy
## at another path with an empty build cache and fails unless they are byte-identical
release:
	VERSION=$(VERSION) COMMIT=$(COMMIT) BUILT=$(BUILT) bash scripts/release.sh out/release
release-check:
	VERSION=$(VERSION) COMMIT=$(COMMIT) BUILT=$(BUILT) bash scripts/release.sh --check out/release

## android-prebuilt: `make cross`, then amosd for arm and arm64 (and the CA of AMOS_CA, the
## records server's CA from Amos) into android-build/ for an AOSP tree; see android-build/README.md
AMOS_CA ?=
android-prebuilt: cross
	@mkdir -p android-build/prebuilt/arm android-build/prebuilt/arm64
	cp out/arm/amosd android-build/prebuilt/arm/amosd
	cp out/arm64/amosd android-build/prebuilt/arm64/amosd
	@if [ -n "$(AMOS_CA)" ]; then \
	  grep -q 'BEGIN CERTIFICATE' "$(AMOS_CA)" || { echo "android-prebuilt: AMOS_CA=$(AMOS_CA) holds no PEM certificate" >&2; exit 1; }; \
	  cp "$(AMOS_CA)" android-build/amos-ca.pem && echo "android-build/amos-ca.pem from $(AMOS_CA)"; \
	elif [ ! -f android-build/amos-ca.pem ]; then \
	  echo "android-prebuilt: android-build/amos-ca.pem is missing (the Android.bp module amos-ca.pem needs it):" >&2; \
	  echo "  make android-prebuilt AMOS_CA=/path/to/amos-ca.pem   (the records server's CA, from Amos)" >&2; exit 1; \
	fi
	@ls -l android-build/prebuilt/arm/amosd android-build/prebuilt/arm64/amosd android-build/amos-ca.pem

## test: go vet and the race-enabled suite on the host
test: tools
	$(GO) vet ./...
	$(GO) vet -tags amosfakeclock ./cmd/amos-collector
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

## test-arm: the tests of what runs on a phone (amosd, the development keystore and their
## packages) cross-compiled, under qemu-arm-static and qemu-aarch64-static
test-arm: tools
	bash scripts/test-arm.sh

## lint: staticcheck at a pinned version (through go run), which must be clean
lint:
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags amosfakeclock ./cmd/amos-collector

## fuzz: every fuzz target for FUZZTIME each
fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

## bench: each budget measured now, one line each (figure, budget, PASS/FAIL),
## and the same in out/bench.json (tools/benchreport); the idle wake-ups take 10
## minutes, 1 with BENCH_QUICK=1. Exit 1 if a budget fails, 2 if a figure is missing.
bench: tools cross
	$(GO) run ./tools/benchreport

## vm-test: the firmware image booted under full-system QEMU (arm64 and armv7), its power
## cut at random moments, then checked, and android-build/oem-check.sh run against it over
## the host's real adb (rigs/vmtest, rigs/adbd; Debian packages cached in .cache/vm)
vm-test: tools
	AMOSD_VMTEST=1 $(GO) test -count=1 -timeout 40m -run TestPowerCuts -v ./rigs/vmtest

## ci: what .ci/run runs: staticcheck, host tests, QEMU tests for armv7 and arm64, the
## firmware booted with power cuts, a short fuzz
ci: lint test release-check test-arm vm-test
	FUZZTIME=$(CI_FUZZTIME) bash scripts/fuzz.sh

## demo: the end-to-end demonstration under out/demo (tools/demo): a private D-Bus, the
## collector over TLS, one real amosd fed by D-Bus signals that mints a day at a near local
## midnight, a month of 1,000 simulated phones (tools/fleetsim), the claims and a guide.
## It prints the web console's URL and a development token to sign in with;
## DEMO_FLAGS=--keep leaves it all running until Ctrl-C (the console with it). DEMO_LEDGER=postgres puts the
## collector's ledger on a PostgreSQL server started in out/demo/postgres (Debian's
## postgresql package) and stopped with the rest; without it, bbolt, and no database needed.
DEMO_FLAGS ?=
DEMO_LEDGER ?=
demo:
	@command -v dbus-daemon >/dev/null || bash scripts/ensure-tools.sh
	@[ "$(DEMO_LEDGER)" != postgres ] || command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || bash scripts/ensure-tools.sh
	$(GO) run ./tools/demo $(if $(DEMO_LEDGER),--ledger=$(DEMO_LEDGER)) $(DEMO_FLAGS)

clean:
	rm -rf out android-build/prebuilt/arm/amosd android-build/prebuilt/arm64/amosd
