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
	testCloneLinkedOnTracepoints(t)
}

// TestInVMCloneLinkedOnTracepoints is TestCloneLinkedOnTracepoints on the
// VM's kernel (5.10, 6.1 and 6.12 type skb->head differently from this
// host's: their programs copy the bytes they filter), after timing how
// long the tracepoint programs take to load with and without the
// costliest filter: the clone links add table scans the older verifiers
// walk more slowly.
func TestInVMCloneLinkedOnTracepoints(t *testing.T) {
	requireVM(t)
	for _, expr := range []string{"", "ip6 protochain 58"} {
		cfg := Config{Backend: BackendTracepoint}
		if expr != "" {
			cfg.Filter = vmFilterOf(t, expr)
		}
		start := time.Now()
		r, err := NewRecorder(cfg)
		if err != nil {
			t.Fatalf("filter %q: %v", expr, err)
		}
		t.Logf("tracepoint backend, filter %q: %d hooks, %d programs attached in %v", expr, len(r.Hooks()), len(r.progs), time.Since(start).Round(time.Millisecond))
		checkSharedPrograms(t, r)
		r.Close()
	}
	testCloneLinkedOnTracepoints(t)
}

// testCloneLinkedOnTracepoints records ping's echo replies, delivered to
// its raw socket as clones no tracepoint sees being made, with the
// tracepoint backend, and checks that each copy to ping names the reply it
// was cloned from.
func testCloneLinkedOnTracepoints(t *testing.T) {
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

// checkSharedPrograms checks that a tracepoint recorder r shares its
// programs among the tracepoints of one argument layout exactly where the
// kernel is 6.10 or later (raw tracepoint cookies), and that it then loads
// fewer than half as many programs as it has hooks.
func checkSharedPrograms(t *testing.T, r *Recorder) {
	t.Helper()
	v, _ := ParseKernelVersion(kernelRelease(), readTrim("/proc/version"), readTrim("/proc/version_signature"))
	want := !v.Less(KernelVersion{6, 10, 0})
	if r.compat.sharedTP != want {
		t.Errorf("Linux %s: programs shared %v, want %v", v, r.compat.sharedTP, want)
	}
	tps := len(r.Hooks()) + len(r.untrack)
	if want && len(r.progs)*2 > tps {
		t.Errorf("Linux %s: %d programs for %d tracepoints, want fewer than half", v, len(r.progs), tps)
	}
	if !want && len(r.progs) != tps {
		t.Errorf("Linux %s: %d programs for %d tracepoints, want one each", v, len(r.progs), tps)
	}
}
