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
# In a git checkout, the tests must leave it as they found it (no file
# written into the source tree): git status is compared before and after.
test: setup check
	@before=$$(git status --porcelain 2>/dev/null || true); \
	$(GO) test -count=1 -timeout 45m ./... && bash scripts/fuzz.sh $(FUZZTIME) || exit 1; \
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		after=$$(git status --porcelain); \
		if [ "$$after" != "$$before" ]; then \
			echo "the tests changed the checkout (git status --porcelain after them):"; echo "$$after"; exit 1; \
		fi; \
	fi

# Static checks: formatting, vet, the pure-Go builds for other systems, and
# the committed BPF objects being exactly what their sources give (they are
# regenerated in a scratch copy; the check fails and names the stale files).
check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	CGO_ENABLED=0 GOOS=darwin $(GO) build ./pcapng/... ./kmeta/...
	@if [ -d cmd/analyze ] && ls cmd/analyze/*.go >/dev/null 2>&1; then \
		CGO_ENABLED=0 GOOS=darwin $(GO) build -o /dev/null ./cmd/analyze && \
		CGO_ENABLED=0 GOOS=windows $(GO) build -o /dev/null ./cmd/analyze; fi
	sh scripts/check-bpf.sh
	$(GO) build ./bpf/ ./capture/

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
