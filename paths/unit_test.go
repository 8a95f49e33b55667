package paths

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func TestParseFlow(t *testing.T) {
	v4 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	withOptions := ipv4("10.1.1.1", "10.2.2.2", 17, udp(1111, 2222, []byte("x")))
	// Add 4 bytes of options (IHL 6): NOP NOP NOP EOL.
	withOptions = append(append(append([]byte{}, withOptions[:20]...), 1, 1, 1, 0), withOptions[20:]...)
	withOptions[0] = 0x46
	frag := func(off uint16, more bool) []byte {
		b := ipv4("10.1.1.1", "10.2.2.2", 17, udp(1111, 2222, []byte("fragment")))
		v := off
		if more {
			v |= 0x2000
		}
		binary.BigEndian.PutUint16(b[6:], v)
		return b
	}
	vlan := func(tpid uint16, inner []byte) []byte {
		// Insert a tag after the addresses of an Ethernet frame.
		out := append([]byte{}, inner[:12]...)
		out = binary.BigEndian.AppendUint16(out, tpid)
		out = binary.BigEndian.AppendUint16(out, 100)
		return append(out, inner[12:]...)
	}
	udp6 := udp(40000, 53, []byte("q"))
	cases := []struct {
		name  string
		frame []byte
		want  Flow
	}{
		{"ipv4 udp", udp4Frame("10.0.0.1", "10.0.0.2", 40001, 53, dnsQuery()),
			Flow{EtherType: 0x0800, Proto: 17, Src: v4("10.0.0.1"), Dst: v4("10.0.0.2"), SrcPort: 40001, DstPort: 53, HasPorts: true}},
		{"ipv4 tcp", tcp4Frame("192.0.2.1", "198.51.100.2", 443, 50000, 0x12),
			Flow{EtherType: 0x0800, Proto: 6, Src: v4("192.0.2.1"), Dst: v4("198.51.100.2"), SrcPort: 443, DstPort: 50000, HasPorts: true}},
		{"ipv4 icmp", icmp4Frame("10.0.0.1", "10.0.0.2", 8, 1),
			Flow{EtherType: 0x0800, Proto: 1, Src: v4("10.0.0.1"), Dst: v4("10.0.0.2")}},
		{"ipv4 with options", ethernet(0x0800, withOptions, false),
			Flow{EtherType: 0x0800, Proto: 17, Src: v4("10.1.1.1"), Dst: v4("10.2.2.2"), SrcPort: 1111, DstPort: 2222, HasPorts: true}},
		{"ipv4 first fragment", ethernet(0x0800, frag(0, true), false),
			Flow{EtherType: 0x0800, Proto: 17, Src: v4("10.1.1.1"), Dst: v4("10.2.2.2"), SrcPort: 1111, DstPort: 2222, HasPorts: true}},
		{"ipv4 later fragment", ethernet(0x0800, frag(185, false), false),
			Flow{EtherType: 0x0800, Proto: 17, Src: v4("10.1.1.1"), Dst: v4("10.2.2.2")}},
		{"ipv4 synthesized header", ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, nil)), true),
			Flow{EtherType: 0x0800, Proto: 17, Src: v4("10.0.0.1"), Dst: v4("10.0.0.2"), SrcPort: 1, DstPort: 2, HasPorts: true}},
		{"vlan", vlan(0x8100, udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, nil)),
			Flow{EtherType: 0x0800, Proto: 17, Src: v4("10.0.0.1"), Dst: v4("10.0.0.2"), SrcPort: 1, DstPort: 2, HasPorts: true}},
		{"qinq", vlan(0x88a8, vlan(0x8100, udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, nil))),
			Flow{EtherType: 0x0800, Proto: 17, Src: v4("10.0.0.1"), Dst: v4("10.0.0.2"), SrcPort: 1, DstPort: 2, HasPorts: true}},
		{"ipv6 udp", ethernet(0x86dd, ipv6("2001:db8::1", "2001:db8::2", 17, udp6), false),
			Flow{EtherType: 0x86dd, Proto: 17, Src: v4("2001:db8::1"), Dst: v4("2001:db8::2"), SrcPort: 40000, DstPort: 53, HasPorts: true}},
		{"ipv6 hop-by-hop, routing, destination options", ethernet(0x86dd, ipv6("2001:db8::1", "2001:db8::2", 6, tcp(22, 50000, 0x10),
			extHeader{code: 0}, extHeader{code: 43}, extHeader{code: 60}), false),
			Flow{EtherType: 0x86dd, Proto: 6, Src: v4("2001:db8::1"), Dst: v4("2001:db8::2"), SrcPort: 22, DstPort: 50000, HasPorts: true}},
		{"ipv6 first fragment", ethernet(0x86dd, ipv6("2001:db8::1", "2001:db8::2", 17, udp6, extHeader{code: 44, more: true}), false),
			Flow{EtherType: 0x86dd, Proto: 17, Src: v4("2001:db8::1"), Dst: v4("2001:db8::2"), SrcPort: 40000, DstPort: 53, HasPorts: true}},
		{"ipv6 later fragment", ethernet(0x86dd, ipv6("2001:db8::1", "2001:db8::2", 17, udp6, extHeader{code: 0}, extHeader{code: 44, fragOffset: 100}), false),
			Flow{EtherType: 0x86dd, Proto: 17, Src: v4("2001:db8::1"), Dst: v4("2001:db8::2")}},
		{"ipv6 icmpv6", ethernet(0x86dd, ipv6("fe80::1", "ff02::1", 58, icmpEcho(128, 1)), false),
			Flow{EtherType: 0x86dd, Proto: 58, Src: v4("fe80::1"), Dst: v4("ff02::1")}},
		{"arp", ethernet(0x0806, make([]byte, 28), false), Flow{EtherType: 0x0806}},
		{"ipv4 ethertype, ipv6 packet", ethernet(0x0800, ipv6("::1", "::2", 17, udp6), false), Flow{EtherType: 0x0800}},
		{"ipv4 header length below 20", func() []byte {
			b := udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, nil)
			b[14] = 0x44
			return b
		}(), Flow{EtherType: 0x0800, Proto: 17, Src: v4("10.0.0.1"), Dst: v4("10.0.0.2")}},
		{"short ethernet", []byte{1, 2, 3}, Flow{}},
		{"empty", nil, Flow{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ParseFlow(c.frame); got != c.want {
				t.Errorf("ParseFlow\n got %+v\nwant %+v", got, c.want)
			}
			// Every prefix of the frame (a short snap length) parses
			// without panicking, and never invents ports.
			for n := 0; n < len(c.frame); n++ {
				f := ParseFlow(c.frame[:n])
				if f.HasPorts && !c.want.HasPorts {
					t.Errorf("prefix %d: ports %+v", n, f)
				}
			}
		})
	}
	// Random and mutated bytes never panic.
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		c := cases[r.IntN(len(cases))].frame
		b := append([]byte(nil), c...)
		for j := r.IntN(4); j >= 0 && len(b) > 0; j-- {
			b[r.IntN(len(b))] = byte(r.Uint32())
		}
		if len(b) > 0 {
			b = b[:r.IntN(len(b)+1)]
		}
		ParseFlow(b)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, dist := range []struct {
		name string
		gen  func() int64
	}{
		{"uniform µs", func() int64 { return r.Int64N(1_000_000) }},
		{"log-uniform 1ns..10s", func() int64 { return int64(math.Exp(r.Float64() * math.Log(1e10))) }},
		{"small", func() int64 { return r.Int64N(40) }},
		{"bimodal", func() int64 {
			if r.IntN(10) == 0 {
				return 5_000_000 + r.Int64N(1_000_000)
			}
			return 2_000 + r.Int64N(500)
		}},
	} {
		t.Run(dist.name, func(t *testing.T) {
			for _, n := range []int{1, 7, 100, 100_000} {
				var h Histogram
				vals := make([]int64, n)
				var sum float64
				for i := range vals {
					vals[i] = dist.gen()
					h.Add(vals[i])
					sum += float64(vals[i])
				}
				slices.Sort(vals)
				if h.Count() != uint64(n) || h.Max() != vals[n-1] {
					t.Fatalf("n %d: count %d max %d", n, h.Count(), h.Max())
				}
				if m := h.Mean(); math.Abs(m-sum/float64(n)) > 1e-6*m {
					t.Errorf("mean %v, want %v", m, sum/float64(n))
				}
				for _, q := range []float64{0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1} {
					rank := int(math.Ceil(q * float64(n)))
					exact := vals[max(rank, 1)-1]
					got := h.Quantile(q)
					if d := math.Abs(float64(got - exact)); d > 0.07*float64(exact) {
						t.Errorf("n %d q %v: %d, exact %d (off by %.1f%%)", n, q, got, exact, 100*d/float64(exact))
					}
				}
			}
		})
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Max() != 0 || empty.Mean() != 0 {
		t.Error("empty histogram")
	}
	var h Histogram
	h.Add(-5) // clock steps: counted, never a negative quantile
	h.Add(math.MaxInt64)
	if h.Quantile(0) != 0 || h.Quantile(1) > math.MaxInt64 || h.Quantile(1) < math.MaxInt64/100*94 {
		t.Errorf("extremes: %d %d", h.Quantile(0), h.Quantile(1))
	}
}

func TestChangeAndOutcomeNames(t *testing.T) {
	if s := (ChangedDev | ChangedNetNS | ChangedAddr | ChangedPort | ChangedMark).String(); s != "dev,netns,addr,port,mark" {
		t.Errorf("Change.String %q", s)
	}
	if Change(0).String() != "" {
		t.Error("empty change")
	}
	for k := Unknown; k <= Consumed; k++ {
		if got, ok := ParseOutcome(k.String()); !ok || got != k {
			t.Errorf("ParseOutcome(%q) = %v %v", k.String(), got, ok)
		}
	}
	if _, ok := ParseOutcome("lost"); ok {
		t.Error("ParseOutcome(lost) ok")
	}
	if OutcomeKind(200).String() != "unknown" {
		t.Error("out-of-range outcome")
	}
	for loc, fn := range map[string]string{"__udp4_lib_rcv+0x4bc": "__udp4_lib_rcv", "nf_hook_slow+0x9a [nf_tables]": "nf_hook_slow",
		"0xffffffff81234567": "0xffffffff81234567", "": "", "ping_rcv": "ping_rcv"} {
		if got := LocationFunction(loc); got != fn {
			t.Errorf("LocationFunction(%q) = %q", loc, got)
		}
	}
}
