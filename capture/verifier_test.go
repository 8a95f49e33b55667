package capture

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/pathcap/pathcap/bpf"
)

// verifierBudget is the most instructions this host's verifier may walk
// for one program. Every verifier stops at 1,000,000; those of Linux 5.10
// and 6.1 prune fewer paths than a recent one and walk more for the same
// program (a tracepoint program that took 704,000 here was refused as too
// large by 6.1). The VM tests load the real thing on those kernels; this
// budget catches a regression on any host, in seconds.
const verifierBudget = 150000

// costlyFilters are the expressions whose programs the verifier walks
// longest: protochain is unrolled nine times (internal/pcapfilter).
var costlyFilters = []string{
	"",
	"ip",
	"tcp port 80",
	"protochain 17",
	"ip6 protochain 58",
	"(tcp[tcpflags] & tcp-syn != 0 and ip6) or (udp and ip[6:2] & 0x1fff = 0)",
}

var processedRE = regexp.MustCompile(`processed (\d+) insns`)

// processedInsns is the instruction count of a verifier log loaded with
// ebpf.LogLevelStats.
func processedInsns(log string) (int, error) {
	m := processedRE.FindStringSubmatch(log)
	if m == nil {
		return 0, fmt.Errorf("no instruction count in the verifier log (%d bytes)", len(log))
	}
	return strconv.Atoi(m[1])
}

// TestVerifierCost loads the tracepoint program of net_dev_queue and
// kfree_skb and the kprobe program with each of costlyFilters, in the
// settings recent kernels get (filter loads in place) and in those of
// Linux 5.10 to 6.12 (filter bytes copied with bpf_probe_read_kernel,
// kprobes without attach cookies), clones linked by buffer in both,
// and checks what the verifier walked against verifierBudget.
func TestVerifierCost(t *testing.T) {
	requireRoot(t)
	requireBTF(t)
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	all, err := discoverHooks(kernel, kernelTable(kernel))
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := selectHooks(all, []string{"net_dev_queue", "kfree_skb"})
	if err != nil {
		t.Fatal(err)
	}
	type mode struct {
		name          string
		copied, links bool
		cookie        bool
		changed       bool // Config.BytesChanged: the fingerprint, two reservations
		shared        bool // a raw tracepoint program shared by a layout (Linux 6.10+)
	}
	modes := []mode{
		{name: "in place, clone links", links: true, cookie: true},
		{name: "copied, no cookies", copied: true, links: true},
		{name: "in place, bytes changed", links: true, cookie: true, changed: true},
		{name: "copied, bytes changed", copied: true, links: true, changed: true},
		{name: "in place, shared", links: true, cookie: true, shared: true},
	}
	cast := haveKfunc(kernel, "bpf_rdonly_cast")
	shared := haveSharedTracepoints(cast)
	opts := ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kernel, LogLevel: ebpf.LogLevelStats}}
	worst := 0
	for _, expr := range costlyFilters {
		for _, m := range modes {
			if m.shared && !shared {
				continue // Linux before 6.10 loads no shared program
			}
			k := hookKnobs{snaplen: 256, ncpu: 2, trackSets: 1 << 14, track: true, retArg: -1,
				taskBTF: true, copyBytes: true, probeRead: m.copied, linkClones: m.links, onlyChanged: m.changed, rdonlyCast: cast, cookieHook: m.shared}
			bufSize := 64
			if expr != "" {
				f, err := CompileFilter(expr)
				if err != nil {
					t.Fatalf("%q: %v", expr, err)
				}
				l := f.layout(int(k.snaplen))
				k.filter = f.body(l.bufSize)
				k.window = uint32(l.window)
				bufSize = l.bufSize
			}
			check := func(what string, log string) {
				t.Helper()
				n, err := processedInsns(log)
				if err != nil {
					t.Fatalf("%q, %s, %s: %v", expr, m.name, what, err)
				}
				worst = max(worst, n)
				t.Logf("%-22q %-30s %-24s %7d instructions", expr, m.name, what, n)
				if n > verifierBudget {
					t.Errorf("%q, %s: the verifier walked %d instructions of %s, over the budget of %d (older kernels refuse such programs)", expr, m.name, n, what, verifierBudget)
				}
			}
			for i := range hooks {
				load := bpf.LoadSkb
				if m.shared {
					load = bpf.LoadSkbShared
				}
				spec, err := load()
				if err != nil {
					t.Fatal(err)
				}
				spec.Maps[bpf.SkbMapFilterBuf].ValueSize = uint32(bufSize)
				prog, err := loadHook(spec, &hooks[i], opts, k)
				if err != nil {
					t.Fatalf("%q, %s: %v", expr, m.name, err)
				}
				check("tracepoint "+hooks[i].Name, prog.VerifierLog)
				prog.Close()
			}
			spec, err := kprobeSpec(k, false, m.cookie)
			if err != nil {
				t.Fatal(err)
			}
			spec.Maps[bpf.SkbMapFilterBuf].ValueSize = uint32(bufSize)
			coll, err := ebpf.NewCollectionWithOptions(spec, opts)
			if errors.Is(err, ebpf.ErrNotSupported) {
				t.Logf("kprobe programs not loadable here: %v", err)
				continue
			}
			if err != nil {
				t.Fatalf("%q, %s: kprobe programs: %v", expr, m.name, err)
			}
			check("kprobe", coll.Programs[bpf.KprobeProgOnKprobe].VerifierLog)
			coll.Close()
		}
	}
	t.Logf("worst: %d instructions (budget %d, verifier limit 1000000)", worst, verifierBudget)
}
