package paths

import (
	"testing"

	"github.com/pathcap/pathcap/kmeta"
)

// nfHops builds a packet received by ip_rcv that enters netfilter's input
// hook (nf_hook_slow), where chains (nft_do_chain exits with verdicts,
// "accept" or "drop") run, followed by tail: the free's hook and reason
// ("" none, "-" a free without a reason as before Linux 5.17).
func nfHops(chains []string, tail ...[2]string) *Packet {
	p := &Packet{ID: 1, HasMeta: true}
	add := func(m kmeta.Event) {
		m.NetNS, m.Ifindex, m.Dev = 7, 2, "veth1"
		p.Hops = append(p.Hops, Hop{Time: int64(len(p.Hops)+1) * 1000, Meta: &m})
	}
	add(kmeta.Event{Kind: kmeta.KindTracepoint, Hook: "netif_receive_skb"})
	add(kmeta.Event{Kind: kmeta.KindKprobe, Hook: "ip_rcv"})
	add(kmeta.Event{Kind: kmeta.KindKprobe, Hook: "nf_hook_slow", NFHook: "input", NFFamily: "ip"})
	for i, v := range chains {
		add(kmeta.Event{Kind: kmeta.KindFexit, Hook: "nft_do_chain", NFHook: "input", NFFamily: "ip",
			NFTFamily: "inet", NFTTable: "filter", NFTChain: []string{"input", "input2"}[i%2], NFVerdict: v, HasRetVal: true})
	}
	for _, t := range tail {
		m := kmeta.Event{Kind: kmeta.KindTracepoint, Hook: t[0]}
		switch t[1] {
		case "":
		case "-":
			m.Location = "nf_hook_slow+0x9e"
		default:
			m.HasDrop, m.Reason, m.Location = true, t[1], "nf_hook_slow+0x9e"
		}
		add(m)
	}
	p.Finish()
	return p
}

// TestOutcomeByNetfilter checks which drops are put on an nftables chain
// or a netfilter hook: only a drop the kernel made (the free), with a
// reason a netfilter drop has, after a chain whose verdict was drop (or,
// without a chain, with the reason NETFILTER_DROP itself); never a drop
// after the last chain accepted, never a packet the kernel did not drop.
func TestOutcomeByNetfilter(t *testing.T) {
	free := func(reason string) [2]string { return [2]string{"kfree_skb", reason} }
	for _, c := range []struct {
		name                 string
		p                    *Packet
		kind                 OutcomeKind
		reason, table, chain string
		hook                 string
	}{
		{"chain drop", nfHops([]string{"drop"}, free("NETFILTER_DROP")), Dropped, "NETFILTER_DROP", "filter", "input", "input"},
		{"second chain drops", nfHops([]string{"accept", "drop"}, free("NETFILTER_DROP")), Dropped, "NETFILTER_DROP", "filter", "input2", "input"},
		{"chain drop, no reason (5.10)", nfHops([]string{"drop"}, free("-")), Dropped, "", "filter", "input", "input"},
		{"no chain recorded, NETFILTER_DROP", nfHops(nil, free("NETFILTER_DROP")), Dropped, "NETFILTER_DROP", "", "", "input"},
		{"no chain recorded, no reason", nfHops(nil, free("-")), Dropped, "", "", "", ""},
		{"chain accepts, dropped later", nfHops([]string{"accept"}, free("NO_SOCKET")), Dropped, "NO_SOCKET", "", "", ""},
		{"chain accepts, then a netfilter drop elsewhere", nfHops([]string{"accept"}, free("NETFILTER_DROP")), Dropped, "NETFILTER_DROP", "", "", ""},
		{"chain drop but freed for another reason", nfHops([]string{"drop"}, free("NO_SOCKET")), Dropped, "NO_SOCKET", "", "", ""},
		{"chain drop, no free recorded", nfHops([]string{"drop"}), Unknown, "", "", "", ""},
		{"chain accepts, delivered", nfHops([]string{"accept"}, [2]string{"skb_copy_datagram_iovec", ""}, [2]string{"consume_skb", ""}), Delivered, "", "", "", ""},
	} {
		o := c.p.Outcome
		if o.Kind != c.kind || o.Reason != c.reason || o.NFTTable != c.table || o.NFTChain != c.chain || o.NFHook != c.hook {
			t.Errorf("%s: outcome %s reason %q table %q chain %q hook %q, want %s %q %q %q %q", c.name, o.Kind, o.Reason, o.NFTTable, o.NFTChain, o.NFHook, c.kind, c.reason, c.table, c.chain, c.hook)
		}
		if c.table != "" && (o.NFTFamily != "inet" || o.NFFamily != "ip") {
			t.Errorf("%s: families %q %q", c.name, o.NFTFamily, o.NFFamily)
		}
	}
}

