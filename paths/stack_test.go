package paths

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/internal/testrec"
	"github.com/pathcap/pathcap/kmeta"
)

// TestStackFile checks the file contract: every event with a stack says
// stack=N and carries a stack comment; each distinct stack is defined in
// full once, its first time, and written as function names after that.
func TestStackFile(t *testing.T) {
	name := stackRecording(t, filepath.Join(t.TempDir(), "stacks.pcapng"))
	p := kmeta.NewParser()
	defined := map[uint64]string{}
	var full, short, lost int
	for i, cs := range testrec.Read(t, name).Comments() {
		var m kmeta.Event
		if err := p.Parse([]byte(cs[0]), &m); err != nil {
			t.Fatalf("event %d: %v", i+1, err)
		}
		if m.StackLost {
			lost++
			if len(cs) != 1 || m.StackErr != -14 || !strings.HasSuffix(cs[0], " stack=lost stack_err=-14") {
				t.Errorf("event %d: lost stack: %q", i+1, cs)
			}
			continue
		}
		if m.Stack == 0 || len(cs) != 2 {
			t.Fatalf("event %d: comments %q", i+1, cs)
		}
		var sc kmeta.StackComment
		if err := kmeta.ParseStackComment([]byte(cs[1]), &sc); err != nil {
			t.Fatalf("event %d: %v", i+1, err)
		}
		if sc.ID != m.Stack {
			t.Errorf("event %d: stack=%d but comment id=%d", i+1, m.Stack, sc.ID)
		}
		def, seen := defined[sc.ID]
		switch {
		case !seen && !sc.Full:
			t.Errorf("event %d: stack %d used before its definition", i+1, sc.ID)
		case seen && sc.Full:
			t.Errorf("event %d: stack %d defined again", i+1, sc.ID)
		case !seen:
			full++
			defined[sc.ID] = string(sc.Frames)
		default:
			short++
			var want []byte
			for rest := []byte(def); len(rest) > 0; {
				var f []byte
				f, rest = kmeta.NextFrame(rest)
				if len(want) > 0 {
					want = append(want, ';')
				}
				want = kmeta.AppendShortFrame(want, f)
			}
			if string(sc.Frames) != string(want) {
				t.Errorf("event %d: short form %q, want %q", i+1, sc.Frames, want)
			}
		}
	}
	// 5 distinct stacks; packets 2 and 3 repeat them (3 without the drop's).
	if full != 5 || short != 9 || lost != 1 {
		t.Errorf("%d definitions, %d short forms, %d lost; want 5, 9, 1", full, short, lost)
	}
	if want := strings.Join(stackDrop, ";"); defined[5] != want {
		t.Errorf("stack 5 is\n%s\nwant\n%s", defined[5], want)
	}
}

func stackPackets(t *testing.T, files ...string) []*Packet {
	t.Helper()
	pkts := analyze(t, Options{KeepData: true}, nil, files...)
	sortPackets(pkts)
	if len(pkts) != 3 {
		t.Fatalf("%d packets, want 3", len(pkts))
	}
	return pkts
}

func TestStackHops(t *testing.T) {
	pkts := stackPackets(t, stackRecording(t, filepath.Join(t.TempDir(), "stacks.pcapng")))
	wantStacks := [][]string{stackQueue, stackXmit, stackRx, stackReceive, stackDrop}
	for _, p := range pkts {
		if p.Outcome.Kind != Dropped || p.Outcome.Reason != "REASON_2" || p.Outcome.Location != "__udp4_lib_rcv+0x4bc" {
			t.Errorf("packet %d: outcome %+v", p.ID, p.Outcome)
		}
		for i, h := range p.Hops {
			if p.ID == 3 && i == 4 {
				if h.Stack != nil || !h.Meta.StackLost || h.Meta.StackErr != -14 || !p.Outcome.StackLost || p.Outcome.Stack != nil {
					t.Errorf("packet 3: the lost stack: %+v, outcome %+v", h.Meta, p.Outcome)
				}
				continue
			}
			if h.Stack == nil {
				t.Fatalf("packet %d hop %d: no stack", p.ID, i+1)
			}
			if h.Stack.ID != uint64(i+1) || h.Meta.Stack != uint64(i+1) || !h.Stack.Offsets || !slices.Equal(h.Stack.Frames, wantStacks[i]) {
				t.Errorf("packet %d hop %d: stack %d %v\n%q", p.ID, i+1, h.Stack.ID, h.Stack.Offsets, h.Stack.Frames)
			}
			// Packets share the Stack of a stack number.
			if p.ID > 1 && h.Stack != pkts[0].Hops[i].Stack {
				t.Errorf("packet %d hop %d: stack not shared", p.ID, i+1)
			}
		}
	}
	if o := pkts[0].Outcome; o.Stack != pkts[0].Hops[4].Stack {
		t.Errorf("outcome stack %v", o.Stack)
	}
}

