package capture

import (
	"strings"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/kallsyms"
)

// symbolize resolves a stack to function names, innermost first.
func symbolize(t *testing.T, stack []uint64) []string {
	t.Helper()
	syms, err := kallsyms.Load()
	if err != nil {
		failOrSkip(t, "load kallsyms: %v", err)
	}
	names := make([]string, len(stack))
	for i, a := range stack {
		if s, ok := syms.Resolve(a); ok {
			names[i] = s.Name
		} else {
			names[i] = "?"
		}
	}
	return names
}

// hasAnyFrame reports whether one of names is among frames.
func hasAnyFrame(frames []string, names ...string) bool {
	for _, f := range frames {
		for _, n := range names {
			if f == n {
				return true
			}
		}
	}
	return false
}

// checkNoGlue fails t if a stack starts in a BPF program or tracing glue.
func checkNoGlue(t *testing.T, what string, frames []string) {
	t.Helper()
	if len(frames) == 0 {
		t.Errorf("%s: empty stack", what)
		return
	}
	for _, p := range []string{"bpf_prog_", "bpf_trace_run", "__bpf_trace_", "bpf_trampoline_", "__traceiter_", "?"} {
		if strings.HasPrefix(frames[0], p) {
			t.Errorf("%s: stack starts in %s: %v", what, frames[0], frames)
		}
	}
}

func TestStackUDPDrop(t *testing.T) {
	p := newVethPair(t)
	run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
	events, st := recordWhile(t, p, Config{Hooks: []string{"net_dev_queue", "netif_receive_skb", "kfree_skb"}, Stack: true}, 0, func() {
		run(t, "ip", "netns", "exec", p.nsA, "bash", "-c", "echo hello >/dev/udp/"+p.ipB+"/9")
		time.Sleep(100 * time.Millisecond)
	})
	found := false
	for _, e := range events {
		if e.hook != "kfree_skb" || !e.is(17, p.ipA, p.ipB) {
			continue
		}
		found = true
		if e.stackLost {
			t.Fatalf("stack lost (errno %d)", e.stackErr)
		}
		frames := symbolize(t, e.stack)
		t.Logf("kfree_skb %s: %d frames: %s", e.reason, len(frames), strings.Join(frames, " < "))
		checkNoGlue(t, "kfree_skb", frames)
		if !hasAnyFrame(frames, "__udp4_lib_rcv") {
			t.Error("kfree_skb stack lacks __udp4_lib_rcv")
		}
		// ip_local_deliver ends in a tail call of ip_local_deliver_finish
		// (through NF_HOOK), so its own frame is usually gone.
		if !hasAnyFrame(frames, "ip_local_deliver", "ip_local_deliver_finish") {
			t.Error("kfree_skb stack lacks ip_local_deliver (or ip_local_deliver_finish)")
		}
	}
	if !found {
		t.Fatal("no kfree_skb event for the UDP datagram")
	}
	// Every event has a stack or says why not.
	for _, e := range events {
		if len(e.stack) == 0 && !e.stackLost {
			t.Errorf("%s: no stack and not marked lost", e.hook)
		}
	}
	t.Logf("%d events, stats %+v", len(events), st)
}

// TestStackPingVeth records the echo request's receive side in B. veth
// hands the skb to the peer's backlog inside veth_xmit (netif_rx fires
// there), and B's receive processing runs later from process_backlog: so
// veth_xmit is on the stack at netif_rx, and __netif_receive_skb & co at
// netif_receive_skb.
func TestStackPingVeth(t *testing.T) {
	p := newVethPair(t)
	events, _ := recordWhile(t, p, Config{Hooks: []string{"netif_rx", "netif_receive_skb"}, Stack: true, StackDepth: 48}, 0, func() {
		run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
	})
	want := map[string][]string{
		"netif_rx":          {"veth_xmit"},
		"netif_receive_skb": {"__netif_receive_skb", "__netif_receive_skb_core", "__netif_receive_skb_core.constprop.0", "__netif_receive_skb_one_core", "process_backlog"},
	}
	found := map[string]bool{}
	for _, e := range events {
		names, ok := want[e.hook]
		if !ok || e.netns != p.inodeB || !e.is(1, p.ipA, p.ipB) {
			continue
		}
		found[e.hook] = true
		if e.stackLost {
			t.Fatalf("%s: stack lost (errno %d)", e.hook, e.stackErr)
		}
		if len(e.stack) > 48 {
			t.Errorf("%s: %d frames, more than the depth 48", e.hook, len(e.stack))
		}
		frames := symbolize(t, e.stack)
		t.Logf("%s in B: %d frames: %s", e.hook, len(frames), strings.Join(frames, " < "))
		checkNoGlue(t, e.hook, frames)
		if !hasAnyFrame(frames, names...) {
			t.Errorf("%s: stack lacks %s", e.hook, strings.Join(names, " or "))
		}
	}
	for hook := range want {
		if !found[hook] {
			t.Errorf("no %s event of the echo request in B", hook)
		}
	}
}

// TestStackOff checks that events carry no stack unless asked.
func TestStackOff(t *testing.T) {
	p := newVethPair(t)
	events, _ := recordWhile(t, p, Config{Hooks: []string{"net_dev_queue"}}, 0, func() {
		run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
	})
	if len(events) == 0 {
		t.Fatal("no events")
	}
	for _, e := range events {
		if e.stack != nil || e.stackLost {
			t.Fatalf("%s: stack %v lost %v without Config.Stack", e.hook, e.stack, e.stackLost)
		}
	}
}
