package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

// BenchmarkCommands runs analyze's commands on the recording named by
// PATHCAP_BENCH_FILE (e.g. one of bench/analyze-real.sh), output to
// nowhere, so that the whole command can be profiled:
//
//	PATHCAP_BENCH_FILE=F go test ./cmd/analyze -run '^$' -bench Commands/stats -cpuprofile cpu.prof
func BenchmarkCommands(b *testing.B) {
	name := os.Getenv("PATHCAP_BENCH_FILE")
	if name == "" {
		b.Skip("set PATHCAP_BENCH_FILE to a recording")
	}
	st, err := os.Stat(name)
	if err != nil {
		b.Fatal(err)
	}
	for _, cmd := range []string{"report", "paths --json", "stats", "stats --json"} {
		b.Run(strings.ReplaceAll(cmd, " --", "-"), func(b *testing.B) {
			b.SetBytes(st.Size())
			args := append(append([]string{"analyze"}, strings.Fields(cmd)...), name)
			for b.Loop() {
				if err := newApp(io.Discard, io.Discard).Run(args); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