func TestDerived(t *testing.T) {
	p := stackPackets(t, stackRecording(t, filepath.Join(t.TempDir(), "stacks.pcapng")))[0]
	want := [][]string{
		// The first hop: the whole call chain, without the tracing.
		{"entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_sendto", "__sys_sendto", "udp_sendmsg",
			"udp_send_skb", "ip_send_skb", "ip_output", "ip_finish_output2", "__dev_queue_xmit"},
		{"dev_hard_start_xmit"},
		{"veth_xmit", "__netif_rx", "netif_rx_internal"},
		{"__local_bh_enable_ip", "do_softirq", "handle_softirqs", "net_rx_action", "__napi_poll", "process_backlog",
			"__netif_receive_skb_one_core", "__netif_receive_skb_core.constprop.0"},
		derivedDrop,
	}
	for i := range p.Hops {
		if got := p.Derived(i); !slices.Equal(got, want[i]) {
			t.Errorf("hop %d (%s): derived %q, want %q", i+1, p.Hops[i].Meta.Hook, got, want[i])
		}
	}
	// A hop with the same stack as the previous one derives nothing; a
	// function hook's own function is not derived again.
	q := *p
	q.Hops = slices.Clone(p.Hops)
	q.Hops[2].Stack = q.Hops[1].Stack
	if d := q.Derived(2); d != nil {
		t.Errorf("same stack: derived %q", d)
	}
	m := *q.Hops[0].Meta // shared with p's hop
	m.Kind, m.Hook = "kprobe", "ip_rcv"
	q.Hops[0].Meta = &m
	if d := q.Derived(4); !slices.Equal(d, derivedDrop[1:]) {
		t.Errorf("with a kprobe hop at ip_rcv: derived %q", d)
	}
	// Without stacks, nothing is derived.
	pkts := analyze(t, Options{}, nil, tempRecording(t, "alpha", scenario()))
	for _, p := range pkts {
		for i := range p.Hops {
			if d := p.Derived(i); d != nil {
				t.Errorf("packet %d hop %d without stack: derived %q", p.ID, i+1, d)
			}
		}
	}
}

func TestDropStacks(t *testing.T) {
	pkts := stackPackets(t, stackRecording(t, filepath.Join(t.TempDir(), "stacks.pcapng")))
	s := NewSummary()
	s.DropStacks = 3
	for _, p := range pkts {
		s.Add(p)
	}
	d := s.Drops()
	if len(d) != 1 || d[0].Count != 3 || d[0].StackLost != 1 || len(d[0].Stacks) != 1 ||
		d[0].Stacks[0].Count != 2 || !slices.Equal(d[0].Stacks[0].Frames, stackDrop) {
		t.Fatalf("drops %+v", d)
	}
	// Without DropStacks, no stacks are counted.
	s2 := NewSummary()
	for _, p := range pkts {
		s2.Add(p)
	}
	if d := s2.Drops(); len(d) != 1 || d[0].Stacks != nil || d[0].StackLost != 0 {
		t.Errorf("drops without DropStacks %+v", d)
	}
}

// TestDropStacksBounded: past maxDistinctStacks distinct stacks, drops are
// counted under "(other)".
func TestDropStacksBounded(t *testing.T) {
	s := NewSummary()
	s.DropStacks = 2
	for i := range maxDistinctStacks + 10 {
		st := newStack(uint64(i+1), []byte(fmt.Sprintf("f%d+0x1", i)), true)
		p := &Packet{Outcome: Outcome{Kind: Dropped, Reason: "X", Stack: st}}
		s.Add(p)
		if i < 3 {
			s.Add(p)
		}
	}
	d := s.Drops()[0]
	if len(d.Stacks) != 2 || d.Stacks[0].Frames[0] != otherName || d.Stacks[0].Count != 10 || d.Stacks[1].Count != 2 {
		t.Errorf("stacks %+v", d.Stacks)
	}
}

