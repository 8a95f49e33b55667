package recording_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/testrec"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/recording"
)

// fakeKernel is a tiny symbol table: function start, name, module.
var fakeKernel = []struct {
	start  uint64
	name   string
	module string
}{
	{0xffffffff81000000, "kfree_skb_reason", ""},
	{0xffffffff81000100, "__udp4_lib_rcv", ""},
	{0xffffffff81000800, "ip_local_deliver", ""},
	{0xffffffff81000900, "ip_rcv", ""},
	{0xffffffff81000a00, "__netif_receive_skb_core", ""},
	{0xffffffffc0000000, "veth_xmit", "veth"},
}

// SymbolizeFrame resolves addresses inside the functions of fakeKernel
// (each 0x100 bytes long, ip_local_deliver 0x100 too).
func (fakeSymbols) SymbolizeFrame(addr uint64) (string, uint64, string, bool) {
	for _, f := range fakeKernel {
		if addr >= f.start && addr < f.start+0x100 {
			return f.name, addr - f.start, f.module, true
		}
	}
	return "", 0, "", false
}

// Return addresses of a drop of a UDP packet to a closed port.
var (
	dropStack = []uint64{
		0xffffffff8100009c, // kfree_skb_reason+0x9c
		0xffffffff810001bc, // __udp4_lib_rcv+0xbc
		0xffffffff81000900, // the end of ip_local_deliver: a call that does not return
		0xffffffff8100095a, // ip_rcv+0x5a
		0xffffffffc0000010, // veth_xmit+0x10 [veth]
		0xffffffffa0001234, // unknown
	}
	dropFrames = "kfree_skb_reason+0x9c;__udp4_lib_rcv+0xbc;ip_local_deliver+0x100;ip_rcv+0x5a;veth_xmit+0x10[veth];0xffffffffa0001234"
	dropFuncs  = "kfree_skb_reason;__udp4_lib_rcv;ip_local_deliver;ip_rcv;veth_xmit[veth];0xffffffffa0001234"
	rxStack    = []uint64{0xffffffff81000a44, 0xffffffffc0000010}
)

// readComments returns every packet's comments.
func readComments(t *testing.T, data []byte) [][]string {
	t.Helper()
	return testrec.ReadBytes(t, data).Comments()
}