// TestOutcomeFreedInsideChain checks the kernels that free a dropped skb
// inside nft_do_chain (Linux 6.4+): the chain's exit comes after the free,
// paired with its entry, with the verdict stolen; the packet is dropped by
// that chain, and an earlier chain's accept does not matter.
func TestOutcomeFreedInsideChain(t *testing.T) {
	p := &Packet{ID: 1, HasMeta: true}
	add := func(m kmeta.Event) {
		m.NetNS, m.Ifindex, m.Dev = 7, 2, "veth1"
		if m.Hook != "nft_do_chain" || m.Kind != kmeta.KindFexit || m.NFVerdict != kmeta.NFStolen {
			m.Len, m.Proto = 60, 0x0800
		}
		p.Hops = append(p.Hops, Hop{Time: int64(len(p.Hops)+1) * 1000, Meta: &m})
	}
	add(kmeta.Event{Kind: kmeta.KindTracepoint, Hook: "netif_receive_skb"})
	add(kmeta.Event{Kind: kmeta.KindFentry, Hook: "nft_do_chain", NFHook: "prerouting", NFFamily: "ip"})
	add(kmeta.Event{Kind: kmeta.KindFexit, Hook: "nft_do_chain", NFHook: "prerouting", NFFamily: "ip", NFTFamily: "ip", NFTTable: "nat", NFTChain: "pre", NFVerdict: kmeta.NFAccept, HasRetVal: true, RetVal: 1})
	add(kmeta.Event{Kind: kmeta.KindKprobe, Hook: "ip_local_deliver"})
	add(kmeta.Event{Kind: kmeta.KindKprobe, Hook: "nf_hook_slow", NFHook: "input", NFFamily: "ip"})
	add(kmeta.Event{Kind: kmeta.KindFentry, Hook: "nft_do_chain", NFHook: "input", NFFamily: "ip"})
	add(kmeta.Event{Kind: kmeta.KindTracepoint, Hook: "kfree_skb", HasDrop: true, Reason: "NETFILTER_DROP", Location: "nft_do_chain+0x4cf [nf_tables]"})
	add(kmeta.Event{Kind: kmeta.KindFexit, Hook: "nft_do_chain", NFHook: "input", NFFamily: "ip", NFTFamily: "inet", NFTTable: "filter", NFTChain: "input", NFVerdict: kmeta.NFStolen, HasRetVal: true, RetVal: 0x10002})
	p.Finish()
	o := p.Outcome
	if o.Kind != Dropped || o.Reason != "NETFILTER_DROP" || o.NFTFamily != "inet" || o.NFTTable != "filter" || o.NFTChain != "input" || o.NFHook != "input" || o.NFFamily != "ip" {
		t.Errorf("outcome %s %q by %q %q %q at %q %q", o.Kind, o.Reason, o.NFTFamily, o.NFTTable, o.NFTChain, o.NFFamily, o.NFHook)
	}
	// The exit after the free carries no packet: no change is claimed.
	if c := p.Hops[len(p.Hops)-1].Changed; c != 0 {
		t.Errorf("the exit after the free: changed %v", c)
	}
}

// TestStatsByChain checks that drops are counted by the chain that
// decided them.
func TestStatsByChain(t *testing.T) {
	s := NewSummary()
	for range 3 {
		s.Add(nfHops([]string{"drop"}, [2]string{"kfree_skb", "NETFILTER_DROP"}))
	}
	s.Add(nfHops(nil, [2]string{"kfree_skb", "NETFILTER_DROP"}))
	s.Add(nfHops([]string{"accept"}, [2]string{"kfree_skb", "NO_SOCKET"}))
	got := map[string]uint64{}
	for _, d := range s.Drops() {
		for _, c := range d.Chains {
			got[d.Reason+" by "+c.Name] = c.Count
		}
	}
	want := map[string]uint64{
		"NETFILTER_DROP by nftables table inet filter chain input": 3,
		"NETFILTER_DROP by netfilter hook ip input":                1,
	}
	if len(got) != len(want) {
		t.Fatalf("chains %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("chains %v, want %v", got, want)
		}
	}
}
