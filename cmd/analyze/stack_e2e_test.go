package main

// End-to-end tests of kernel stacks: record --stack on a veth pair (root),
// then the recording read by analyze and tshark.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/testrec"
	"github.com/pathcap/pathcap/kmeta"
)

// stackEvent is an event of a recording with its stack's frames.
type stackEvent struct {
	id     uint64
	meta   kmeta.Event
	frames []string // as written: in full or function names only
	full   bool
}

// funcs returns the function names of the frames.
func (e *stackEvent) funcs() []string {
	var out []string
	for _, f := range e.frames {
		out = append(out, kmeta.FrameFunction(f))
	}
	return out
}

// recordStacks runs record --stack with args while traffic runs, and
// returns the recording's file name.
func recordStacks(t *testing.T, record string, traffic func(), args ...string) string {
	t.Helper()
	dir := t.TempDir()
	file, ready := filepath.Join(dir, "rec.pcapng"), filepath.Join(dir, "ready")
	cmd := exec.Command(record, append([]string{"--stack", "-w", file, "--ready-file", ready, "--duration", "60s", "-s", "128"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record did not get ready: %s", stderr.String())
		}
	}
	traffic()
	time.Sleep(300 * time.Millisecond) // let the last events reach the ring
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("record: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("record did not stop on SIGINT")
	}
	if !strings.Contains(stderr.String(), "recording kernel stacks") {
		t.Errorf("record's standard error does not mention stacks:\n%s", stderr.String())
	}
	return file
}

// readStackEvents reads every event of a recording with its stack.
func readStackEvents(t *testing.T, name string) []stackEvent {
	t.Helper()
	var out []stackEvent
	for _, pk := range testrec.Read(t, name).Packets {
		cs := pk.Options.Comments
		e := stackEvent{id: pk.Options.PacketID, meta: pk.Meta}
		if len(cs) == 0 {
			t.Fatalf("event %d has no comment", len(out)+1)
		}
		if pk.MetaErr != nil {
			t.Fatal(pk.MetaErr)
		}
		switch {
		case e.meta.StackLost:
			if len(cs) != 1 {
				t.Errorf("event with a lost stack has %d comments", len(cs))
			}
		case e.meta.Stack == 0:
			t.Errorf("event %q has no stack key", cs[0])
		case len(cs) != 2:
			t.Errorf("event %q has %d comments, want 2", cs[0], len(cs))
		default:
			var sc kmeta.StackComment
			if err := kmeta.ParseStackComment(cs[1], &sc); err != nil {
				t.Fatal(err)
			}
			if sc.ID != e.meta.Stack {
				t.Errorf("stack=%d with stack comment %d", e.meta.Stack, sc.ID)
			}
			e.full = sc.Full
			for _, fr := range strings.Split(string(sc.Frames), ";") {
				e.frames = append(e.frames, fr)
			}
		}
		out = append(out, e)
	}
	return out
}

// hasFunc reports whether funcs holds a function starting with one of
// the prefixes.
func hasFunc(funcs []string, prefixes ...string) bool {
	return slices.ContainsFunc(funcs, func(f string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(f, p) {
				return true
			}
		}
		return false
	})
}

// inOrder reports whether functions starting with the prefixes appear in
// funcs in this order.
func inOrder(funcs []string, prefixes ...string) bool {
	i := 0
	for _, f := range funcs {
		if i < len(prefixes) && strings.HasPrefix(f, prefixes[i]) {
			i++
		}
	}
	return i == len(prefixes)
}

// checkStackFile checks what holds for every recording with stacks: each
// stack is defined once, before its short forms, and tshark reads the
// file without a warning, the dissector without a malformed comment.
func checkStackFile(t *testing.T, file string, events []stackEvent) {
	t.Helper()
	defined := map[uint64]bool{}
	for _, e := range events {
		if e.meta.Stack == 0 {
			continue
		}
		if e.full == defined[e.meta.Stack] {
			t.Errorf("stack %d: full form %v after %v definitions", e.meta.Stack, e.full, defined[e.meta.Stack])
		}
		defined[e.meta.Stack] = true
	}
	bin := testenv.RequireTool(t, "tshark")
	script := filepath.Join(testenv.ModuleRoot(t), "wireshark", "pathcap.lua")
	for _, args := range [][]string{
		{"-n", "-r", file},
		{"-n", "-X", "lua_script:" + script, "-r", file, "-Y", "pathcap.malformed || _ws.malformed || _ws.expert.severity >= warning"},
	} {
		cmd := exec.Command(bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("tshark %q: %v\n%s", args, err, stderr.String())
		}
		for _, l := range strings.Split(stderr.String(), "\n") {
			if l != "" && !strings.HasPrefix(l, "Running as user ") {
				t.Errorf("tshark %q warns: %s", args, l)
			}
		}
		if len(args) > 3 && stdout.Len() > 0 {
			t.Errorf("tshark finds malformed comments or warnings:\n%s", stdout.String())
		}
	}
}

