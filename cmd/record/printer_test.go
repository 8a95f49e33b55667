package main

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/kmeta"
)

type printerNames struct{}

func (printerNames) DeviceName(netns, ifindex uint32) (string, bool) { return "veth1", ifindex == 2 }
func (printerNames) NamespaceName(netns uint32) string               { return "" }

// TestPrinter checks record's line printer: the time, the tracking id and
// the metadata the file would hold (recording.Describer) with the device,
// namespace and ifindex that the file's interface blocks hold, as a
// version 1 comment's keys (kmeta.AppendText); a free location that cannot
// be resolved is in hex, as in files.
func TestPrinter(t *testing.T) {
	hook := capture.Hook{Name: "kfree_skb", Kind: capture.HookTracepoint}
	ev := capture.Event{Hook: &hook, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), PacketID: 9, SKB: 0x10, NetNS: 5, Ifindex: 2,
		Len: 42, Protocol: 0x0800, HasDrop: true, DropReason: 2, DropLocation: 0xffffffff81000000, CPU: 1}
	copy(ev.Comm[:], "ping")
	var b strings.Builder
	w := bufio.NewWriter(&b)
	if err := printer(w, nil, printerNames{})(&ev); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	line := b.String()
	head, meta, ok := strings.Cut(line, " id=9 ")
	if !ok || head != "03:04:05.000000006" || !strings.HasSuffix(meta, "\n") {
		t.Fatalf("line %q", line)
	}
	var m kmeta.Event
	// The line's keys are a version 1 comment's: netns and ifindex too.
	if err := kmeta.NewParser().Parse([]byte("pathcap/1 "+strings.TrimSuffix(meta, "\n")), &m); err != nil {
		t.Fatalf("%q: %v", meta, err)
	}
	if m.Kind != kmeta.KindTracepoint || m.Hook != "kfree_skb" || m.Dev != "veth1" || m.Comm != "ping" || !m.HasDrop ||
		m.Location != "0xffffffff81000000" || m.NetNS != 5 || m.Ifindex != 2 || m.Len != 42 {
		t.Errorf("printed metadata %+v", m)
	}
}
