package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/recordings")

// TestGoldenRecordings analyzes every recording in testdata/recordings
// (made by record on real kernels) and compares the report, the JSON paths
// and the JSON statistics with the golden files beside it.
func TestGoldenRecordings(t *testing.T) {
	recs, _ := filepath.Glob("../../testdata/recordings/*.pcapng")
	if len(recs) == 0 {
		t.Fatal("no recordings in testdata/recordings")
	}
	for _, rec := range recs {
		base := strings.TrimSuffix(rec, ".pcapng")
		for _, c := range []struct {
			suffix string
			args   []string
		}{
			{".report.txt", []string{"report"}},
			{".paths.jsonl", []string{"paths", "--json"}},
			{".stats.json", []string{"stats", "--json"}},
		} {
			t.Run(filepath.Base(base)+c.suffix, func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				args := append(append([]string{"analyze"}, c.args...), rec)
				if err := newApp(&stdout, &stderr).Run(args); err != nil {
					t.Fatalf("analyze %v: %v\n%s", c.args, err, stderr.String())
				}
				golden := base + c.suffix
				if *update {
					if err := os.WriteFile(golden, stdout.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./cmd/analyze -run Golden -update to create it)", err)
				}
				if !bytes.Equal(stdout.Bytes(), want) {
					t.Errorf("analyze %v differs from %s:\n%s", c.args, golden, firstDiff(stdout.String(), string(want)))
				}
			})
		}
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n got: " + gl + "\nwant: " + wl
		}
	}
	return ""
}
