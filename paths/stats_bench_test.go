package paths

import (
	"testing"

	"github.com/pathcap/pathcap/internal/testrec"
)

// BenchmarkSummaryAdd counts the packets of the scenario recording, one
// after the other, into one Summary.
func BenchmarkSummaryAdd(b *testing.B) {
	pkts := analyze(b, Options{}, nil, testrec.Crafted(b, "scenario.pcapng"))
	s := NewSummary()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Add(pkts[i%len(pkts)])
	}
}
