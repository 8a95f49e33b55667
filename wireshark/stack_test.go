package wireshark_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/internal/testrec"
	"github.com/pathcap/pathcap/kmeta"
)

const (
	dropFrames = "kfree_skb_reason+0x9c;__udp4_lib_rcv+0x4bc;ip_local_deliver+0x6a;veth_xmit+0x10[veth];0xffffffffc0de1234"
	dropFuncs  = "kfree_skb_reason;__udp4_lib_rcv;ip_local_deliver;veth_xmit[veth];0xffffffffc0de1234"
)

// stackEvent is an event comment with stack keys.
func stackEvent(stack uint64, lost bool, stackErr int32) string {
	e := sampleEvents()[0]
	e.Stack, e.StackLost, e.StackErr = stack, lost, stackErr
	return comment(e)
}

func stackComment(id uint64, full bool, frames string) string {
	return string(kmeta.AppendStackComment(nil, &kmeta.StackComment{ID: id, Full: full, Frames: []byte(frames)}))
}

// stackFrames are frames of a recording with stacks, as record writes them.
func stackFrames() [][]string {
	return [][]string{
		// 1: the definition of stack 5.
		{stackEvent(5, false, 0), stackComment(5, true, dropFrames)},
		// 2: stack 5 again, short form: the offsets come from frame 1.
		{stackEvent(5, false, 0), stackComment(5, false, dropFuncs)},
		// 3: a lost stack.
		{stackEvent(0, true, -14)},
		// 4: a short form whose definition is not in the file.
		{stackEvent(6, false, 0), stackComment(6, false, "ip_rcv;__netif_receive_skb_core")},
		// 5: a short form for 5 whose functions do not agree with the
		// definition (another recording's stack 5): its own names.
		{stackEvent(5, false, 0), stackComment(5, false, "a;b")},
		// 6: no stack.
		{comment(sampleEvents()[0])},
	}
}

var stackFields = []string{"pathcap.stack.id", "pathcap.stack.lost", "pathcap.stack.err", "pathcap.stack.depth", "pathcap.stack.frame", "pathcap.stack.func"}

func TestStackFields(t *testing.T) {
	t.Parallel()
	file := writeCapture(t, stackFrames())
	funcs := strings.ReplaceAll(strings.ReplaceAll(dropFuncs, "[veth]", ""), ";", ",")
	want := [][]string{
		{"1", "5,5", "", "", "5", strings.ReplaceAll(dropFrames, ";", ","), funcs},
		{"2", "5,5", "", "", "5", strings.ReplaceAll(dropFrames, ";", ","), funcs},
		{"3", "", "1", "-14", "", "", ""},
		{"4", "6,6", "", "", "2", "ip_rcv,__netif_receive_skb_core", "ip_rcv,__netif_receive_skb_core"},
		{"5", "5,5", "", "", "2", "a,b", "a,b"},
		{"6", "", "", "", "", "", ""},
	}
	if got := fields(t, file, "", stackFields...); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	checkFilters(t, file, []filterCase{
		{`pathcap.stack.id == 5`, []int{1, 2, 5}},
		{`pathcap.stack.lost`, []int{3}},
		{`pathcap.stack.err == -14`, []int{3}},
		{`pathcap.stack.frame == "__udp4_lib_rcv+0x4bc"`, []int{1, 2}},
		{`pathcap.stack.func == "ip_local_deliver"`, []int{1, 2}},
		{`pathcap.stack.frame contains "[veth]"`, []int{1, 2}},
		{`pathcap.stack`, []int{1, 2, 4, 5}},
		{`pathcap.malformed`, nil},
	})
	out := tshark(t, file, "-V", "-O", "pathcap")
	for _, w := range []string{
		"pathcap: tp:kfree_skb on veth1 (netns 4026532841) dropped: NO_SOCKET at __udp4_lib_rcv+0x4bc, stack 5\n",
		"    Kernel stack 5 (5 frames, definition)\n",
		"    Kernel stack 5 (5 frames, offsets from frame 1)\n",
		"    Kernel stack 6 (2 frames, functions only)\n",
		"        Frame: veth_xmit+0x10[veth]\n",
		"        Function: veth_xmit\n",
		", stack lost\n",
		"    Stack lost: True\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("tree lacks %q:\n%s", w, out)
		}
	}
}

