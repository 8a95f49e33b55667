package paths

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// checkScenario compares the analyzed packets with scenarioWant.
func checkScenario(t *testing.T, got []*Packet) {
	t.Helper()
	sortPackets(got)
	wants := scenarioWant()
	if len(got) != len(wants) {
		for _, p := range got {
			t.Logf("got packet %d %s %s", p.ID, p.Outcome.Kind, p.PathString())
		}
		t.Fatalf("got %d packets, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		p := got[i]
		t.Run(fmt.Sprintf("packet%d_%d", w.id, i), func(t *testing.T) {
			if p.ID != w.id {
				t.Fatalf("packet %d: id %d, want %d", i, p.ID, w.id)
			}
			if !p.HasMeta {
				t.Errorf("HasMeta false")
			}
			if p.PathString() != w.path {
				t.Errorf("path %q, want %q", p.PathString(), w.path)
			}
			o := p.Outcome
			if o.Kind != w.outcome || o.Reason != w.reason || o.Location != w.location || o.Hook != w.hook {
				t.Errorf("outcome %+v, want kind %v reason %q location %q hook %q", o, w.outcome, w.reason, w.location, w.hook)
			}
			if w.dev != "" && o.Dev != w.dev {
				t.Errorf("outcome dev %q, want %q", o.Dev, w.dev)
			}
			if p.Parent != w.parent || !slices.Equal(p.Children, w.children) {
				t.Errorf("parent %d children %v, want %d %v", p.Parent, p.Children, w.parent, w.children)
			}
			for j := 1; j < len(p.Hops); j++ {
				if p.Hops[j].Time < p.Hops[j-1].Time {
					t.Errorf("hop %d at %d before hop %d at %d", j, p.Hops[j].Time, j-1, p.Hops[j-1].Time)
				}
			}
		})
	}
}

func TestScenarioOutcomes(t *testing.T) {
	f := tempRecording(t, "alpha", scenario())
	checkScenario(t, analyze(t, Options{}, nil, f))
}

// TestOutcomeKinds checks each classification rule on a minimal packet.
func TestOutcomeKinds(t *testing.T) {
	u := udp4Frame("10.0.0.1", "10.0.0.2", 1000, 2000, []byte("x"))
	cases := []struct {
		name   string
		events []ev
		want   Outcome
	}{
		{"delivered by copy", []ev{
			srv(ev{hook: "netif_receive_skb"}), sock(ev{hook: "skb_copy_datagram_iovec"}, nsServer),
		}, Outcome{Kind: Delivered, Hook: "skb_copy_datagram_iovec", NetNS: nsServer, Process: "swapper/0"}},
		{"delivered by copy, then consumed", []ev{
			srv(ev{hook: "netif_receive_skb"}), sock(ev{hook: "skb_copy_datagram_iovec"}, nsServer),
			sock(ev{hook: "consume_skb", loc: "skb_consume_udp+0x39"}, nsServer),
		}, Outcome{Kind: Delivered, Hook: "skb_copy_datagram_iovec", NetNS: nsServer, Location: "skb_consume_udp+0x39", Socket: "UDP", Process: "swapper/0"}},
		{"delivered: consume at skb_consume_udp", []ev{
			srv(ev{hook: "netif_receive_skb"}), sock(ev{hook: "consume_skb", loc: "skb_consume_udp+0x39"}, nsServer),
		}, Outcome{Kind: Delivered, Hook: "consume_skb", NetNS: nsServer, Location: "skb_consume_udp+0x39", Socket: "UDP"}},
		{"delivered: consume at tcp_recvmsg in a module", []ev{
			srv(ev{hook: "netif_receive_skb"}), sock(ev{hook: "consume_skb", loc: "tcp_recvmsg+0x12 [foo]"}, nsServer),
		}, Outcome{Kind: Delivered, Hook: "consume_skb", NetNS: nsServer, Location: "tcp_recvmsg+0x12 [foo]", Socket: "TCP"}},
		{"delivered: consume at udp_recvmsg (skb_consume_udp tail-called)", []ev{
			srv(ev{hook: "netif_receive_skb"}), sock(ev{hook: "consume_skb", loc: "udp_recvmsg+0x200"}, nsServer),
		}, Outcome{Kind: Delivered, Hook: "consume_skb", NetNS: nsServer, Location: "udp_recvmsg+0x200", Socket: "UDP"}},
		{"delivered: deferred free by a socket's receive path", []ev{
			srv(ev{hook: "netif_receive_skb"}), sock(ev{hook: "consume_skb", loc: "skb_defer_free_flush+0x70"}, nsServer),
		}, Outcome{Kind: Delivered, Hook: "consume_skb", NetNS: nsServer, Location: "skb_defer_free_flush+0x70"}},
		{"delivered: a TCP segment coalesced into the receive queue", []ev{
			srv(ev{hook: "netif_receive_skb"}), sock(ev{hook: "tcp_queue_rcv"}, nsServer),
			sock(ev{hook: "kfree_skb_partial"}, nsServer), sock(ev{hook: "kfree_skbmem"}, nsServer),
		}, Outcome{Kind: Delivered, Hook: "kfree_skb_partial", NetNS: nsServer, Socket: "TCP"}},
		{"transmitted: last hop net_dev_xmit", []ev{
			cli(ev{hook: "net_dev_queue"}), cli(ev{hook: "net_dev_xmit"}),
		}, Outcome{Kind: Transmitted, Hook: "net_dev_xmit", Dev: "veth0", NetNS: nsClient}},
		{"transmitted: consumed after transmit", []ev{
			cli(ev{hook: "net_dev_queue"}), cli(ev{hook: "net_dev_start_xmit"}), cli(ev{hook: "consume_skb", loc: "napi_consume_skb+0x5d"}),
		}, Outcome{Kind: Transmitted, Hook: "net_dev_start_xmit", Dev: "veth0", NetNS: nsClient, Location: "napi_consume_skb+0x5d"}},
		{"consumed: transmit, received back, consumed", []ev{
			cli(ev{hook: "net_dev_xmit"}), srv(ev{hook: "netif_receive_skb"}), srv(ev{hook: "consume_skb", loc: "icmp_rcv+0x1a2"}),
		}, Outcome{Kind: Consumed, Hook: "consume_skb", Dev: "veth1", NetNS: nsServer, Location: "icmp_rcv+0x1a2"}},
		{"dropped", []ev{
			srv(ev{hook: "netif_receive_skb"}), srv(ev{hook: "kfree_skb", reason: "NO_SOCKET", loc: "__udp4_lib_rcv+0x4bc"}),
		}, Outcome{Kind: Dropped, Hook: "kfree_skb", Dev: "veth1", NetNS: nsServer, Reason: "NO_SOCKET", Location: "__udp4_lib_rcv+0x4bc"}},
		{"dropped after transmit", []ev{
			cli(ev{hook: "net_dev_xmit"}), cli(ev{hook: "kfree_skb", reason: "QDISC_DROP", loc: "0xffffffff81234567"}),
		}, Outcome{Kind: Dropped, Hook: "kfree_skb", Dev: "veth0", NetNS: nsClient, Reason: "QDISC_DROP", Location: "0xffffffff81234567"}},
		{"dropped, unknown reason number", []ev{
			srv(ev{hook: "kfree_skb", reason: "REASON_999"}),
		}, Outcome{Kind: Dropped, Hook: "kfree_skb", Dev: "veth1", NetNS: nsServer, Reason: "REASON_999"}},
		{"unknown: in flight", []ev{
			srv(ev{hook: "netif_rx"}), srv(ev{hook: "netif_receive_skb"}),
		}, Outcome{Kind: Unknown, Hook: "netif_receive_skb", Why: "the recording ended while it was in flight"}},
		{"unknown: queued only", []ev{
			cli(ev{hook: "net_dev_queue"}),
		}, Outcome{Kind: Unknown, Hook: "net_dev_queue", Why: "the recording ended while it was in flight"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i := range c.events {
				c.events[i].id = 42
				c.events[i].at = ms(1) + us(10*i)
				c.events[i].data = u
			}
			got := analyze(t, Options{}, nil, tempRecording(t, "alpha", c.events))
			if len(got) != 1 {
				t.Fatalf("got %d packets, want 1", len(got))
			}
			if got[0].Outcome != c.want {
				t.Errorf("outcome\n got %+v\nwant %+v", got[0].Outcome, c.want)
			}
		})
	}
}

func TestNAT(t *testing.T) {
	// SNAT on the way out, and the same packet's length growing by a
	// tunnel's encapsulation (proto change) afterwards.
	a := tcp4Frame("10.0.0.2", "93.184.216.34", 40100, 443, 0x02)
	b := tcp4Frame("192.168.1.10", "93.184.216.34", 61000, 443, 0x02)
	c := ethernet(0x0800, ipv4("192.168.1.10", "203.0.113.1", 47, append([]byte{0, 0, 0x08, 0}, b[14:]...)), false)
	evs := []ev{
		hostVeth(ev{id: 7, at: ms(1), hook: "netif_receive_skb", data: a}),
		host(ev{id: 7, at: ms(1) + us(10), hook: "net_dev_queue", data: b}),
		host(ev{id: 7, at: ms(1) + us(20), hook: "net_dev_xmit", data: c, mark: 0x10}),
	}
	got := analyze(t, Options{}, nil, tempRecording(t, "alpha", evs))
	if len(got) != 1 {
		t.Fatalf("%d packets", len(got))
	}
	h := got[0].Hops
	if want := ChangedDev | ChangedAddr | ChangedPort; h[1].Changed != want {
		t.Errorf("hop 2 changed %v, want %v", h[1].Changed, want)
	}
	if want := ChangedLen | ChangedProto | ChangedMark; h[2].Changed != want {
		t.Errorf("hop 3 changed %v, want %v", h[2].Changed, want)
	}
}

func TestClones(t *testing.T) {
	u := udp4Frame("10.0.0.1", "224.0.0.251", 5353, 5353, []byte("m"))
	evs := []ev{
		srv(ev{id: 1, at: ms(1), hook: "netif_receive_skb", data: u}),
		srv(ev{id: 2, parent: 1, at: ms(1) + us(1), hook: "netif_receive_skb", data: u}),
		srv(ev{id: 3, parent: 1, at: ms(1) + us(2), hook: "netif_receive_skb", data: u}),
		srv(ev{id: 1, at: ms(1) + us(3), hook: "consume_skb", data: u, loc: "skb_consume_udp+0x39"}),
		// Parent 1 is complete (freed, grace over) before 4 appears.
		srv(ev{id: 4, parent: 1, at: ms(500), hook: "netif_receive_skb", data: u}),
	}
	got := analyze(t, Options{}, nil, tempRecording(t, "alpha", evs))
	sortPackets(got)
	if len(got) != 4 {
		t.Fatalf("%d packets", len(got))
	}
	if !slices.Equal(got[0].Children, []uint64{2, 3}) || got[0].Parent != 0 {
		t.Errorf("parent: children %v", got[0].Children)
	}
	for _, p := range got[1:] {
		if p.Parent != 1 || p.Children != nil {
			t.Errorf("clone %d: parent %d children %v", p.ID, p.Parent, p.Children)
		}
	}
}

func TestOutOfOrderWithinWindow(t *testing.T) {
	u := udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, nil)
	// Same file: the later hop written first.
	evs := []ev{
		srv(ev{id: 5, at: ms(100) + us(50), hook: "netif_receive_skb", data: u}),
		srv(ev{id: 5, at: ms(100), hook: "netif_rx", data: u}),
		srv(ev{id: 6, at: ms(100) + us(60), hook: "netif_rx", data: u}),
		// A whole second later (within the 2 s window): still packet 5.
		srv(ev{id: 5, at: ms(1100), hook: "kfree_skb", reason: "NO_SOCKET", data: u}),
		// Written after a later event of another packet.
		srv(ev{id: 6, at: ms(100) + us(40), hook: "net_dev_xmit", data: u}),
	}
	got := analyze(t, Options{}, nil, tempRecording(t, "alpha", evs))
	sortPackets(got)
	if len(got) != 2 {
		t.Fatalf("%d packets", len(got))
	}
	if p := got[0].PathString(); got[0].ID != 5 || p != "netif_rx>netif_receive_skb>kfree_skb" {
		t.Errorf("packet %d path %s", got[0].ID, p)
	}
	if p := got[1].PathString(); got[1].ID != 6 || p != "net_dev_xmit>netif_rx" {
		t.Errorf("packet %d path %s", got[1].ID, p)
	}

	// Across files: each file in time order, the packet's hops spread.
	dir := t.TempDir()
	a := writeRecording(t, filepath.Join(dir, "a.pcapng"), "alpha", []ev{
		cli(ev{id: 9, at: ms(1), hook: "net_dev_queue", data: u}),
		srv(ev{id: 9, at: ms(1) + us(30), hook: "netif_receive_skb", data: u}),
	})
	b := writeRecording(t, filepath.Join(dir, "b.pcapng"), "alpha", []ev{
		cli(ev{id: 9, at: ms(1) + us(10), hook: "net_dev_xmit", data: u}),
		srv(ev{id: 9, at: ms(1) + us(20), hook: "netif_rx", data: u}),
	})
	for _, order := range [][]string{{a, b}, {b, a}} {
		got := analyze(t, Options{}, nil, order...)
		if len(got) != 1 || got[0].PathString() != "net_dev_queue>net_dev_xmit>netif_rx>netif_receive_skb" {
			t.Errorf("%d packets, first %s", len(got), got[0].PathString())
		}
	}
}

