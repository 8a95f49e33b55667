package render

import (
	"bufio"
	"io"
	"net/netip"
	"strconv"
	"testing"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
)

// benchPacket returns a packet shaped like those of bench/genrec: a ping
// across a veth pair, seven hops.
func benchPacket() *paths.Packet {
	hooks := []string{"net_dev_queue", "net_dev_start_xmit", "netif_rx_entry", "netif_rx", "net_dev_xmit", "netif_receive_skb", "consume_skb"}
	p := &paths.Packet{ID: 1234567, HasMeta: true}
	t := int64(1795593600123456789)
	for i, h := range hooks {
		m := kmeta.Event{Kind: "tp", Hook: h, Dev: "veth-a", NetNS: 4026532300, Ifindex: 2, SKB: 0xffff888100000100,
			Len: 84, Proto: 0x0800, CPU: 1, PID: 4242, TID: 4242, Comm: "ping"}
		ns := "pcdemoA"
		if i >= 2 && i != 4 {
			m.Dev, m.NetNS, ns = "veth-b", 4026532400, "pcdemoB"
		}
		if i == 6 {
			m.Location = "icmp_rcv+0x259"
		}
		p.Hops = append(p.Hops, paths.Hop{Time: t, Meta: &m, NSName: ns, CapLen: 128, OrigLen: 98, Frame: int64(i + 1),
			Flow: paths.Flow{EtherType: 0x0800, Proto: 1, Src: netip.AddrFrom4([4]byte{10, 231, 0, 1}), Dst: netip.AddrFrom4([4]byte{10, 231, 0, 2})}})
		t += 700
	}
	p.Finish()
	return p
}

func BenchmarkAppendJSON(b *testing.B) {
	p := benchPacket()
	var line []byte
	for b.Loop() {
		line = AppendJSON(line[:0], p)
	}
	b.SetBytes(int64(len(line)))
}

func BenchmarkJSONEncoder(b *testing.B) {
	p := benchPacket()
	var enc JSONEncoder
	var line []byte
	for b.Loop() {
		line = enc.Append(line[:0], p)
	}
	b.SetBytes(int64(len(line)))
}

// TestJSONEncoderMatchesAppendJSON checks that what the encoder remembers
// never changes its output: packets of varied hooks, kinds and outcomes,
// each encoded after all the others.
func TestJSONEncoderMatchesAppendJSON(t *testing.T) {
	var pkts []*paths.Packet
	for i, hook := range []string{"a", "net_dev_queue", "kfree_skb", "consume_skb", "x\"y", "", "ip_rcv", "tcp_v4_rcv"} {
		p := benchPacket()
		for j := range p.Hops {
			h := &p.Hops[j]
			if j%3 == i%3 {
				h.Meta.Hook, h.Meta.Kind = hook, []string{"tp", "kprobe", "fexit", ""}[i%4]
			}
		}
		p.Finish()
		p.Outcome.Reason = hook
		pkts = append(pkts, p)
	}
	var enc JSONEncoder
	for round := 0; round < 3; round++ {
		for _, p := range pkts {
			if got, want := string(enc.Append(nil, p)), string(AppendJSON(nil, p)); got != want {
				t.Fatalf("encoder:\n%s\nAppendJSON:\n%s", got, want)
			}
		}
	}
}

func BenchmarkWritePacketText(b *testing.B) {
	p := benchPacket()
	tw := NewTextWriter(bufio.NewWriter(io.Discard), TextOptions{})
	b.ReportAllocs()
	for b.Loop() {
		if err := tw.WritePacket(p); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAppendDurationMatchesFloat checks the integer rounding of
// appendDuration against the float formatting of FormatDuration's
// definition, around every rounding boundary and tie.
func TestAppendDurationMatchesFloat(t *testing.T) {
	ref := func(ns int64) string {
		a := uint64(ns)
		if ns < 0 {
			a = -a
		}
		switch {
		case a < 1000:
			return strconv.FormatInt(ns, 10) + "ns"
		case a < 999_950:
			return strconv.FormatFloat(float64(ns)/1e3, 'f', 1, 64) + "µs"
		case a < 999_995_000:
			return strconv.FormatFloat(float64(ns)/1e6, 'f', 2, 64) + "ms"
		}
		return strconv.FormatFloat(float64(ns)/1e9, 'f', 2, 64) + "s"
	}
	check := func(ns int64) {
		if got, want := string(appendDuration(nil, ns)), ref(ns); got != want {
			t.Fatalf("appendDuration(%d) = %q, want %q", ns, got, want)
		}
	}
	for ns := int64(-2000); ns < 2_000_000; ns++ {
		check(ns)
	}
	for base := int64(2_000_000); base < 1_100_000_000; base += 9_973 {
		for d := int64(-60); d <= 60; d++ {
			check(base + d)
			check(base/10_000*10_000 + 5_000 + d)
		}
	}
	for _, ns := range []int64{999_949, 999_950, 999_994_999, 999_995_000, 1 << 53, 1<<63 - 1, -1 << 63} {
		check(ns)
	}
}

func TestAppendSmallInt(t *testing.T) {
	for _, v := range []int64{-1 << 63, -10_001, -1, 0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10_000, 123_456, 1<<63 - 1} {
		if got, want := string(appendSmallInt(nil, v)), strconv.FormatInt(v, 10); got != want {
			t.Errorf("appendSmallInt(%d) = %q, want %q", v, got, want)
		}
	}
	for v := int64(0); v < 20_000; v++ {
		if got, want := string(appendSmallInt(nil, v)), strconv.FormatInt(v, 10); got != want {
			t.Fatalf("appendSmallInt(%d) = %q, want %q", v, got, want)
		}
	}
}
