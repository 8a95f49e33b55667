package capture

import (
	"encoding/binary"
	"testing"
)

// trackSetSize is the size of a struct track_set (bpf/common.h): four keys,
// four tags, four insert times.
const trackSetSize = 3 * trackWays * 8

// TestTrackingOneSet follows pings through a tracking table of a single set
// of four entries, so that every packet shares the set with the packets
// before it: each echo request must keep one id from A's net_dev_queue to
// B's netif_receive_skb, no two requests may share an id, and afterwards
// the hint count must equal the entries in use.
func TestTrackingOneSet(t *testing.T) {
	requireRoot(t)
	requireBTF(t)
	p := newVethPair(t)
	r, err := NewRecorder(Config{
		Hooks:          []string{"net_dev_queue", "netif_receive_skb", "consume_skb", "kfree_skb"},
		Match:          Match{NetNS: p.inodeA},
		TrackedPackets: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := r.tracked.MaxEntries(); got != 1 {
		t.Fatalf("tracking table has %d sets, want 1", got)
	}
	const pings = 100
	events, _ := collect(t, r, p, 0, func() {
		run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "100", "-i", "0.002", "-W", "1", "-q", p.ipB)
	})

	// Echo requests by ICMP sequence number: the id at each hook.
	type hops struct{ queued, received uint64 }
	bySeq := map[uint16]*hops{}
	for _, e := range events {
		if !e.is(1, p.ipA, p.ipB) {
			continue
		}
		icmp := e.transport()
		if len(icmp) < 8 || icmp[0] != 8 {
			continue
		}
		seq := binary.BigEndian.Uint16(icmp[6:8])
		h := bySeq[seq]
		if h == nil {
			h = &hops{}
			bySeq[seq] = h
		}
		switch {
		case e.hook == "net_dev_queue" && e.netns == p.inodeA:
			h.queued = e.packetID
		case e.hook == "netif_receive_skb" && e.netns == p.inodeB:
			h.received = e.packetID
		}
	}
	if len(bySeq) != pings {
		t.Errorf("recorded %d echo requests, want %d", len(bySeq), pings)
	}
	owner := map[uint64]uint16{}
	for seq, h := range bySeq {
		switch {
		case h.queued == 0 || h.received == 0:
			t.Errorf("request %d: net_dev_queue id %d, netif_receive_skb id %d: a hop is missing", seq, h.queued, h.received)
		case h.queued != h.received:
			t.Errorf("request %d: id %d at net_dev_queue but %d at netif_receive_skb", seq, h.queued, h.received)
		}
		if other, ok := owner[h.queued]; ok && h.queued != 0 {
			t.Errorf("requests %d and %d share id %d", other, seq, h.queued)
		}
		owner[h.queued] = seq
	}

	// The hint count of the set's group is the number of entries in use:
	// raised and lowered once per entry, whatever replaced what.
	set := make([]byte, trackSetSize)
	if err := r.tracked.Lookup(uint32(0), &set); err != nil {
		t.Fatalf("read tracking set: %v", err)
	}
	used := uint32(0)
	for i := range trackWays {
		if binary.NativeEndian.Uint64(set[8*i:]) != 0 {
			used++
		}
	}
	hints := make([]byte, r.hints.ValueSize())
	if err := r.hints.Lookup(uint32(0), &hints); err != nil {
		t.Fatalf("read hints: %v", err)
	}
	if count := binary.NativeEndian.Uint32(hints[0:]); count != used {
		t.Errorf("hint count %d, but %d entries in use", count, used)
	}
	for slot := 1; slot < len(hints)/4; slot++ {
		if c := binary.NativeEndian.Uint32(hints[4*slot:]); c != 0 {
			t.Errorf("hint slot %d counts %d, but the table has one set (slot 0)", slot, c)
		}
	}
	t.Logf("%d requests followed through one 4-entry set; %d entries in use afterwards", len(bySeq), used)
}
