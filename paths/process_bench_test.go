package paths_test

import (
	"os"
	"testing"

	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/paths/render"
)

// BenchmarkProcessFile analyzes the recording named by PATHCAP_BENCH_FILE
// (e.g. one made by go run ./bench/genrec) and writes JSON lines to nowhere.
func BenchmarkProcessFile(b *testing.B) {
	name := os.Getenv("PATHCAP_BENCH_FILE")
	if name == "" {
		b.Skip("set PATHCAP_BENCH_FILE to a recording")
	}
	st, err := os.Stat(name)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	for b.Loop() {
		in, err := paths.Open([]string{name})
		if err != nil {
			b.Fatal(err)
		}
		var line []byte
		events := 0
		err = paths.Process(in, paths.Options{}, nil, func(p *paths.Packet) error {
			line = render.AppendJSON(line[:0], p)
			events += len(p.Hops)
			return nil
		})
		in.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(events), "events/op")
	}
}