func TestBeyondWindow(t *testing.T) {
	u := udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, nil)
	for _, c := range []struct {
		name   string
		events []ev
		want   []string // paths in start order
	}{
		{"quiet gap", []ev{
			srv(ev{id: 5, at: ms(1), hook: "netif_rx", data: u}),
			srv(ev{id: 5, at: ms(2), hook: "netif_receive_skb", data: u}),
			// Nothing at all for 3 s.
			srv(ev{id: 5, at: ms(3002), hook: "netif_receive_skb", data: u}),
			srv(ev{id: 5, at: ms(3003), hook: "kfree_skb", reason: "NO_SOCKET", data: u}),
		}, []string{"netif_rx>netif_receive_skb", "netif_receive_skb>kfree_skb"}},
		{"other traffic in between", []ev{
			srv(ev{id: 5, at: ms(1), hook: "netif_rx", data: u}),
			srv(ev{id: 6, at: ms(1000), hook: "netif_rx", data: u}),
			srv(ev{id: 6, at: ms(2000), hook: "netif_rx", data: u}),
			srv(ev{id: 5, at: ms(2200), hook: "netif_receive_skb", data: u}),
		}, []string{"netif_rx", "netif_rx>netif_rx", "netif_receive_skb"}},
		{"just within", []ev{
			srv(ev{id: 5, at: ms(1), hook: "netif_rx", data: u}),
			srv(ev{id: 5, at: ms(1999), hook: "netif_receive_skb", data: u}),
		}, []string{"netif_rx>netif_receive_skb"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := analyze(t, Options{Window: 2 * time.Second}, nil, tempRecording(t, "alpha", c.events))
			sortPackets(got)
			var ps []string
			for _, p := range got {
				ps = append(ps, p.PathString())
			}
			if !slices.Equal(ps, c.want) {
				t.Errorf("paths %q, want %q", ps, c.want)
			}
		})
	}
}

