package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/paths/render"
)

// TestExportSelection checks that export honours the selection flags: the
// rows of export --outcome dropped are exactly the hops of the packets
// paths --json --outcome dropped reports.
func TestExportSelection(t *testing.T) {
	rec := "../../testdata/recordings/host-veth.pcapng"
	run := func(args ...string) string {
		var stdout, stderr bytes.Buffer
		if err := newApp(&stdout, &stderr).Run(append([]string{"analyze"}, args...)); err != nil {
			t.Fatalf("analyze %v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}
	type key struct {
		id    uint64
		ts    int64
		hook  string
		frame int64
	}
	want := map[key]bool{}
	for _, line := range strings.Split(strings.TrimSpace(run("paths", "--json", "--outcome", "dropped", rec)), "\n") {
		var p render.PacketJSON
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatal(err)
		}
		for _, h := range p.Hops {
			want[key{id: p.ID, ts: h.TS, hook: h.Hook}] = true
		}
	}
	if len(want) == 0 {
		t.Fatal("the recording has no dropped packet")
	}
	rows := strings.Split(strings.TrimSpace(run("export", "--outcome", "dropped", "-o", "-", rec)), "\n")
	all := strings.Split(strings.TrimSpace(run("export", "-o", "-", rec)), "\n")
	if len(rows) != len(want) || len(rows) >= len(all) {
		t.Fatalf("export --outcome dropped wrote %d rows (of %d events), want %d", len(rows), len(all), len(want))
	}
	for _, line := range rows {
		var r render.Row
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if !want[key{id: r.ID, ts: r.TS, hook: r.Hook}] {
			t.Errorf("row %s is not a hop of a dropped packet", line)
		}
	}
}
