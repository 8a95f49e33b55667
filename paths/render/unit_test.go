package render

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
)

func TestAppendJSONString(t *testing.T) {
	cases := []string{
		"", "plain", `quote " and backslash \`, "new\nline\ttab\rreturn",
		"\x00\x01\x1f\x7f", "ünïcödé ✓ 😀", "\u2028\u2029",
		"bad \xff utf-8 \xc3", "\xed\xa0\x80 surrogate", "trailing \xe2\x82",
		"</script>&<>",
	}
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 2000; i++ {
		b := make([]byte, r.IntN(20))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		out := appendJSONString([]byte("x"), s)
		if out[0] != 'x' {
			t.Fatal("prefix lost")
		}
		out = out[1:]
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("%q: invalid JSON %q", s, out)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		// The same text as encoding/json gives: invalid bytes become
		// U+FFFD, one each.
		std, _ := json.Marshal(s)
		var want string
		json.Unmarshal(std, &want)
		if got != want {
			t.Errorf("%q: decoded %q, want %q", s, got, want)
		}
		if utf8.ValidString(s) && got != s {
			t.Errorf("%q: valid UTF-8 changed to %q", s, got)
		}
	}
	if got := string(appendJSONString(nil, "a\"b\\c\n\x01")); got != `"a\"b\\c\n\u0001"` {
		t.Errorf("escapes: %s", got)
	}
}

func TestFormatDuration(t *testing.T) {
	for _, c := range []struct {
		ns   int64
		want string
	}{
		{0, "0ns"}, {1, "1ns"}, {850, "850ns"}, {999, "999ns"},
		{1000, "1.0µs"}, {12_345, "12.3µs"}, {999_949, "999.9µs"},
		{999_950, "1.00ms"}, {999_999, "1.00ms"}, {1_000_000, "1.00ms"}, {4_561_000, "4.56ms"},
		{999_994_999, "999.99ms"}, {999_999_999, "1.00s"}, {1_200_000_000, "1.20s"},
		{int64(90 * time.Second), "90.00s"},
		{-850, "-850ns"}, {-12_345, "-12.3µs"}, {-4_561_000, "-4.56ms"}, {-999_999, "-1.00ms"},
		{math.MinInt64, "-9223372036.85s"},
	} {
		if got := FormatDuration(c.ns); got != c.want {
			t.Errorf("FormatDuration(%d) = %q, want %q", c.ns, got, c.want)
		}
	}
}

// hop is a hop at time t on dev with metadata of hook hook.
func hop(t int64, hook, dev string, flow paths.Flow) paths.Hop {
	return paths.Hop{Time: t, Meta: &kmeta.Event{Kind: kmeta.KindTracepoint, Hook: hook, Dev: dev, NetNS: 7, Len: 60, Comm: "x"}, CapLen: 74, Flow: flow}
}

func flow(src, dst string, sport, dport uint16, proto uint8) paths.Flow {
	return paths.Flow{EtherType: 0x0800, Proto: proto, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), SrcPort: sport, DstPort: dport, HasPorts: sport != 0}
}

// TestPacketsByHand renders packets built by hand, one feature each.
func TestPacketsByHand(t *testing.T) {
	f := flow("10.0.0.2", "93.184.216.34", 40100, 443, 6)
	nat := flow("192.168.1.10", "93.184.216.34", 61000, 443, 6)
	p := &paths.Packet{ID: 7, HasMeta: true, Parent: 3, Children: []uint64{8, 9}, Hops: []paths.Hop{
		hop(1000, "netif_receive_skb", "veth0", f), hop(2000, "net_dev_queue", "eth0", nat), hop(3000, "net_dev_xmit", "eth0", nat),
	}}
	p.Finish()
	var text strings.Builder
	if err := WritePacketText(&text, p, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"packet 7  transmitted on eth0  (3 hops, 2.0µs)  10.0.0.2:40100 > 93.184.216.34:443 TCP  clone of 3  clones: [8 9]\n",
		"changed dev,addr,port: 192.168.1.10:61000 > 93.184.216.34:443 TCP\n"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	line := string(AppendJSON(nil, p))
	if !strings.Contains(line, `"parent":3,"children":[8,9]`) || !strings.Contains(line, `"changed":["dev","addr","port"]`) {
		t.Errorf("JSON %s", line)
	}

	// Hops past the limit are counted.
	p.Truncated, p.DroppedHops = true, 6
	if line := string(AppendJSON(nil, p)); !strings.Contains(line, `"hops_not_kept":6`) {
		t.Errorf("JSON %s", line)
	}
	text.Reset()
	WritePacketText(&text, p, TextOptions{})
	if !strings.Contains(text.String(), "(9 hops, ") || !strings.Contains(text.String(), "  ... 6 more hops not kept\n") {
		t.Errorf("text:\n%s", text.String())
	}

	// A stack number whose frames are not in the input.
	q := &paths.Packet{ID: 2, HasMeta: true, Hops: []paths.Hop{hop(0, "netif_receive_skb", "veth1", paths.Flow{})}}
	q.Hops[0].Meta.Stack = 8
	q.Finish()
	text.Reset()
	WritePacketText(&text, q, TextOptions{Stacks: true})
	if !strings.Contains(text.String(), stackIndent+"stack 8: frames not in the input\n") {
		t.Errorf("text:\n%s", text.String())
	}

	// A frame of another tool's capture: kind and hook "capture".
	c := &paths.Packet{ID: 1, Hops: []paths.Hop{{Time: 5, OrigLen: 60, CapLen: 60, Meta: &kmeta.Event{}}}}
	c.Hops[0].Meta.Dev = "eth0"
	c.Finish()
	if line := string(AppendJSON(nil, c)); !strings.Contains(line, `{"hook":"capture","kind":"capture","ts":5,"dt_ns":0,"dev":"eth0","netns":0,"ifindex":0,"len":60,"caplen":60}`) {
		t.Errorf("JSON %s", line)
	}
}

func TestOutcomeText(t *testing.T) {
	for _, c := range []struct {
		o    paths.Outcome
		want string
	}{
		{paths.Outcome{Kind: paths.Dropped, Reason: "NO_SOCKET", Location: "__udp4_lib_rcv+0x4bc"}, "dropped: NO_SOCKET at __udp4_lib_rcv+0x4bc"},
		{paths.Outcome{Kind: paths.Dropped, Reason: "REASON_999"}, "dropped: REASON_999"},
		{paths.Outcome{Kind: paths.Transmitted, Dev: "veth0"}, "transmitted on veth0"},
		{paths.Outcome{Kind: paths.Delivered, Location: "skb_consume_udp+0x39"}, "delivered (freed at skb_consume_udp+0x39)"},
		{paths.Outcome{Kind: paths.Consumed, Location: "icmp_rcv+0x1a2"}, "consumed at icmp_rcv+0x1a2"},
		{paths.Outcome{Kind: paths.Unknown, Hook: "netif_receive_skb"}, "unknown (last seen at netif_receive_skb)"},
		{paths.Outcome{Kind: paths.Unknown}, "unknown"},
	} {
		if got := OutcomeText(&c.o); got != c.want {
			t.Errorf("OutcomeText(%+v) = %q, want %q", c.o, got, c.want)
		}
	}
}

func TestFlowText(t *testing.T) {
	if got := FlowText(&paths.Flow{EtherType: 0x0806}); got != "ethertype 0x0806" {
		t.Errorf("FlowText arp %q", got)
	}
	f := flow("2001:db8::1", "2001:db8::2", 1, 2, 17)
	if got := FlowText(&f); got != "[2001:db8::1]:1 > [2001:db8::2]:2 UDP" {
		t.Errorf("FlowText v6 %q", got)
	}
	if !strings.Contains(FlowText(&paths.Flow{Src: netip.MustParseAddr("1.1.1.1"), Dst: netip.MustParseAddr("2.2.2.2"), Proto: 99}), "proto 99") {
		t.Error("FlowText unknown proto")
	}
}

func TestOutcomeTextOfPrograms(t *testing.T) {
	for _, c := range []struct {
		o    paths.Outcome
		want string
	}{
		{paths.Outcome{Kind: paths.Dropped, Reason: "TC_INGRESS", Program: "drop_flow", ProgType: "tc", Verdict: "TC_ACT_SHOT"}, "dropped (TC_INGRESS) by tc program drop_flow"},
		{paths.Outcome{Kind: paths.Dropped, Program: "drop_flow", ProgType: "tc", Verdict: "TC_ACT_SHOT", Location: "tcf_classify+0x10"}, "dropped by tc program drop_flow (TC_ACT_SHOT) at tcf_classify+0x10"},
		{paths.Outcome{Kind: paths.Transmitted, Dev: "veth2", Program: "redir", ProgType: "tc", Verdict: "TC_ACT_REDIRECT"}, "transmitted on veth2, redirected by tc program redir (TC_ACT_REDIRECT)"},
	} {
		if got := OutcomeText(&c.o); got != c.want {
			t.Errorf("OutcomeText = %q, want %q", got, c.want)
		}
	}
}

func TestOutcomeTextOfXDP(t *testing.T) {
	o := paths.Outcome{Kind: paths.Dropped, Reason: "XDP_DROP", Program: "xdp_drop", ProgType: "xdp", Verdict: "XDP_DROP"}
	if got, want := OutcomeText(&o), "dropped by XDP program xdp_drop (XDP_DROP)"; got != want {
		t.Errorf("OutcomeText = %q, want %q", got, want)
	}
	o = paths.Outcome{Kind: paths.Transmitted, Dev: "veth1", Program: "bounce", ProgType: "xdp", Verdict: "XDP_TX"}
	if got, want := OutcomeText(&o), "transmitted on veth1, sent back by XDP program bounce (XDP_TX)"; got != want {
		t.Errorf("OutcomeText = %q, want %q", got, want)
	}
}

// TestProgramJSONIsTheSchema checks the JSON of packets a tc program
// decided against the schema types (unknown fields refused) and that the
// remembering encoder writes what AppendJSON writes.
func TestProgramJSONIsTheSchema(t *testing.T) {
	p := &paths.Packet{ID: 3, HasMeta: true}
	prog := kmeta.Event{Hook: "bpf_prog_3b185187f1855c4c_drop_flow", ProgType: kmeta.ProgTC, Prog: "drop_flow", ProgID: 9, NetNS: 7, Ifindex: 2, Len: 60}
	entry, exit := prog, prog
	entry.Kind = kmeta.KindFentry
	exit.Kind, exit.RetVal, exit.HasRetVal = kmeta.KindFexit, kmeta.TCActShot, true
	free := kmeta.Event{Kind: kmeta.KindTracepoint, Hook: "kfree_skb", NetNS: 7, Ifindex: 2, HasDrop: true, Reason: "TC_INGRESS", Location: "tcf_classify+0x1"}
	p.Hops = []paths.Hop{{Time: 1000, Meta: &entry}, {Time: 2000, Meta: &exit}, {Time: 3000, Meta: &free}}
	p.Finish()
	var enc JSONEncoder
	b := enc.Append(nil, p)
	b = enc.Append(b, p)
	got := decodePackets(t, b)
	if len(got) != 2 {
		t.Fatalf("%d packets", len(got))
	}
	o := got[0].Outcome
	if o.Program != "drop_flow" || o.ProgramType != "tc" || o.Verdict != "TC_ACT_SHOT" || o.Reason != "TC_INGRESS" {
		t.Errorf("outcome %+v", o)
	}
	if h := got[0].Hops; h[0].Program != "drop_flow" || h[0].Verdict != "" || h[1].Verdict != "TC_ACT_SHOT" {
		t.Errorf("hops %+v", h)
	}
	if want := AppendJSON(nil, p); !bytes.Equal(b[:len(want)], want) {
		t.Errorf("encoder wrote\n%s\nAppendJSON\n%s", b, want)
	}
}