func TestFreedPacketGrace(t *testing.T) {
	u := udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, nil)
	// An event of a freed packet that comes late (from another CPU's
	// buffer) still joins it; once the grace period is over and the
	// packet was completed, the id starts a new packet.
	evs := []ev{
		srv(ev{id: 5, at: ms(1), hook: "netif_receive_skb", data: u}),
		srv(ev{id: 5, at: ms(2), hook: "kfree_skb", reason: "NO_SOCKET", data: u}),
		srv(ev{id: 5, at: us(500), hook: "netif_rx", data: u}),
		srv(ev{id: 6, at: ms(550), hook: "netif_rx", data: u}),
		srv(ev{id: 5, at: ms(601), hook: "netif_receive_skb", data: u}),
	}
	got := analyze(t, Options{}, nil, tempRecording(t, "alpha", evs))
	sortPackets(got)
	var ps []string
	for _, p := range got {
		ps = append(ps, fmt.Sprint(p.ID, " ", p.PathString()))
	}
	if want := []string{"5 netif_rx>netif_receive_skb>kfree_skb", "6 netif_rx", "5 netif_receive_skb"}; !slices.Equal(ps, want) {
		t.Errorf("packets %q, want %q", ps, want)
	}
}

func TestMaxHopsAndMaxOpen(t *testing.T) {
	u := udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, nil)
	var evs []ev
	for i := 0; i < 10; i++ {
		evs = append(evs, srv(ev{id: 1, at: ms(1) + us(i), hook: "netif_receive_skb", data: u}))
	}
	got := analyze(t, Options{MaxHops: 4}, nil, tempRecording(t, "alpha", evs))
	if len(got) != 1 || len(got[0].Hops) != 4 || !got[0].Truncated || got[0].DroppedHops != 6 {
		t.Fatalf("packets %d, hops %d truncated %v dropped %d", len(got), len(got[0].Hops), got[0].Truncated, got[0].DroppedHops)
	}
	s := NewSummary()
	s.Add(got[0])
	if s.Events != 10 {
		t.Errorf("summary events %d, want 10", s.Events)
	}

	// MaxOpen: 100 packets open at once with room for 10: all are still
	// reported, each whole.
	evs = nil
	for i := 0; i < 100; i++ {
		evs = append(evs, srv(ev{id: uint64(i + 1), at: ms(1) + us(i), hook: "netif_rx", data: u}))
	}
	got = analyze(t, Options{MaxOpen: 10}, nil, tempRecording(t, "alpha", evs))
	if len(got) != 100 {
		t.Fatalf("%d packets, want 100", len(got))
	}
	seen := map[uint64]bool{}
	for _, p := range got {
		seen[p.ID] = true
	}
	if len(seen) != 100 {
		t.Errorf("%d distinct ids", len(seen))
	}
}