// frameComments returns the frame.comment values of the frames tshark's
// filter selects, one string per frame.
func frameComments(t *testing.T, file, filter string) []string {
	t.Helper()
	bin := testenv.RequireTool(t, "tshark")
	out, err := exec.Command(bin, "-n", "-r", file, "-Y", filter, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", "-e", "frame.comment").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func TestStacksEndToEnd(t *testing.T) {
	pair := testenv.NewVethPair(t)
	record := testenv.BuildCommand(t, "record")
	analyze := testenv.BuildCommand(t, "analyze")
	pair.Exec(t, pair.NSA, "ping", "-c", "1", "-W", "2", pair.IPB) // neighbours resolved

	t.Run("UDPToClosedPort", func(t *testing.T) {
		bash := testenv.RequireTool(t, "bash")
		file := recordStacks(t, record, func() {
			pair.Exec(t, pair.NSA, bash, "-c", fmt.Sprintf("echo pathcap > /dev/udp/%s/9", pair.IPB))
		}, "--netns", pair.NSA, "udp", "port", "9")
		events := readStackEvents(t, file)
		checkStackFile(t, file, events)
		var drop *stackEvent
		for i := range events {
			if e := &events[i]; e.meta.Hook == "kfree_skb" && e.meta.Reason == "NO_SOCKET" {
				drop = e
			}
		}
		if drop == nil {
			t.Fatalf("no kfree_skb NO_SOCKET among %d events", len(events))
		}
		// ip_rcv and ip_local_deliver reach their successors through
		// tail calls, which leave no return address: the stack may show
		// ip_local_deliver_finish alone.
		if !drop.full || !inOrder(drop.funcs(), "__udp4_lib_rcv", "ip_local_deliver") {
			t.Fatalf("the drop's stack lacks __udp4_lib_rcv and ip_local_deliver* (innermost first): %q", drop.frames)
		}
		// Stock tshark shows the frames in the event's comments.
		cs := frameComments(t, file, fmt.Sprintf("frame.packet_id == %d && frame.comment contains \"reason=NO_SOCKET\"", drop.id))
		if len(cs) != 1 || !strings.Contains(cs[0], "|pathcap-stack/1 id=") || !strings.Contains(cs[0], ";__udp4_lib_rcv+0x") {
			t.Errorf("frame.comment of the drop: %q", cs)
		}

		// analyze: the stack and the derived functions at the drop.
		r := run(t, analyze, "", "paths", "--json", "--id", fmt.Sprint(drop.id), file)
		r.expect(t, 0)
		ps := decodePaths(t, r.stdout)
		if len(ps) != 1 || ps[0].Outcome.Kind != "dropped" {
			t.Fatalf("paths --json: %s", r.stdout)
		}
		last := ps[0].Hops[len(ps[0].Hops)-1]
		if last.Hook != "kfree_skb" || last.StackID != drop.meta.Stack || !slices.Equal(last.Stack, drop.frames) {
			t.Errorf("drop hop %+v, want the stack %q", last, drop.frames)
		}
		// Each hop derives the functions entered since the previous one:
		// along the path, the packet passed ip_local_deliver* and
		// __udp4_lib_rcv before it was freed.
		var derived []string
		for _, h := range ps[0].Hops {
			derived = append(derived, h.Derived...)
		}
		if !inOrder(derived, "ip_local_deliver", "__udp4_lib_rcv") || !slices.Contains(last.Derived, kmeta.FrameFunction(drop.frames[0])) {
			t.Errorf("derived functions %q lack ip_local_deliver* > __udp4_lib_rcv, or the drop's %q", derived, last.Derived)
		}
		r = run(t, analyze, "", "report", "--stacks", "--id", fmt.Sprint(drop.id), file)
		r.expect(t, 0)
		if !strings.Contains(r.stdout, "             derived: ") || !strings.Contains(r.stdout, "> __udp4_lib_rcv >") ||
			!strings.Contains(r.stdout, "\n               __udp4_lib_rcv+0x") || !strings.Contains(r.stdout, "\n               ip_local_deliver") {
			t.Errorf("report --stacks:\n%s", r.stdout)
		}
		r = run(t, analyze, "", "stats", "--json", "--stacks", "1", file)
		r.expect(t, 0)
		st := decodeStats(t, r.stdout)
		for _, d := range st.Drops {
			if d.Reason == "NO_SOCKET" && (len(d.Stacks) != 1 || !hasFunc(d.Stacks[0].Stack, "__udp4_lib_rcv+")) {
				t.Errorf("stats --stacks 1: %+v", d)
			}
		}
		t.Logf("drop stack: %s", strings.Join(drop.frames, " "))
	})

	t.Run("PingAcrossVeth", func(t *testing.T) {
		file := recordStacks(t, record, func() {
			pair.Exec(t, pair.NSA, "ping", "-c", "1", "-W", "2", pair.IPB)
		}, "--netns", pair.NSA, "icmp")
		events := readStackEvents(t, file)
		checkStackFile(t, file, events)
		// The echo request's events on the receiving side (in B).
		var request uint64
		for _, e := range events {
			if e.meta.NetNS == pair.InodeA && e.meta.Hook == "net_dev_queue" && request == 0 {
				request = e.id
			}
		}
		frames := map[uint64][]string{} // stack number -> frames in full
		var receive, veth bool
		for _, e := range events {
			if e.full {
				frames[e.meta.Stack] = e.frames
			}
			if e.id != request || e.meta.NetNS != pair.InodeB || e.meta.Stack == 0 {
				continue
			}
			funcs := e.funcs()
			receive = receive || hasFunc(funcs, "__netif_receive_skb")
			veth = veth || hasFunc(funcs, "veth_xmit")
		}
		if request == 0 || !receive || !veth {
			t.Fatalf("echo request %d: receive-side stacks with __netif_receive_skb %v, with veth_xmit %v", request, receive, veth)
		}
		// Stock tshark: every receive-side event's comments hold its
		// frames.
		for _, c := range frameComments(t, file, fmt.Sprintf("frame.packet_id == %d && frame.interface_description contains \"netns %d \"", request, pair.InodeB)) {
			if !strings.Contains(c, "|pathcap-stack/1 id=") {
				t.Errorf("receive-side event without frames in frame.comment: %s", c)
			}
		}

		r := run(t, analyze, "", "paths", "--json", "--id", fmt.Sprint(request), file)
		r.expect(t, 0)
		ps := decodePaths(t, r.stdout)
		if len(ps) != 1 {
			t.Fatalf("paths --json: %s", r.stdout)
		}
		var derivedReceive, derivedVeth bool
		for _, h := range ps[0].Hops {
			if h.StackID == 0 || len(h.Stack) == 0 || !slices.Equal(h.Stack, frames[h.StackID]) {
				t.Errorf("hop %s: stack %d %q, want %q", h.Hook, h.StackID, h.Stack, frames[h.StackID])
			}
			derivedReceive = derivedReceive || hasFunc(h.Derived, "__netif_receive_skb")
			derivedVeth = derivedVeth || hasFunc(h.Derived, "veth_xmit")
		}
		if !derivedReceive || !derivedVeth {
			t.Errorf("derived functions lack __netif_receive_skb* (%v) or veth_xmit (%v): %s", derivedReceive, derivedVeth, r.stdout)
		}
		r = run(t, analyze, "", "report", "--stacks", "--id", fmt.Sprint(request), file)
		r.expect(t, 0)
		if !strings.Contains(r.stdout, "\n               veth_xmit+0x") || !strings.Contains(r.stdout, "\n               __netif_receive_skb") {
			t.Errorf("report --stacks:\n%s", r.stdout)
		}
		// The path view keeps the frames.
		view := filepath.Join(t.TempDir(), "view.pcapng")
		run(t, analyze, "", "wireshark", "-o", view, file).expect(t, 0)
		found := false
		for _, f := range readView(t, view) {
			for _, c := range f.comments {
				found = found || strings.Contains(c, " frames=") && strings.Contains(c, "veth_xmit+0x")
			}
		}
		if !found {
			t.Error("the path view has no hop with veth_xmit among its frames")
		}
	})
}
