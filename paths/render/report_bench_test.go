package render_test

import (
	"bufio"
	"io"
	"os"
	"testing"

	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/paths/render"
)

// BenchmarkReportFile analyzes the recording named by PATHCAP_BENCH_FILE and
// writes the text report to nowhere.
func BenchmarkReportFile(b *testing.B) {
	name := os.Getenv("PATHCAP_BENCH_FILE")
	if name == "" {
		b.Skip("set PATHCAP_BENCH_FILE")
	}
	for b.Loop() {
		in, err := paths.Open([]string{name})
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriter(io.Discard)
		sum := paths.NewSummary()
		tw := render.NewTextWriter(w, render.TextOptions{})
		err = paths.Process(in, paths.Options{}, nil, func(p *paths.Packet) error {
			sum.Add(p)
			return tw.WritePacket(p)
		})
		in.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
}