func TestKeepDataAndFilter(t *testing.T) {
	dns := udp4Frame("10.0.0.1", "10.0.0.2", 40001, 53, dnsQuery())
	other := udp4Frame("10.0.0.1", "10.0.0.2", 40001, 54, nil)
	evs := []ev{
		srv(ev{id: 1, at: ms(1), hook: "netif_rx", data: dns}),
		srv(ev{id: 2, at: ms(2), hook: "netif_rx", data: other}),
	}
	isDNS := func(b []byte) bool { f := ParseFlow(b); return f.HasPorts && f.DstPort == 53 }
	got := analyze(t, Options{KeepData: true}, &Selector{Filter: isDNS}, tempRecording(t, "alpha", evs))
	if len(got) != 1 || got[0].ID != 1 || !got[0].FilterMatched || string(got[0].Data) != string(dns) {
		t.Fatalf("%d packets", len(got))
	}
}

// TestBadComment: a pathcap comment that does not parse leaves the event
// without metadata (or fails in Strict mode); a later event with good
// metadata gives the packet its metadata back.
func TestBadComment(t *testing.T) {
	u := udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, nil)
	evs := []ev{
		srv(ev{id: 1, at: ms(1), hook: "netif_rx", data: u, comment: []byte("pathcap/1 hook=broken")}),
		srv(ev{id: 1, at: ms(2), hook: "netif_receive_skb", data: u}),
		srv(ev{id: 1, at: ms(3), hook: "kfree_skb", reason: "NO_SOCKET", loc: "__udp4_lib_rcv+0x4bc", data: u}),
		srv(ev{id: 2, at: ms(4), hook: "netif_rx", data: u, comment: []byte("pathcap/3 hook=tp:netif_rx")}),
	}
	f := tempRecording(t, "alpha", evs)
	in, err := Open([]string{f})
	if err != nil {
		t.Fatal(err)
	}
	var got []*Packet
	if err := Process(in, Options{}, nil, func(p *Packet) error { got = append(got, clonePacket(p)); return nil }); err != nil {
		t.Fatal(err)
	}
	in.Close()
	sortPackets(got)
	if in.BadComments != 2 || len(got) != 2 {
		t.Fatalf("bad comments %d, packets %d", in.BadComments, len(got))
	}
	if got[0].Outcome.Kind != Dropped || got[0].PathString() != "capture>netif_receive_skb>kfree_skb" {
		t.Errorf("packet 1: %v %s", got[0].Outcome.Kind, got[0].PathString())
	}
	if got[1].HasMeta || got[1].Outcome.Kind != Unknown {
		t.Errorf("packet 2: %+v", got[1])
	}

	in, err = Open([]string{f})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	in.Strict = true
	err = Process(in, Options{}, nil, func(*Packet) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "frame 1") || !strings.Contains(err.Error(), f) {
		t.Errorf("strict: %v", err)
	}
}

