package kmeta_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/kmeta"
)

// udpDropFrames are the frames of a drop of a UDP packet to a closed port,
// full form.
const udpDropFrames = "kfree_skb_reason+0x9c;__udp4_lib_rcv+0x4bc;ip_protocol_deliver_rcu+0x30;ip_local_deliver_finish+0x76;" +
	"ip_local_deliver+0x6a;ip_rcv+0x5a;__netif_receive_skb_one_core+0x89;process_backlog+0x87;__napi_poll+0x28;" +
	"net_rx_action+0x2a3;handle_softirqs+0xd8;veth_xmit+0x10[veth];0xffffffffc0de1234"

func ExampleAppendStackComment() {
	var frames []byte
	frames = kmeta.AppendFrame(frames, "__netif_receive_skb_core", 0x1a4, "", true)
	frames = append(frames, ';')
	frames = kmeta.AppendFrame(frames, "veth_xmit", 0x10, "veth", true)
	frames = append(frames, ';')
	frames = kmeta.AppendAddressFrame(frames, 0xffffffffc0de1234)
	full := kmeta.StackComment{ID: 3, Full: true, Frames: frames}
	fmt.Println(string(kmeta.AppendStackComment(nil, &full)))

	var funcs []byte
	for rest := frames; len(rest) > 0; {
		var f []byte
		f, rest = kmeta.NextFrame(rest)
		if len(funcs) > 0 {
			funcs = append(funcs, ';')
		}
		funcs = kmeta.AppendShortFrame(funcs, f)
	}
	short := kmeta.StackComment{ID: 3, Frames: funcs}
	fmt.Println(string(kmeta.AppendStackComment(nil, &short)))
	// Output:
	// pathcap-stack/1 id=3 frames=__netif_receive_skb_core+0x1a4;veth_xmit+0x10[veth];0xffffffffc0de1234
	// pathcap-stack/1 id=3 funcs=__netif_receive_skb_core;veth_xmit[veth];0xffffffffc0de1234
}

func TestStackCommentRoundTrip(t *testing.T) {
	for _, want := range []kmeta.StackComment{
		{ID: 1, Full: true, Frames: []byte(udpDropFrames)},
		{ID: 1, Frames: []byte("kfree_skb_reason;__udp4_lib_rcv;veth_xmit[veth]")},
		{ID: 18446744073709551615, Full: true, Frames: []byte("x")},
		// Values that need quoting survive too (the writer never makes
		// them: AppendFrame replaces such bytes).
		{ID: 9, Frames: []byte("a b;\"c\";é")},
	} {
		c := kmeta.AppendStackComment(nil, &want)
		var got kmeta.StackComment
		if err := kmeta.ParseStackComment(c, &got); err != nil {
			t.Fatalf("parse %q: %v", c, err)
		}
		if got.ID != want.ID || got.Full != want.Full || !bytes.Equal(got.Frames, want.Frames) {
			t.Errorf("comment %q: got %+v", c, got)
		}
		if !kmeta.IsStackComment(c) || kmeta.IsMetadata(c) {
			t.Errorf("comment %q: IsStackComment %v, IsMetadata %v", c, kmeta.IsStackComment(c), kmeta.IsMetadata(c))
		}
	}
}

func TestParseStackCommentKeys(t *testing.T) {
	var s kmeta.StackComment
	// Unknown keys are ignored; frames= wins over funcs= in any order.
	err := kmeta.ParseStackComment([]byte(`pathcap-stack/1 funcs=a;b future="x y" id=4 frames=a+0x1;b+0x2`), &s)
	if err != nil || s.ID != 4 || !s.Full || string(s.Frames) != "a+0x1;b+0x2" {
		t.Errorf("got %+v, %v", s, err)
	}
	if err := kmeta.ParseStackComment([]byte("pathcap/1 hook=tp:x"), &s); !errors.Is(err, kmeta.ErrNotStack) {
		t.Errorf("event comment: %v, want ErrNotStack", err)
	}
}

func TestParseStackCommentErrors(t *testing.T) {
	for in, want := range map[string]string{
		"pathcap-stack/":                           "no version",
		"pathcap-stack/2 id=1 frames=a":            "unsupported",
		"pathcap-stack/1 frames=a":                 "no id",
		"pathcap-stack/1 id=1":                     "no frames or funcs",
		"pathcap-stack/1 id=0 frames=a":            "start at 1",
		"pathcap-stack/1 id=x frames=a":            "decimal",
		"pathcap-stack/1 id=1 frames=a;;b":         "empty frame",
		"pathcap-stack/1 id=1 frames=;a":           "empty frame",
		"pathcap-stack/1 id=1 funcs=a;":            "empty frame",
		"pathcap-stack/1 id=1 frames=\"\"":         "no frames",
		"pathcap-stack/1 id=1 frames=":             "empty value",
		"pathcap-stack/1 id=1  frames=a":           "key=value",
		"pathcap-stack/1 id=1 frames=a\x01":        "bad byte",
		"pathcap-stack/1 id=1 frames=\"a":          "unterminated",
		"pathcap-stack/1id=1":                      "expected a space",
		"pathcap-stack/1 id=1 Frames=a":            "key=value",
		"pathcap-stack/1 id=1 frames=\"\\q\"":      "bad quoted",
		"pathcap-stack/1 id=99999999999999999999 ": "overflows",
	} {
		var s kmeta.StackComment
		err := kmeta.ParseStackComment([]byte(in), &s)
		var se *kmeta.SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%q: got %v, want a *SyntaxError", in, err)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %q does not mention %q", in, err, want)
		}
	}
}

