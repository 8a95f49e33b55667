package render

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/pcapng"
)

// TestExportDeciders checks the export columns of the events that say who
// decided: a traced tc program's exit (program, verdict), nft_do_chain's
// exit (nf_hook, nft_chain, verdict), nf_hook_slow (nf_hook only).
func TestExportDeciders(t *testing.T) {
	var buf bytes.Buffer
	w, err := pcapng.NewWriterSize(&buf, &pcapng.Section{UserApplication: "pathcap test"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := w.AddInterface(&pcapng.Interface{LinkType: pcapng.LinkTypeEthernet, Name: "veth1", TSResolution: pcapng.Nanoseconds})
	if err != nil {
		t.Fatal(err)
	}
	events := []kmeta.Event{
		{Kind: "fexit", Hook: "bpf_prog_3b185187f1855c4c_drop_flow", ProgType: kmeta.ProgTC, Prog: "drop_flow", ProgID: 9, RetVal: 2, HasRetVal: true},
		{Kind: "kprobe", Hook: "nf_hook_slow", NFHook: "input", NFFamily: "ip"},
		{Kind: "fexit", Hook: "nft_do_chain", NFHook: "input", NFFamily: "ip", NFTFamily: "inet", NFTTable: "filter", NFTChain: "input", NFVerdict: kmeta.NFDrop, HasRetVal: true},
	}
	frame := make([]byte, 42)
	frame[12], frame[13] = 0x08, 0x00
	for i := range events {
		events[i].Len, events[i].Proto, events[i].Comm = 28, 0x0800, "ping"
		p := &pcapng.Packet{InterfaceID: id, Timestamp: time.Unix(1800000000, int64(i)), Data: frame, OriginalLength: 42,
			Options: pcapng.PacketOptions{Comments: [][]byte{kmeta.AppendComment(nil, &events[i])}, PacketID: 7, HasPacketID: true}}
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "deciders.pcapng")
	if err := os.WriteFile(name, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	want := [][4]string{
		{"drop_flow", "TC_ACT_SHOT", "", ""},
		{"", "", "ip input", ""},
		{"", "drop", "ip input", "inet filter input"},
	}
	lines := strings.Split(strings.TrimSuffix(string(export(t, name, ExportJSONL)), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d rows, want %d", len(lines), len(want))
	}
	for i, l := range lines {
		var r Row
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if got := [4]string{r.Program, r.Verdict, r.NFHook, r.NFTChain}; got != want[i] {
			t.Errorf("row %d (%s): program, verdict, nf_hook, nft_chain %q, want %q", i, r.Hook, got, want[i])
		}
	}
}
