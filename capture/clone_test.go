package capture

import (
	"testing"
	"time"
)

// TestCloneLinkedOnTracepoints: ping runs as root with a raw socket, so
// the echo reply reaches it as a clone (raw_local_deliver's skb_clone),
// which no tracepoint sees being made. The clone shares the reply's
// buffer: the tracepoint backend follows it under an id of its own,
// linked to the reply's (parent).
func TestCloneLinkedOnTracepoints(t *testing.T) {
	requireRoot(t)
	requireBTF(t)
	p := newVethPair(t)
	quiet(t, p)
	run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
	events, _ := recordWhile(t, p, Config{Backend: BackendTracepoint}, 0, func() {
		run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "3", "-i", "0.2", "-W", "2", p.ipB)
		time.Sleep(100 * time.Millisecond)
	})
	replies := map[uint64]bool{}
	for _, e := range events {
		if e.hook == "net_dev_queue" && e.netns == p.inodeB && e.is(1, p.ipB, p.ipA) && e.transport()[0] == 0 {
			replies[e.packetID] = true
		}
	}
	if len(replies) != 3 {
		t.Fatalf("%d echo replies at B's net_dev_queue, want 3", len(replies))
	}
	linked := map[uint64]bool{}
	for _, e := range events {
		if e.hook == "skb_copy_datagram_iovec" && e.comm == "ping" && e.netns == p.inodeA {
			if e.parent == 0 && !replies[e.packetID] {
				t.Errorf("ping copied packet %d to user space without a link to the reply it was cloned from", e.packetID)
				continue
			}
			if replies[e.parent] {
				linked[e.parent] = true
			}
		}
	}
	if len(linked) != 3 {
		t.Errorf("%d of 3 echo replies have a linked clone copied to ping", len(linked))
	}
}
