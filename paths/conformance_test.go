package paths

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/internal/testenv"
)

// conformanceDir returns the public pcap-ng test corpus, which lives
// beside the repository (skipping, or failing in CI, when it is absent).
func conformanceDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(testenv.ModuleRoot(t), "..", "shared", "conformance", "pcapng-test-generator")
	if _, err := os.Stat(filepath.Join(dir, "output_le")); err != nil {
		testenv.SkipOrFail(t, "pcap-ng conformance corpus not found at %s: %v", dir, err)
	}
	return dir
}

// corpusPackets counts the EPBs and SPBs of a corpus file's "Block
// sequence" line.
func corpusPackets(t *testing.T, txt string) int {
	t.Helper()
	f, err := os.Open(txt)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Block sequence:"); ok {
			n := 0
			for _, b := range strings.Split(rest, ",") {
				switch strings.TrimSpace(b) {
				case "EPB", "SPB":
					n++
				}
			}
			return n
		}
	}
	t.Fatalf("%s: no Block sequence line", txt)
	return 0
}

// TestForeignPcapng analyzes every file of the conformance corpus, in both
// byte orders: each packet is reported, as a packet without metadata.
func TestForeignPcapng(t *testing.T) {
	dir := conformanceDir(t)
	var files []string
	for _, order := range []string{"output_le", "output_be"} {
		m, _ := filepath.Glob(filepath.Join(dir, order, "*", "*.pcapng"))
		if len(m) == 0 {
			testenv.SkipOrFail(t, "no files in %s", filepath.Join(dir, order))
		}
		files = append(files, m...)
	}
	total := 0
	for _, file := range files {
		rel, _ := filepath.Rel(dir, file)
		t.Run(rel, func(t *testing.T) {
			want := corpusPackets(t, strings.TrimSuffix(file, ".pcapng")+".txt")
			pkts := analyze(t, Options{KeepData: true}, nil, file)
			if len(pkts) != want {
				t.Fatalf("%d packets, want %d", len(pkts), want)
			}
			total += len(pkts)
			sum := NewSummary()
			for _, p := range pkts {
				sum.Add(p)
				if p.HasMeta || p.Outcome.Kind != Unknown || len(p.Hops) != 1 {
					t.Errorf("packet %d: meta %v outcome %v hops %d", p.ID, p.HasMeta, p.Outcome.Kind, len(p.Hops))
				}
				for i := range p.Hops {
					if h := &p.Hops[i]; h.HookName() != "capture" || h.Label() != "capture" {
						t.Errorf("packet %d: hop hook %q label %q", p.ID, h.HookName(), h.Label())
					}
				}
			}
			if sum.Packets != uint64(want) {
				t.Errorf("summary: %d packets", sum.Packets)
			}
		})
	}
	t.Logf("%d files, %d packets", len(files), total)
}
