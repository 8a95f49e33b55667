package htmlreport

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/internal/pagecheck"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/paths/render"
)

// tcShotPackets are n packets a tc program shot (TC_ACT_SHOT, then
// kfree_skb with TC_INGRESS) and one it passed and the stack delivered.
func tcShotPackets(n int) []*paths.Packet {
	var out []*paths.Packet
	for i := range n + 1 {
		p := &paths.Packet{ID: uint64(i + 1), HasMeta: true}
		mk := func(t int64, m kmeta.Event) paths.Hop {
			m.Dev, m.NetNS, m.Ifindex, m.Len = "veth1", 7, 2, 60
			return paths.Hop{Time: 1_000_000_000 + int64(i)*10_000 + t, Meta: &m}
		}
		prog := kmeta.Event{Hook: "bpf_prog_3b185187f1855c4c_drop_flow", ProgType: kmeta.ProgTC, Prog: "drop_flow", ProgID: 9}
		entry, exit := prog, prog
		entry.Kind = kmeta.KindFentry
		exit.Kind, exit.HasRetVal = kmeta.KindFexit, true
		last := kmeta.Event{Kind: kmeta.KindTracepoint, Hook: "kfree_skb", HasDrop: true, Reason: "TC_INGRESS", Location: "tcf_classify+0x1"}
		if i == n {
			exit.RetVal = kmeta.TCActOK
			last = kmeta.Event{Kind: kmeta.KindTracepoint, Hook: "skb_copy_datagram_iovec"}
		} else {
			exit.RetVal = kmeta.TCActShot
		}
		p.Hops = []paths.Hop{mk(0, kmeta.Event{Kind: kmeta.KindTracepoint, Hook: "netif_receive_skb"}), mk(100, entry), mk(200, exit), mk(300, last)}
		p.Finish()
		out = append(out, p)
	}
	return out
}

// TestPageShowsDropsByProgram checks that the drops a tc program shot are
// counted by program in stats --json (drops[].programs) and that the page
// shows exactly those figures.
func TestPageShowsDropsByProgram(t *testing.T) {
	r := New(Options{})
	sum := paths.NewSummary()
	for _, p := range tcShotPackets(3) {
		r.Add(p)
		sum.Add(p)
	}
	stats := render.AppendSummaryJSON(nil, sum, 10)
	if !bytes.Contains(stats, []byte(`"programs":[{"program":"tc program drop_flow","count":3}]`)) {
		t.Errorf("stats JSON lacks the drops by program: %s", stats)
	}
	page, doc := renderPage(t, r)
	for _, p := range pagecheck.Compare(stats, pagecheck.Stats(doc)) {
		t.Error(p)
	}
	if !strings.Contains(string(page), `data-stat="drops.0.programs.0.program"`) {
		t.Error("the page does not show the drops' program")
	}
	var text bytes.Buffer
	if err := render.WriteSummaryText(&text, sum, render.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "by tc program drop_flow") {
		t.Errorf("stats text lacks the program:\n%s", text.String())
	}
}
