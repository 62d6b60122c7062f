# Canopy — build, run, test.
GO        ?= go
PKGS      := ./...
# Fuzz budgets are counts, not durations: with a duration, Go 1.26's fuzz
# coordinator can report "context deadline exceeded" at the deadline with no
# failing input (golang/go#75804, fixed in Go 1.27), which fails CI for nothing.
FUZZTIME  ?= 10000x
BIN       := bin/canopy

.PHONY: all build run demo test test-short fuzz bench bench-smoke lint tidy-check clean

all: build

## build: compile the canopy binary into bin/
build:
	$(GO) build -o $(BIN) ./cmd/canopy

## run: run a node on the default ports, sharing ./shared if it exists
run: build
	@mkdir -p shared
	./$(BIN) up --share shared

## demo: start a small network on loopback (2 supernodes, 3 leaves) and show a search and a download
demo: build
	./$(BIN) demo

## test: the whole test suite, with the race detector
test:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## test-short: the quick tests only
test-short:
	$(GO) test -short -count=1 $(PKGS)

## fuzz: run every fuzz target for FUZZTIME (executions) each
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## bench: run the benchmarks once each (they time long workloads internally;
## see BENCHMARKS.md for what each measures and for repeated runs)
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m $(PKGS)

## bench-smoke: every benchmark once at its small sizes (-short), so none rots (CI)
bench-smoke:
	$(GO) test -short -run '^$$' -bench . -benchtime 1x $(PKGS)

## lint: gofmt, go vet and go mod tidy must have nothing to say
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) mod tidy -diff

clean:
	rm -rf bin
