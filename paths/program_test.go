package paths

import (
	"testing"

	"github.com/pathcap/pathcap/kmeta"
)

// progHops builds a packet received on a device, seen by a tc program that
// returns ret, followed by tail (hook name and drop reason; a reason of "-"
// is a free without a reason, as kfree_skb before Linux 5.17).
func progHops(ret int64, tail ...[2]string) *Packet {
	p := &Packet{ID: 1, HasMeta: true}
	add := func(m kmeta.Event) {
		m.NetNS, m.Ifindex, m.Dev = 7, 2, "veth1"
		p.Hops = append(p.Hops, Hop{Time: int64(len(p.Hops)+1) * 1000, Meta: &m})
	}
	add(kmeta.Event{Kind: kmeta.KindTracepoint, Hook: "netif_receive_skb"})
	prog := kmeta.Event{Hook: "bpf_prog_3b185187f1855c4c_drop_flow", ProgType: kmeta.ProgTC, Prog: "drop_flow", ProgID: 9}
	entry, exit := prog, prog
	entry.Kind = kmeta.KindFentry
	exit.Kind, exit.RetVal, exit.HasRetVal = kmeta.KindFexit, ret, true
	add(entry)
	add(exit)
	for _, t := range tail {
		m := kmeta.Event{Kind: kmeta.KindTracepoint, Hook: t[0]}
		switch t[1] {
		case "":
		case "-":
			m.HasDrop = false
			m.Location = "tcf_classify+0x10"
		default:
			m.HasDrop, m.Reason = true, t[1]
		}
		add(m)
	}
	p.Finish()
	return p
}

// TestOutcomeByTCProgram checks which outcomes a tc program's verdict
// decides: a drop only where the kernel freed the skb, after the verdict
// TC_ACT_SHOT, with a reason tc drops have; never by TC_ACT_OK or
// TC_ACT_UNSPEC, never a drop the kernel did not make.
func TestOutcomeByTCProgram(t *testing.T) {
	for _, c := range []struct {
		name            string
		p               *Packet
		kind            OutcomeKind
		reason, program string
		verdict         string
	}{
		{"shot, TC_INGRESS", progHops(kmeta.TCActShot, [2]string{"kfree_skb", "TC_INGRESS"}), Dropped, "TC_INGRESS", "drop_flow", "TC_ACT_SHOT"},
		{"shot, no reason (5.10)", progHops(kmeta.TCActShot, [2]string{"kfree_skb", "-"}), Dropped, "", "drop_flow", "TC_ACT_SHOT"},
		{"shot, NOT_SPECIFIED (5.17)", progHops(kmeta.TCActShot, [2]string{"kfree_skb", "NOT_SPECIFIED"}), Dropped, "NOT_SPECIFIED", "drop_flow", "TC_ACT_SHOT"},
		{"shot but no free recorded", progHops(kmeta.TCActShot), Unknown, "", "", ""},
		{"ok, then dropped elsewhere", progHops(kmeta.TCActOK, [2]string{"kfree_skb", "NO_SOCKET"}), Dropped, "NO_SOCKET", "", ""},
		{"unspec, then dropped elsewhere", progHops(kmeta.TCActUnspec, [2]string{"kfree_skb", "NO_SOCKET"}), Dropped, "NO_SOCKET", "", ""},
		{"ok, delivered", progHops(kmeta.TCActOK, [2]string{"skb_copy_datagram_iovec", ""}, [2]string{"consume_skb", ""}), Delivered, "", "", ""},
		{"shot, but freed for another reason", progHops(kmeta.TCActShot, [2]string{"kfree_skb", "NO_SOCKET"}), Dropped, "NO_SOCKET", "", ""},
		{"redirected, transmitted", progHops(kmeta.TCActRedirect, [2]string{"net_dev_start_xmit", ""}), Transmitted, "", "drop_flow", "TC_ACT_REDIRECT"},
		{"redirected, dropped later", progHops(kmeta.TCActRedirect, [2]string{"kfree_skb", "QDISC_DROP"}), Dropped, "QDISC_DROP", "", ""},
	} {
		o := c.p.Outcome
		if o.Kind != c.kind || o.Reason != c.reason || o.Program != c.program || o.Verdict != c.verdict {
			t.Errorf("%s: outcome %s reason %q program %q verdict %q, want %s %q %q %q", c.name, o.Kind, o.Reason, o.Program, o.Verdict, c.kind, c.reason, c.program, c.verdict)
		}
		if c.program != "" && o.ProgType != kmeta.ProgTC {
			t.Errorf("%s: program type %q", c.name, o.ProgType)
		}
	}
}

// xdpHops builds a frame an XDP program saw and returned ret for.
func xdpHops(ret int64) *Packet {
	p := &Packet{ID: 1, HasMeta: true}
	prog := kmeta.Event{Hook: "bpf_prog_0011223344556677_xdp_drop", ProgType: kmeta.ProgXDP, Prog: "xdp_drop", ProgID: 5, NetNS: 7, Ifindex: 2, Dev: "veth1"}
	entry, exit := prog, prog
	entry.Kind = kmeta.KindFentry
	exit.Kind, exit.RetVal, exit.HasRetVal = kmeta.KindFexit, ret, true
	p.Hops = []Hop{{Time: 1000, Meta: &entry}, {Time: 2000, Meta: &exit}}
	p.Finish()
	return p
}

// TestOutcomeByXDPProgram checks the outcomes of frames XDP programs
// decided: XDP_DROP and XDP_ABORTED are drops, XDP_TX a transmission,
// XDP_REDIRECT and XDP_PASS not a fate of this packet.
func TestOutcomeByXDPProgram(t *testing.T) {
	for _, c := range []struct {
		ret             int64
		kind            OutcomeKind
		program, reason string
	}{
		{kmeta.XDPDrop, Dropped, "xdp_drop", "XDP_DROP"},
		{kmeta.XDPAborted, Dropped, "xdp_drop", "XDP_ABORTED"},
		{kmeta.XDPTx, Transmitted, "xdp_drop", ""},
		{kmeta.XDPRedirect, Unknown, "xdp_drop", ""},
		{kmeta.XDPPass, Unknown, "", ""},
		{77, Unknown, "", ""},
	} {
		o := xdpHops(c.ret).Outcome
		if o.Kind != c.kind || o.Program != c.program || o.Reason != c.reason {
			t.Errorf("%s: outcome %s program %q reason %q, want %s %q %q", kmeta.VerdictName(kmeta.ProgXDP, c.ret), o.Kind, o.Program, o.Reason, c.kind, c.program, c.reason)
		}
		if c.ret == kmeta.XDPPass && o.Why == "" {
			t.Errorf("XDP_PASS: no why")
		}
	}
}
