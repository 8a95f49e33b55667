package paths

import (
	"testing"
	"time"

	"github.com/pathcap/pathcap/kmeta"
)

// TestIDReusedAfterMemoryFree checks that a function backend's
// kfree_skbmem ends a packet: a later event with the same id (a new skb at
// the same address that inherited the id) starts a new packet, even within
// the grace period, while the release steps before it stay with the packet.
func TestIDReusedAfterMemoryFree(t *testing.T) {
	fn := func(hook string) []byte {
		return kmeta.AppendComment(nil, &kmeta.Event{Kind: "kprobe", Hook: hook, NetNS: 1, Ifindex: 2, Len: 84, Proto: 0x0800})
	}
	events := []ev{
		{id: 5, at: 0, hook: "net_dev_queue", netns: 1, ifindex: 2},
		{id: 5, at: time.Microsecond, comment: fn("skb_release_data")},
		{id: 5, at: 2 * time.Microsecond, comment: fn("kfree_skbmem")},
		{id: 5, at: 20 * time.Microsecond, hook: "net_dev_queue", netns: 1, ifindex: 2},
		{id: 5, at: 21 * time.Microsecond, hook: "net_dev_xmit", netns: 1, ifindex: 2},
	}
	file := tempRecording(t, "host", events)
	pkts := analyze(t, Options{}, nil, file)
	if len(pkts) != 2 {
		t.Fatalf("got %d packets, want 2", len(pkts))
	}
	if n := len(pkts[0].Hops); n != 3 || pkts[0].Hops[2].Meta.Hook != "kfree_skbmem" {
		t.Errorf("first packet has %d hops ending at %q, want 3 ending at kfree_skbmem", n, pkts[0].Hops[n-1].Meta.Hook)
	}
	if pkts[0].Outcome.Kind != Consumed {
		t.Errorf("first packet %v, want consumed (freed without a drop reason)", pkts[0].Outcome.Kind)
	}
	if n := len(pkts[1].Hops); n != 2 || pkts[1].Outcome.Kind != Transmitted {
		t.Errorf("second packet: %d hops, %v; want 2 hops, transmitted", n, pkts[1].Outcome.Kind)
	}
}
