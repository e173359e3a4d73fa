# fcgigate: build, test, fuzz, demo and benchmark entry points.
# `make test` is what CI runs (.ci/run); it installs the system packages the
# end-to-end tests need first (scripts/deps.sh, a no-op when all are there).

GO        ?= go
BIN       := bin/fcgigate
FUZZTIME  ?= 30s
FUZZ_PKGS ?= ./fastcgi/

.PHONY: all build deps test test-short vet fuzz demo bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/fcgigate

deps:
	scripts/deps.sh

vet:
	$(GO) vet ./...

# The full suite, with the race detector, against real php-fpm, Consul and
# Apache. Under CI a missing program fails the tests instead of skipping them.
test: deps vet
	$(GO) test -race -count=1 -timeout 40m ./...

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

# php-fpm on 127.0.0.2:9000 serving deploy/app/public behind the gateway on
# http://127.0.0.1:8080/ until Ctrl-C.
demo: deps build
	scripts/demo.sh

# System benchmark: fcgigate against nginx on the same machine, as ratios.
bench: deps build
	$(GO) run ./cmd/fcgilab bench $(BENCHFLAGS)

clean:
	rm -rf bin/ bench-results/
	$(GO) clean -testcache