// TestStacksAcrossRotation: the definitions of stacks in one part of a
// rotated recording serve the events of the other parts; a part alone
// still has every event's function names.
func TestStacksAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	whole := stackRecording(t, filepath.Join(dir, "stacks.pcapng"))
	want := dump(stackPackets(t, whole))
	parts := []string{filepath.Join(dir, "part1.pcapng"), filepath.Join(dir, "part2.pcapng")}
	rotate(t, whole, parts, 5) // packet 1, which defines every stack, in part 1
	if got := dump(stackPackets(t, parts...)); got != want {
		t.Errorf("rotated parts analyzed differently:\n%s\nwant\n%s", got, want)
	}
	if got := dump(stackPackets(t, parts[1], parts[0])); got != want {
		t.Errorf("rotated parts in reverse order analyzed differently")
	}
	// The second part alone: function names only.
	pkts := analyze(t, Options{}, nil, parts[1])
	if len(pkts) != 2 {
		t.Fatalf("%d packets", len(pkts))
	}
	sortPackets(pkts)
	h := pkts[0].Hops[4]
	if h.Stack == nil || h.Stack.Offsets || h.Stack.Frames[2] != "kfree_skb_reason" || h.Stack.Frames[0] != "bpf_prog_6deef7357e7b4530_on_tp[bpf]" {
		t.Fatalf("stack without its definition: %+v", h.Stack)
	}
	if d := pkts[0].Derived(4); !slices.Equal(d, derivedDrop) {
		t.Errorf("derived from function names: %q", d)
	}
	if pkts[1].Hops[4].Stack != nil || pkts[0].Hops[3].Stack != pkts[1].Hops[3].Stack {
		t.Error("short forms without definition are not shared")
	}
}

// TestStackCommentProblems: a stack comment that does not parse is counted
// like a bad metadata comment (an error with Strict), and an event whose
// stack comment is missing keeps its number without frames.
func TestStackCommentProblems(t *testing.T) {
	u := udp4Frame("10.0.0.1", "10.0.0.2", 1, 9, nil)
	bad := srv(ev{id: 1, at: ms(1), hook: "netif_receive_skb", data: u, extra: []string{"pathcap-stack/1 id=7 frames=a;;b"}})
	m := bad.meta()
	m.Stack = 7
	bad.comment = kmeta.AppendComment(nil, &m)
	missing := srv(ev{id: 2, at: ms(2), hook: "netif_receive_skb", data: u})
	m = missing.meta()
	m.Stack = 8
	missing.comment = kmeta.AppendComment(nil, &m)
	other := srv(ev{id: 3, at: ms(3), hook: "netif_receive_skb", data: u, extra: []string{"pathcap-stack/1 id=1 frames=x+0x1"}})
	m = other.meta()
	m.Stack = 9
	other.comment = kmeta.AppendComment(nil, &m)
	f := tempRecording(t, "alpha", []ev{bad, missing, other})

	in, err := Open([]string{f})
	if err != nil {
		t.Fatal(err)
	}
	var pkts []*Packet
	if err := Process(in, Options{}, nil, func(p *Packet) error { pkts = append(pkts, clonePacket(p)); return nil }); err != nil {
		t.Fatal(err)
	}
	in.Close()
	if in.BadComments != 1 {
		t.Errorf("%d bad comments, want 1", in.BadComments)
	}
	sortPackets(pkts)
	for i, p := range pkts {
		h := p.Hops[0]
		if !p.HasMeta || h.Meta.Stack != uint64(7+i) || h.Stack != nil {
			t.Errorf("packet %d: meta %v stack %d %v", p.ID, p.HasMeta, h.Meta.Stack, h.Stack)
		}
	}
	in, _ = Open([]string{f})
	in.Strict = true
	err = Process(in, Options{}, nil, func(*Packet) error { return nil })
	in.Close()
	if err == nil || !strings.Contains(err.Error(), "empty frame") {
		t.Errorf("strict: %v", err)
	}
}

// TestStackTableBound: the table of definitions is emptied when full;
// later short forms fall back to their function names.
func TestStackTableBound(t *testing.T) {
	var tab stackTable
	def := func(id uint64) *Stack {
		s, err := tab.stackFor(0, id, [][]byte{[]byte(fmt.Sprintf("pathcap-stack/1 id=%d frames=f+0x%x;g+0x1", id, id))})
		if err != nil || s == nil || !s.Offsets {
			t.Fatalf("stack %d: %v %v", id, s, err)
		}
		return s
	}
	first := def(1)
	if s, _ := tab.stackFor(0, 1, [][]byte{[]byte("pathcap-stack/1 id=1 funcs=f;g")}); s != first {
		t.Fatal("short form not resolved")
	}
	// Another recording's stack 1 is another stack.
	if s, _ := tab.stackFor(1, 1, [][]byte{[]byte("pathcap-stack/1 id=1 funcs=f;g")}); s == first || s.Offsets {
		t.Fatal("stack numbers of two recordings mixed")
	}
	for id := uint64(2); id <= maxStacks+1; id++ {
		def(id)
	}
	if len(tab.byKey) > maxStacks || tab.bytes > maxStackBytes {
		t.Errorf("%d stacks, %d bytes", len(tab.byKey), tab.bytes)
	}
	s, _ := tab.stackFor(0, 1, [][]byte{[]byte("pathcap-stack/1 id=1 funcs=f;g")})
	if s == first || s.Offsets || !slices.Equal(s.Frames, []string{"f", "g"}) {
		t.Errorf("after the table was emptied: %+v", s)
	}
}