func TestAppendFrame(t *testing.T) {
	for _, c := range []struct {
		name, module string
		off          uint64
		full         bool
		want         string
	}{
		{"ip_rcv", "", 0x5a, true, "ip_rcv+0x5a"},
		{"ip_rcv", "", 0x5a, false, "ip_rcv"},
		{"veth_xmit", "veth", 0x10, true, "veth_xmit+0x10[veth]"},
		{"veth_xmit", "veth", 0x10, false, "veth_xmit[veth]"},
		{"foo.cold", "", 0, true, "foo.cold+0x0"},
		// Bytes that would break the frame or comment syntax.
		{"a b;c[d]+e\"f\\g\x01é", "m]; n", 1, true, "a?b?c?d??e?f?g???+0x1[m???n]"},
		{"", "", 2, true, "?+0x2"},
	} {
		got := string(kmeta.AppendFrame(nil, c.name, c.off, c.module, c.full))
		if got != c.want {
			t.Errorf("AppendFrame(%q, %#x, %q, %v) = %q, want %q", c.name, c.off, c.module, c.full, got, c.want)
		}
		if fn := kmeta.FrameFunction(got); !c.full && c.module == "" && fn != got {
			t.Errorf("FrameFunction(%q) = %q", got, fn)
		}
		if short := string(kmeta.AppendShortFrame(nil, []byte(got))); short != string(kmeta.AppendFrame(nil, c.name, 0, c.module, false)) {
			t.Errorf("AppendShortFrame(%q) = %q", got, short)
		}
	}
	for frame, want := range map[string][2]string{
		"__udp4_lib_rcv+0x4bc": {"__udp4_lib_rcv", ""},
		"veth_xmit+0x10[veth]": {"veth_xmit", "veth"},
		"veth_xmit[veth]":      {"veth_xmit", "veth"},
		"0xffffffffc0de1234":   {"0xffffffffc0de1234", ""},
		"ip_rcv":               {"ip_rcv", ""},
	} {
		if fn, mod := kmeta.FrameFunction(frame), kmeta.FrameModule(frame); fn != want[0] || mod != want[1] {
			t.Errorf("%q: function %q module %q, want %q", frame, fn, mod, want)
		}
	}
	if n := kmeta.CountFrames([]byte(udpDropFrames)); n != 13 {
		t.Errorf("CountFrames = %d, want 13", n)
	}
}

func TestStackCommentAllocatesNothing(t *testing.T) {
	s := kmeta.StackComment{ID: 12345, Full: true, Frames: []byte(udpDropFrames)}
	c := kmeta.AppendStackComment(nil, &s)
	var got kmeta.StackComment
	if allocs := testing.AllocsPerRun(100, func() { _ = kmeta.ParseStackComment(c, &got) }); allocs != 0 {
		t.Errorf("ParseStackComment allocates %.1f times, want 0", allocs)
	}
	if allocs := testing.AllocsPerRun(100, func() { c = kmeta.AppendStackComment(c[:0], &s) }); allocs != 0 {
		t.Errorf("AppendStackComment allocates %.1f times, want 0", allocs)
	}
}

func FuzzParseStackComment(f *testing.F) {
	f.Add("pathcap-stack/1 id=3 frames=" + udpDropFrames)
	f.Add("pathcap-stack/1 id=3 funcs=a;b[veth];0xffff")
	f.Add(`pathcap-stack/1 id=1 frames="a b;c"`)
	f.Fuzz(func(t *testing.T, s string) {
		var sc kmeta.StackComment
		if err := kmeta.ParseStackComment([]byte(s), &sc); err != nil {
			return
		}
		if sc.ID == 0 || kmeta.CountFrames(sc.Frames) == 0 {
			t.Fatalf("%q parsed into %+v", s, sc)
		}
		for rest := sc.Frames; len(rest) > 0; {
			var fr []byte
			fr, rest = kmeta.NextFrame(rest)
			if len(fr) == 0 {
				t.Fatalf("%q: empty frame in %q", s, sc.Frames)
			}
		}
		c := kmeta.AppendStackComment(nil, &sc)
		var again kmeta.StackComment
		if err := kmeta.ParseStackComment(c, &again); err != nil {
			t.Fatalf("re-parse of %q: %v", c, err)
		}
		if again.ID != sc.ID || again.Full != sc.Full || !bytes.Equal(again.Frames, sc.Frames) {
			t.Fatalf("round trip changed %+v into %+v", sc, again)
		}
	})
}

func BenchmarkParseStackComment(b *testing.B) {
	s := kmeta.StackComment{ID: 12345, Full: true, Frames: []byte(udpDropFrames)}
	c := kmeta.AppendStackComment(nil, &s)
	var got kmeta.StackComment
	b.SetBytes(int64(len(c)))
	b.ReportAllocs()
	for b.Loop() {
		if err := kmeta.ParseStackComment(c, &got); err != nil {
			b.Fatal(err)
		}
	}
}
