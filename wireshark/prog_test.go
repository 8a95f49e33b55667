package wireshark_test

import (
	"reflect"
	"testing"

	"github.com/pathcap/pathcap/kmeta"
)

// TestProgramFields checks the fields of events on traced tc and XDP
// programs (record --trace-tc, --trace-xdp) and of path views naming the
// program that decided the outcome.
func TestProgramFields(t *testing.T) {
	t.Parallel()
	tc := kmeta.Event{Kind: kmeta.KindFexit, Hook: "bpf_prog_3b185187f1855c4c_drop_flow", NetNS: 7, Ifindex: 2, SKB: 0x10, Len: 60,
		Comm: "ping", ProgType: kmeta.ProgTC, Prog: "drop_flow", ProgID: 42, ProgTag: "3b185187f1855c4c", RetVal: 2, HasRetVal: true}
	xdp := kmeta.Event{Kind: kmeta.KindFentry, Hook: "bpf_prog_0011223344556677_xdp_drop", NetNS: 7, Ifindex: 2, Len: 60,
		Comm: "swapper/0", ProgType: kmeta.ProgXDP, Prog: "xdp_drop", ProgID: 5, ProgTag: "0011223344556677"}
	plain := kmeta.Event{Kind: kmeta.KindTracepoint, Hook: "netif_receive_skb", NetNS: 7, Ifindex: 2, SKB: 0x10, Len: 60, Comm: "ping"}
	view := "pathcap-path/1 id=9 outcome=dropped reason=TC_INGRESS program=drop_flow program_type=tc verdict=TC_ACT_SHOT hops=2 duration_ns=10 path=a>b"
	hop := "pathcap-hop/1 n=2 dt_ns=10 hook=fexit:bpf_prog_3b185187f1855c4c_drop_flow netns=7 ifindex=2 len=60 program=drop_flow verdict=TC_ACT_SHOT"
	file := writeCapture(t, [][]string{{comment(tc)}, {comment(xdp)}, {comment(plain)}, {view, hop}})
	got := fields(t, file, "", "pathcap.prog_type", "pathcap.prog", "pathcap.prog_id", "pathcap.prog_tag", "pathcap.ret", "pathcap.verdict")
	want := [][]string{
		{"1", "tc", "drop_flow", "42", "3b185187f1855c4c", "2", ""},
		{"2", "xdp", "xdp_drop", "5", "0011223344556677", "", ""},
		{"3", "", "", "", "", "", ""},
		{"4", "tc", "drop_flow,drop_flow", "", "", "", "TC_ACT_SHOT,TC_ACT_SHOT"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fields:\n got %q\nwant %q", got, want)
	}
	checkFilters(t, file, []filterCase{
		{`pathcap.prog == "drop_flow"`, []int{1, 4}},
		{`pathcap.prog_type == "xdp"`, []int{2}},
		{`pathcap.verdict == "TC_ACT_SHOT"`, []int{4}},
		{`pathcap.prog_id == 42`, []int{1}},
	})
}