func TestStackViewFields(t *testing.T) {
	t.Parallel()
	file := writeCapture(t, [][]string{{
		`pathcap-path/1 id=29 outcome=dropped reason=NO_SOCKET hops=2 duration_ns=41200 path="netif_receive_skb>kfree_skb"`,
		`pathcap-hop/1 n=1 dt_ns=0 hook=tp:netif_receive_skb dev=vb netns=4026532178 ifindex=2 len=84 stack=4 frames=__netif_receive_skb_core+0x1a4;process_backlog+0x87 derived=process_backlog>__netif_receive_skb_core`,
		`pathcap-hop/1 n=2 dt_ns=41200 hook=tp:kfree_skb dev=vb netns=4026532178 ifindex=2 len=84 reason=NO_SOCKET stack=lost stack_err=-14`,
	}})
	got := fields(t, file, "", append(stackFields, "pathcap.derived")...)
	want := [][]string{{"1", "4", "1", "-14", "2", "__netif_receive_skb_core+0x1a4,process_backlog+0x87",
		"__netif_receive_skb_core,process_backlog", "process_backlog>__netif_receive_skb_core"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	out := tshark(t, file, "-V", "-O", "pathcap")
	for _, w := range []string{
		"    Hop 1 (+0 ns): tp:netif_receive_skb on vb (netns 4026532178), stack 4\n",
		"        Kernel stack (2 frames)\n",
		"            Frame: process_backlog+0x87\n",
		"        Functions derived from the stacks: process_backlog>__netif_receive_skb_core\n",
		"    Hop 2 (+41200 ns): tp:kfree_skb on vb (netns 4026532178) dropped: NO_SOCKET, stack lost\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("tree lacks %q:\n%s", w, out)
		}
	}
}

// malformedStacks are stack comments and keys that do not parse, with the
// message pathcap.malformed holds for each; kmeta rejects them too.
var malformedStacks = []struct{ comment, msg string }{
	{`pathcap-stack/1 id=0 frames=a`, `bad value "0" for id: stack numbers start at 1`},
	{`pathcap-stack/1 frames=a`, `no id key`},
	{`pathcap-stack/1 id=1`, `no frames or funcs key`},
	{`pathcap-stack/1 id=1 frames=a;;b`, `bad value "a;;b" for frames: empty frame`},
	{`pathcap-stack/1 id=1 funcs=a;`, `bad value "a;" for funcs: empty frame`},
	{`pathcap-stack/2 id=1 frames=a`, `byte 14: unsupported version 2 (this dissector knows 1)`},
	{`pathcap-stack/1 id=x frames=a`, `bad value "x" for id: not a 64-bit unsigned decimal number`},
	{`pathcap/1 hook=tp:x stack=0`, `bad value "0" for stack: not a stack number or lost`},
	{`pathcap/1 hook=tp:x stack=LOST`, `bad value "LOST" for stack: not a stack number or lost`},
	{`pathcap/1 hook=tp:x stack_err=x`, `bad value "x" for stack_err: not a 32-bit signed decimal number`},
	{`pathcap/1 hook=tp:x stack_err=2147483648`, `bad value "2147483648" for stack_err: not a 32-bit signed decimal number`},
}

func TestStackMalformed(t *testing.T) {
	t.Parallel()
	var frameComments [][]string
	for _, m := range malformedStacks {
		frameComments = append(frameComments, []string{m.comment})
	}
	file := writeCapture(t, frameComments)
	got := fields(t, file, "", "pathcap.malformed", "pathcap.stack.id", "pathcap.stack.frame")
	for i, m := range malformedStacks {
		if row := got[i]; row[1] != m.msg || row[2] != "" || row[3] != "" {
			t.Errorf("comment %q: malformed, stack id, frame = %q, want %q and no other field", m.comment, row[1:], m.msg)
		}
		var err error
		if strings.HasPrefix(m.comment, "pathcap/") {
			var e kmeta.Event
			err = kmeta.NewParser().Parse([]byte(m.comment), &e)
		} else {
			var sc kmeta.StackComment
			err = kmeta.ParseStackComment([]byte(m.comment), &sc)
		}
		if err == nil {
			t.Errorf("kmeta accepts %q, which the dissector rejects", m.comment)
		}
	}
}

// TestRecordingWithStacks reads a recording with stacks made by the
// recorder's writer (testdata/crafted/stacks.pcapng) with plain tshark and
// with the dissector: no warning, every event's frames in frame.comment,
// and the fields.
func TestRecordingWithStacks(t *testing.T) {
	t.Parallel()
	requireTshark(t)
	rec := testrec.Crafted(t, "stacks.pcapng")
	// Stock tshark, no script: no warning, and the comments hold the
	// frames of every event, in full the first time.
	out, stderr, err := runTshark(t, t.TempDir(), "-n", "-r", rec, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", "-e", "frame.comment")
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr)
	}
	for _, l := range strings.Split(stderr, "\n") {
		if l != "" && !strings.HasPrefix(l, "Running as user ") {
			t.Errorf("tshark warns:\n%s", stderr)
			break
		}
	}
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if len(rows) != 15 {
		t.Fatalf("%d frames, want 15", len(rows))
	}
	if !strings.Contains(rows[4], " stack=5|pathcap-stack/1 id=5 frames=bpf_prog_6deef7357e7b4530_on_tp+0x4f[bpf];bpf_trace_run2+0x52;kfree_skb_reason+0x9c;__udp4_lib_rcv+0x4bc;") {
		t.Errorf("frame 5 comments: %s", rows[4])
	}
	if !strings.Contains(rows[9], " stack=5|pathcap-stack/1 id=5 funcs=bpf_prog_6deef7357e7b4530_on_tp[bpf];bpf_trace_run2;kfree_skb_reason;__udp4_lib_rcv;") {
		t.Errorf("frame 10 comments: %s", rows[9])
	}
	if !strings.HasSuffix(rows[14], " stack=lost stack_err=-14") {
		t.Errorf("frame 15 comments: %s", rows[14])
	}
	// With the dissector: the same frames with offsets at both drops.
	got := fields(t, rec, "pathcap.hook_name == \"kfree_skb\"", "pathcap.stack.id", "pathcap.stack.lost", "pathcap.stack.depth", "pathcap.malformed")
	want := [][]string{{"5", "5,5", "", "25", ""}, {"10", "5,5", "", "25", ""}, {"15", "", "1", "", ""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	checkFilters(t, rec, []filterCase{
		{`pathcap.stack.frame == "__udp4_lib_rcv+0x4bc"`, []int{5, 10}},
		{`pathcap.stack.func == "veth_xmit" && pathcap.stack.frame == "veth_xmit+0x10[veth]"`, []int{3, 8, 13}},
		{`pathcap.stack.func == "no_such_function"`, nil},
		{`pathcap.stack.func == "__netif_rx"`, []int{3, 8, 13}},
	})
}