func TestPacketsWithoutIDs(t *testing.T) {
	u := udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, nil)
	evs := []ev{
		srv(ev{noID: true, at: ms(1), hook: "netif_rx", data: u}),
		srv(ev{noID: true, at: ms(2), hook: "netif_rx", data: u}),
	}
	got := analyze(t, Options{}, nil, tempRecording(t, "alpha", evs))
	if len(got) != 2 || got[0].ID == got[1].ID {
		t.Fatalf("%d packets", len(got))
	}
}

func TestEmitError(t *testing.T) {
	f := tempRecording(t, "alpha", scenario())
	in, err := Open([]string{f})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	stop := fmt.Errorf("stop")
	n := 0
	err = Process(in, Options{}, nil, func(*Packet) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("err %v after %d packets", err, n)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(nil); err == nil {
		t.Error("Open(nil) succeeded")
	}
	missing := filepath.Join(t.TempDir(), "missing.pcapng")
	if _, err := Open([]string{missing}); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	txt := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(txt, []byte("hello, this is not a capture\n"), 0o644)
	_, err := Open([]string{txt})
	var ie *InputError
	if !errors.As(err, &ie) || ie.File != txt || !strings.Contains(err.Error(), "not a pcap-ng file") {
		t.Errorf("text file: %v", err)
	}
}

// TestCloneOutcomes: a packet whose own skb is dropped while its clone
// reaches a socket was delivered through the clone (ping's echo reply to
// its raw socket); a packet that waits for its clones comes before them;
// a clone delivered to a packet socket (a tap) does not count; a "clone"
// whose bytes are another flow's (a reused buffer) is not attached.
func TestCloneOutcomes(t *testing.T) {
	reply := ethernet(0x0800, ipv4("10.0.0.2", "10.0.0.1", 1, []byte{0, 0, 0, 0, 0, 1, 0, 1}), false)
	other := udp4Frame("10.0.0.9", "10.0.0.1", 53, 4000, []byte("x"))
	evs := []ev{
		// 1: dropped NO_SOCKET at ping_rcv; clone 2 delivered to ping.
		cli(ev{id: 1, at: ms(1), hook: "netif_receive_skb", data: reply}),
		cli(ev{id: 1, at: ms(1) + us(5), hook: "kfree_skb", data: reply, reason: "NO_SOCKET", loc: "ping_rcv+0xab"}),
		sock(ev{id: 2, parent: 1, at: ms(1) + us(40), hook: "skb_copy_datagram_iovec", data: reply, comm: "ping"}, nsClient),
		sock(ev{id: 2, at: ms(1) + us(41), hook: "consume_skb", data: reply, comm: "ping", loc: "raw_recvmsg+0xac"}, nsClient),
		// 3: dropped; its only clone 4 went to a packet socket.
		cli(ev{id: 3, at: ms(10), hook: "netif_receive_skb", data: reply}),
		sock(ev{id: 4, parent: 3, at: ms(10) + us(2), hook: "skb_copy_datagram_iovec", data: reply, comm: "tcpdump"}, nsClient),
		sock(ev{id: 4, at: ms(10) + us(3), hook: "consume_skb", data: reply, comm: "tcpdump", loc: "packet_recvmsg+0x10"}, nsClient),
		cli(ev{id: 3, at: ms(10) + us(5), hook: "kfree_skb", data: reply, reason: "NETFILTER_DROP", loc: "nf_hook_slow+0x9a"}),
		// 5: dropped; 6 claims to be its clone but carries another flow.
		cli(ev{id: 5, at: ms(20), hook: "netif_receive_skb", data: reply}),
		sock(ev{id: 6, parent: 5, at: ms(20) + us(2), hook: "skb_copy_datagram_iovec", data: other, comm: "dns"}, nsClient),
		sock(ev{id: 6, at: ms(20) + us(3), hook: "consume_skb", data: other, comm: "dns", loc: "skb_consume_udp+0x39"}, nsClient),
		cli(ev{id: 5, at: ms(20) + us(5), hook: "kfree_skb", data: reply, reason: "NO_SOCKET", loc: "ping_rcv+0xab"}),
	}
	got := analyze(t, Options{}, nil, tempRecording(t, "alpha", evs))
	var ids []uint64
	byID := map[uint64]*Packet{}
	for _, p := range got {
		ids = append(ids, p.ID)
		byID[p.ID] = p
	}
	// Packets come in the order they complete; a packet that waits for
	// its clones comes right before them.
	for i, id := range ids {
		if p := byID[id]; p.Attached && (i == 0 || ids[i-1] != p.Parent) {
			t.Errorf("order %v: clone %d not right after its packet %d", ids, id, p.Parent)
		}
	}
	o := byID[1].Outcome
	if o.Kind != Delivered || o.Clone != 2 || o.Socket != "raw" || o.Process != "ping" || o.OwnKind != Dropped || o.OwnReason != "NO_SOCKET" || !byID[2].Attached {
		t.Errorf("ping reply: %+v (clone attached %v)", o, byID[2].Attached)
	}
	if o := byID[3].Outcome; o.Kind != Dropped || o.Clone != 0 || o.Reason != "NETFILTER_DROP" {
		t.Errorf("tapped drop: %+v", o)
	}
	if o := byID[5].Outcome; o.Kind != Dropped || o.Clone != 0 || byID[6].Attached {
		t.Errorf("reused buffer: %+v (attached %v)", o, byID[6].Attached)
	}
	s := NewSummary()
	for _, p := range got {
		s.Add(p)
	}
	if s.Packets != 4 || s.Clones != 2 || len(s.ViaClone()) != 1 || s.ViaClone()[0] != (Count{"delivered", 1}) {
		t.Errorf("summary: %d packets, %d clones, via clone %v", s.Packets, s.Clones, s.ViaClone())
	}
}

// TestIDReusedAfterUnseenFree: a TCP segment freed where no hook sees it
// leaves its id to the next skb at its address; a long silence and then
// another flow's bytes under the id start a new packet, and the first one
// ends unknown, saying why.
func TestIDReusedAfterUnseenFree(t *testing.T) {
	rst := tcp4Frame("10.0.0.2", "10.0.0.1", 81, 40000, 0x14)
	dns := udp4Frame("10.9.9.9", "10.0.0.1", 53, 5353, []byte("x"))
	evs := []ev{
		cli(ev{id: 8, at: ms(1), hook: "netif_receive_skb", data: rst}),
		cli(ev{id: 8, at: ms(1) + 500*time.Millisecond, hook: "consume_skb", data: dns, loc: "skb_consume_udp+0x39"}),
		// The same flow after a silence (a retransmission) stays one packet.
		cli(ev{id: 9, at: ms(2), hook: "net_dev_queue", data: rst}),
		cli(ev{id: 9, at: ms(2) + 300*time.Millisecond, hook: "net_dev_queue", data: rst}),
	}
	got := analyze(t, Options{}, nil, tempRecording(t, "alpha", evs))
	n := map[uint64]int{}
	for _, p := range got {
		n[p.ID]++
		if p.ID == 8 && len(p.Hops) == 1 && p.Hops[0].Meta.Hook == "netif_receive_skb" {
			if p.Outcome.Kind != Unknown || !strings.Contains(p.Outcome.Why, "freed where no hook sees it") {
				t.Errorf("first skb of id 8: %+v", p.Outcome)
			}
		}
	}
	if n[8] != 2 || n[9] != 1 {
		t.Errorf("packets per id %v, want 8 split in two and 9 kept whole", n)
	}
}