func TestWriteStacks(t *testing.T) {
	var buf bytes.Buffer
	w := mustWriter(t, &buf)
	drop := capture.Event{Hook: &freeHook, Time: t0, PacketID: 1, NetNS: 1, Ifindex: 2, Data: make([]byte, 20),
		HasDrop: true, DropLocation: 0xffffffff81000000, Stack: dropStack}
	rx := capture.Event{Hook: &queueHook, Time: t0, PacketID: 2, NetNS: 1, Ifindex: 2, Data: make([]byte, 20), Stack: rxStack}
	noStack := capture.Event{Hook: &queueHook, Time: t0, PacketID: 3, NetNS: 1, Ifindex: 2, Data: make([]byte, 20)}
	lost := capture.Event{Hook: &queueHook, Time: t0, PacketID: 4, NetNS: 1, Ifindex: 2, Data: make([]byte, 20), StackLost: true, StackErr: -14}
	empty := capture.Event{Hook: &queueHook, Time: t0, PacketID: 5, NetNS: 1, Ifindex: 2, Data: make([]byte, 20), Stack: []uint64{}}
	// The recorder reuses its stack buffer: the writer must copy.
	reused := append([]uint64(nil), dropStack...)
	dropAgain := drop
	dropAgain.Stack = reused
	for _, ev := range []*capture.Event{&drop, &rx, &dropAgain, &noStack, &lost, &rx, &empty} {
		if err := w.WriteEvent(ev); err != nil {
			t.Fatal(err)
		}
	}
	for i := range reused {
		reused[i] = 0
	}
	if err := w.WriteEvent(&dropAgain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(0, t0); err != nil {
		t.Fatal(err)
	}
	if n, resets := w.Stacks(); n != 3 || resets != 0 {
		t.Errorf("Stacks() = %d, %d; want 3 distinct stacks, no reset", n, resets)
	}
	got := readComments(t, buf.Bytes())
	want := []struct {
		key   string // the stack keys at the end of the event comment
		stack string // the stack comment
	}{
		{" stack=1", "pathcap-stack/1 id=1 frames=" + dropFrames},
		{" stack=2", "pathcap-stack/1 id=2 frames=__netif_receive_skb_core+0x44;veth_xmit+0x10[veth]"},
		{" stack=1", "pathcap-stack/1 id=1 funcs=" + dropFuncs},
		{"", ""},
		{" stack=lost stack_err=-14", ""},
		{" stack=2", "pathcap-stack/1 id=2 funcs=__netif_receive_skb_core;veth_xmit[veth]"},
		{" stack=lost", ""},
		{" stack=3", "pathcap-stack/1 id=3 frames=0x0;0x0;0x0;0x0;0x0;0x0"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	p := kmeta.NewParser()
	for i, w := range want {
		cs := got[i]
		if w.stack == "" && len(cs) != 1 || w.stack != "" && (len(cs) != 2 || cs[1] != w.stack) {
			t.Errorf("event %d: comments %q, want the stack comment %q", i+1, cs, w.stack)
		}
		var m kmeta.Event
		if err := p.Parse([]byte(cs[0]), &m); err != nil {
			t.Fatalf("event %d: %v", i+1, err)
		}
		tail := ""
		if i := strings.Index(cs[0], " stack="); i >= 0 {
			tail = cs[0][i:]
		}
		if tail != w.key {
			t.Errorf("event %d: comment %q ends in %q, want %q", i+1, cs[0], tail, w.key)
		}
		if len(cs) == 2 {
			var sc kmeta.StackComment
			if err := kmeta.ParseStackComment([]byte(cs[1]), &sc); err != nil {
				t.Errorf("event %d: %v", i+1, err)
			} else if sc.ID != m.Stack {
				t.Errorf("event %d: stack comment id %d, event stack=%d", i+1, sc.ID, m.Stack)
			}
		}
	}
}

// A Symbolizer that cannot resolve stack frames leaves them addresses.
type plainSymbols struct{}

func (plainSymbols) AppendSymbol(dst []byte, addr uint64) ([]byte, bool) { return dst, false }

func TestStacksWithoutSymbols(t *testing.T) {
	var buf bytes.Buffer
	w, err := recording.NewWriter(&buf, recording.Info{Snaplen: 64}, 0, nil, plainSymbols{})
	if err != nil {
		t.Fatal(err)
	}
	ev := capture.Event{Hook: &queueHook, Time: t0, Data: make([]byte, 20), Stack: rxStack}
	for range 2 {
		if err := w.WriteEvent(&ev); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	got := readComments(t, buf.Bytes())
	if got[0][1] != "pathcap-stack/1 id=1 frames=0xffffffff81000a44;0xffffffffc0000010" ||
		got[1][1] != "pathcap-stack/1 id=1 funcs=0xffffffff81000a44;0xffffffffc0000010" {
		t.Errorf("stack comments %q and %q", got[0][1], got[1][1])
	}
}

// TestStackTableBound fills the writer's stack table: the next new stack
// empties it, and a stack seen before is then written in full again under
// a new number.
func TestStackTableBound(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 65,538 events")
	}
	var buf bytes.Buffer
	w := mustWriter(t, &buf)
	stack := []uint64{0xffffffff81000a44, 0}
	ev := capture.Event{Hook: &queueHook, Time: t0, Data: make([]byte, 20), Stack: stack}
	for i := range recording.MaxStacks + 1 {
		stack[1] = uint64(i)
		if err := w.WriteEvent(&ev); err != nil {
			t.Fatal(err)
		}
	}
	stack[1] = 0
	if err := w.WriteEvent(&ev); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, resets := w.Stacks(); n != recording.MaxStacks+2 || resets != 1 {
		t.Errorf("Stacks() = %d, %d; want %d and 1 reset", n, resets, recording.MaxStacks+2)
	}
	got := readComments(t, buf.Bytes())
	last := got[len(got)-1][1]
	if want := "pathcap-stack/1 id=65538 frames=__netif_receive_skb_core+0x44;0x0"; last != want {
		t.Errorf("the first stack after the reset: %q, want %q", last, want)
	}
}

func TestRepeatedStackAllocatesNothing(t *testing.T) {
	w, err := recording.NewWriter(io.Discard, recording.Info{Snaplen: 128}, 256<<10, fakeNames{}, fakeSymbols{})
	if err != nil {
		t.Fatal(err)
	}
	ev := capture.Event{Hook: &queueHook, Time: t0, NetNS: 1, Ifindex: 2, Data: make([]byte, 60),
		DropLocation: 0xffffffff81000000, Stack: dropStack}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := w.WriteEvent(&ev); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("WriteEvent with a repeated stack allocates %.1f times, want 0", allocs)
	}
}

// BenchmarkWriteEventStack is BenchmarkWriteEvent with a 24-frame kernel
// stack: "repeated" writes the same stack every time (the short form),
// "distinct" a new stack every time (the full form, symbolized).
func BenchmarkWriteEventStack(b *testing.B) {
	stack := make([]uint64, 24)
	for i := range stack {
		f := fakeKernel[i%len(fakeKernel)]
		stack[i] = f.start + uint64(0x10+i)
	}
	for _, distinct := range []bool{false, true} {
		name := "repeated"
		if distinct {
			name = "distinct"
		}
		b.Run(name, func(b *testing.B) {
			w, err := recording.NewWriter(io.Discard, recording.Info{Snaplen: 128}, 256<<10, fakeNames{}, fakeSymbols{})
			if err != nil {
				b.Fatal(err)
			}
			frame := make([]byte, 98)
			ev := capture.Event{Hook: &queueHook, Time: t0, PID: 7, TID: 8, SKB: 0xffff888100001000, PacketID: 5, NetNS: 4026532000, Ifindex: 2,
				Protocol: 0x0800, Len: 98, Data: frame, Stack: stack}
			copy(ev.Comm[:], "ping")
			b.ReportAllocs()
			n := uint64(0)
			for b.Loop() {
				if distinct {
					n++
					stack[len(stack)-1] = n
				}
				if err := w.WriteEvent(&ev); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
