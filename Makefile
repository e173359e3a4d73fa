# fcgigate: build, test, fuzz, demo and benchmark entry points.
# `make test` is what CI runs (.ci/run); it installs the system packages the
# end-to-end tests need first (scripts/deps.sh, a no-op when all are there).

GO        ?= go
BIN       := bin/fcgigate
FUZZTIME  ?= 30s
FUZZ_PKGS ?= ./fastcgi/ ./gateway/ ./health/

.PHONY: all build deps consul test test-short vet fuzz demo bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/fcgigate

deps:
	scripts/deps.sh

vet:
	$(GO) vet ./...

# The Consul agent that the tests and the demo start: v1.14.11, the last
# line under the MPL, pinned by the tools module in tools/consul so that its
# dependencies stay out of our go.mod. Built only when bin/consul is missing
# (about 8 minutes on 2 cores); `make clean` removes it.
CONSUL := bin/consul

consul: $(CONSUL)

$(CONSUL):
	cd tools/consul && $(GO) build -trimpath -o ../../$(CONSUL) github.com/hashicorp/consul

# The full suite, with the race detector, against real php-fpm, Consul and
# Apache. Under CI a missing program fails the tests instead of skipping them.
# One package at a time (-p 1): test/ puts php-fpm under load on both cores,
# and the gossip tests run by memberlist's half-second probes, which a
# starved process misses (a member was once declared dead that way). It
# costs little: test/ takes most of the time either way.
test: deps consul vet
	$(GO) test -race -count=1 -p 1 -timeout 40m ./...

# Unit tests only: tests that start real processes skip under -short.
test-short:
	$(GO) test -short -count=1 -timeout 10m ./...

# Runs every Fuzz target in FUZZ_PKGS for FUZZTIME each. New crashers land in
# the package's testdata/fuzz/, which plain `go test` replays.
fuzz:
	@set -e; for pkg in $(FUZZ_PKGS); do \
		list=$$($(GO) test -list '^Fuzz' $$pkg); \
		targets=$$(printf '%s\n' "$$list" | grep '^Fuzz' || true); \
		if [ -z "$$targets" ]; then echo "fuzz: no Fuzz targets in $$pkg"; continue; fi; \
		for t in $$targets; do \
			echo "fuzz: $$pkg $$t for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# A Consul dev agent on 127.0.0.1:8500, three php-fpm pools on 127.0.0.2, .3
# and .4 port 9000 serving deploy/app/public, each registered in Consul with
# a check, and the gateway discovering them on http://127.0.0.1:8080/, until
# Ctrl-C.
demo: deps build consul
	scripts/demo.sh

# System benchmark: fcgigate against nginx on the same machine, as ratios;
# three pools with one ten times slower, fcgigate against nginx least_conn;
# then Apache to php-fpm directly against Apache through fcgigate's FastCGI
# front, first with every process on both cores (the hop's worst case), then
# split: wrk, Apache and php-fpm on CPU 0, the hop on CPU 1, as if the
# gateway had a host of its own.
bench: deps build
	$(GO) run ./cmd/fcgilab bench $(BENCHFLAGS)
	$(GO) run ./cmd/fcgilab bench -scenario slowpool $(BENCHFLAGS)
	$(GO) run ./cmd/fcgilab bench -scenario apache $(BENCHFLAGS)
	$(GO) run ./cmd/fcgilab bench -scenario apache -split $(BENCHFLAGS)

clean:
	rm -rf bin/ bench-results/
	$(GO) clean -testcache
