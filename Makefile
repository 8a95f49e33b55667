# pathcap: build, test, benchmark and regenerate.
GO ?= go
FUZZTIME ?= 10s

.PHONY: all setup build test check fuzz bench generate demo clean

all: build

setup:
	@bash scripts/setup.sh

build:
	$(GO) build -o bin/ ./cmd/...

# Every test: unit, interop with tshark/tcpdump, root end-to-end (skipped
# with a reason when not root, failing instead when CI is set), then each
# fuzz target for FUZZTIME.
test: setup check
	$(GO) test -count=1 ./...
	bash scripts/fuzz.sh $(FUZZTIME)

# Static checks: formatting, vet, the pure-Go builds for other systems, and
# the generated BPF objects still compiling from their sources.
check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	CGO_ENABLED=0 GOOS=darwin $(GO) build ./pcapng/... ./kmeta/...
	@if [ -d cmd/analyze ] && ls cmd/analyze/*.go >/dev/null 2>&1; then \
		CGO_ENABLED=0 GOOS=darwin $(GO) build -o /dev/null ./cmd/analyze && \
		CGO_ENABLED=0 GOOS=windows $(GO) build -o /dev/null ./cmd/analyze; fi
	@# The committed BPF objects must still build from their C sources.
	bash bpf/generate.sh
	$(GO) build ./bpf/ ./capture/
	@git diff --quiet -- bpf/ 2>/dev/null || echo "note: regenerated BPF objects differ from the committed ones (compiler version?)"

fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

bench: setup
	bash bench/run.sh

generate: setup
	bash bpf/generate.sh

demo: setup
	bash scripts/demo.sh

clean:
	rm -rf bin out
