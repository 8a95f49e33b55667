package capture

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestPingAcrossVeth(t *testing.T) {
	p := newVethPair(t)
	events, st := recordWhile(t, p, Config{RingBufferSize: 64 << 20}, 0, func() {
		run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
	})
	t.Logf("%d events, stats %+v", len(events), st)

	// The echo request (ICMP type 8 from A to B) as it is queued to A's
	// device. While ARP resolves, the stack may also free another skb
	// holding the same bytes, so pick the one that is transmitted.
	var id uint64
	for _, e := range events {
		if e.hook == "net_dev_queue" && e.is(1, p.ipA, p.ipB) && len(e.transport()) > 0 && e.transport()[0] == 8 {
			id = e.packetID
			break
		}
	}
	if id == 0 {
		t.Fatal("no echo request recorded")
	}
	type where struct {
		netns, ifindex uint32
	}
	want := map[string]where{
		"net_dev_queue":      {p.inodeA, p.ifindexA},
		"net_dev_start_xmit": {p.inodeA, p.ifindexA},
		"net_dev_xmit":       {p.inodeA, p.ifindexA},
		"netif_receive_skb":  {p.inodeB, p.ifindexB},
	}
	got := map[string]bool{}
	var path []string
	for _, e := range events {
		if e.packetID != id {
			continue
		}
		path = append(path, fmt.Sprintf("%s(ns=%d if=%d %s)", e.hook, e.netns, e.ifindex, e.header))
		if !e.is(1, p.ipA, p.ipB) {
			t.Errorf("%s: packet %d is not the echo request", e.hook, id)
		}
		w, ok := want[e.hook]
		if !ok {
			continue
		}
		got[e.hook] = true
		if e.netns != w.netns || e.ifindex != w.ifindex {
			t.Errorf("%s: netns %d ifindex %d, want %d %d", e.hook, e.netns, e.ifindex, w.netns, w.ifindex)
		}
		if e.header != HeaderMAC {
			t.Errorf("%s: bytes start at %v, want mac", e.hook, e.header)
		}
		if e.protocol != 0x0800 {
			t.Errorf("%s: protocol %#04x, want 0x0800", e.hook, e.protocol)
		}
	}
	t.Logf("packet %d: %s", id, strings.Join(path, " -> "))
	for hook := range want {
		if !got[hook] {
			t.Errorf("packet %d not seen at %s", id, hook)
		}
	}
}

func TestUDPNoSocketDrop(t *testing.T) {
	p := newVethPair(t)
	if _, err := exec.LookPath("bash"); err != nil {
		failOrSkip(t, "bash not found: %v", err)
	}
	// Resolve ARP first so the datagram is not queued behind it.
	run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
	events, _ := recordWhile(t, p, Config{Hooks: []string{"net_dev_queue", "netif_receive_skb", "kfree_skb"}}, 0, func() {
		run(t, "ip", "netns", "exec", p.nsA, "bash", "-c", "echo hello >/dev/udp/"+p.ipB+"/9")
		time.Sleep(100 * time.Millisecond)
	})
	found := false
	for _, e := range events {
		if e.hook != "kfree_skb" || !e.is(17, p.ipA, p.ipB) {
			continue
		}
		tr := e.transport()
		if len(tr) < 4 || tr[2] != 0 || tr[3] != 9 {
			continue
		}
		found = true
		t.Logf("kfree_skb: packet %d reason %s location %#x netns %d", e.packetID, e.reason, e.location, e.netns)
		if !e.hasDrop || e.reason != "NO_SOCKET" {
			t.Errorf("drop reason %q (has %v), want NO_SOCKET", e.reason, e.hasDrop)
		}
		if e.location == 0 {
			t.Error("no drop location")
		}
		if e.netns != p.inodeB {
			t.Errorf("netns %d, want %d", e.netns, p.inodeB)
		}
		if e.packetID == 0 {
			t.Error("packet id 0")
		}
		// The same packet was seen on the way.
		var hooks []string
		for _, o := range events {
			if o.packetID == e.packetID {
				hooks = append(hooks, o.hook)
			}
		}
		if len(hooks) < 3 {
			t.Errorf("packet %d seen at %v, want net_dev_queue, netif_receive_skb and kfree_skb", e.packetID, hooks)
		}
	}
	if !found {
		t.Fatal("no kfree_skb event for the UDP datagram")
	}
}

func TestLossCounted(t *testing.T) {
	p := newVethPair(t)
	events, st := recordWhile(t, nil, Config{RingBufferSize: 4096, Snaplen: 64}, 200*time.Microsecond, func() {
		run(t, "ip", "netns", "exec", p.nsA, "ping", "-f", "-q", "-c", "2000", p.ipB)
	})
	var lostBefore uint64
	for _, e := range events {
		lostBefore += e.lostBefore
	}
	t.Logf("%d events delivered, Stats %+v, sum of LostBefore %d", len(events), st, lostBefore)
	if st.Lost == 0 {
		t.Error("Stats().Lost = 0 under a ping flood into a 4 KiB ring buffer")
	}
	if lostBefore == 0 {
		t.Error("no event reports LostBefore > 0")
	}
	if lostBefore > st.Lost {
		t.Errorf("sum of LostBefore %d exceeds Stats().Lost %d", lostBefore, st.Lost)
	}
	if st.Events != uint64(len(events)) {
		t.Errorf("Stats().Events %d, delivered %d", st.Events, len(events))
	}
}

func TestQuietStreamFlushed(t *testing.T) {
	p := newVethPair(t)
	r, err := NewRecorder(Config{Hooks: []string{"net_dev_queue"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var delay time.Duration
	ping := exec.Command("ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "1", p.ipB)
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	defer ping.Wait()
	err = r.Run(ctx, func(e *Event) error {
		if s := seenOf(e); s.is(1, p.ipA, p.ipB) {
			delay = time.Since(e.Time)
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if delay == 0 {
		t.Fatal("echo request not delivered")
	}
	t.Logf("delivered %v after the hook fired", delay)
	if delay < 0 || delay > 4*pollInterval {
		t.Errorf("delivered %v after the hook fired, want at most %v", delay, 4*pollInterval)
	}
}
