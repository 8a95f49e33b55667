package kmeta_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/kmeta"
)

func sampleDrop() kmeta.Event {
	return kmeta.Event{
		Kind: "tp", Hook: "kfree_skb", Dev: "veth1", NetNS: 4026532841, Ifindex: 2,
		SKB: 0xffff8e2b45a3c400, Len: 42, Proto: 0x0800, CPU: 1, Comm: "swapper/1",
		HasDrop: true, Reason: "NO_SOCKET", Location: "__udp4_lib_rcv+0x4bc",
	}
}

func ExampleAppendComment() {
	e := sampleDrop()
	fmt.Println(string(kmeta.AppendComment(nil, &e)))
	// Output:
	// pathcap/2 hook=tp:kfree_skb dev=veth1 skb=0xffff8e2b45a3c400 len=42 proto=0x0800 cpu=1 pid=0 comm=swapper/1 reason=NO_SOCKET loc=__udp4_lib_rcv+0x4bc
}

func ExampleAppendText() {
	e := sampleDrop()
	fmt.Println(string(kmeta.AppendText(nil, &e)))
	// Output:
	// hook=tp:kfree_skb dev=veth1 netns=4026532841 ifindex=2 skb=0xffff8e2b45a3c400 len=42 proto=0x0800 cpu=1 pid=0 comm=swapper/1 reason=NO_SOCKET loc=__udp4_lib_rcv+0x4bc
}

// writeAsRecord returns e's comment as record writes it, with the place of
// the interface record gives it: named after the device when there is
// one, the comment's dev only where that name does not say it (DevFor).
func writeAsRecord(e *kmeta.Event) ([]byte, kmeta.Place) {
	ifName := kmeta.NoDeviceName
	if e.Ifindex != 0 {
		ifName = kmeta.UnresolvedName(e.Ifindex)
		if e.Dev != "" {
			ifName = e.Dev
		}
	}
	w := *e
	w.Dev = kmeta.DevFor(e.Dev, ifName, e.Ifindex)
	return kmeta.AppendComment(nil, &w), kmeta.PlaceOf(ifName, kmeta.InterfaceDescription(e.NetNS, "", e.Ifindex))
}

func TestRoundTrip(t *testing.T) {
	events := []kmeta.Event{
		sampleDrop(),
		{Kind: "tp", Hook: "net_dev_queue", NetNS: 1, Comm: "ping", PID: 77, TID: 78},
		{Kind: "fexit", Hook: "ip_rcv", Dev: "eth 0 \"quoted\"", NetNS: 5, Ifindex: 9, SKB: 1, Len: 1500, DataLen: 1400,
			Proto: 0x86dd, PktType: 3, Mark: 0xdeadbeef, Header: kmeta.HeaderNetwork, CPU: 7, PID: 1, TID: 2,
			Comm: "a b\tc\x01é", Parent: 99, RetVal: -22, HasRetVal: true},
		{Kind: "kprobe", Hook: "x", Comm: "", Header: kmeta.HeaderData, PktType: 200, HasDrop: true, Reason: "NOT_SPECIFIED"},
		{Kind: "tp", Hook: "kfree_skb", Comm: "swapper/0", HasDrop: true, Reason: "NO_SOCKET", Location: "__udp4_lib_rcv+0x4bc", Stack: 17},
		{Kind: "tp", Hook: "net_dev_queue", Comm: "ping", Stack: 18446744073709551615},
		{Kind: "tp", Hook: "net_dev_queue", Comm: "ping", StackLost: true, StackErr: -14},
		{Kind: "tp", Hook: "net_dev_queue", Comm: "ping", StackLost: true},
		{Kind: "kprobe", Hook: "ip_rcv_core", Len: 84, Proto: 0x0800, Header: kmeta.HeaderNetwork, BytesSame: true, Parent: 3},
		{Kind: "fexit", Hook: "bpf_prog_3b185187f1855c4c_drop_flow", Comm: "ping", ProgType: kmeta.ProgTC,
			Prog: "drop_flow", ProgID: 42, ProgTag: "3b185187f1855c4c", RetVal: 2, HasRetVal: true},
		{Kind: "fentry", Hook: "bpf_prog_x_y", ProgType: kmeta.ProgXDP, Prog: "a b", ProgID: 4294967295},
		{Kind: "kprobe", Hook: "nf_hook_slow", Comm: "ping", NFHook: "input", NFFamily: "ip"},
		{Kind: "fexit", Hook: "nft_do_chain", Comm: "ping", NFHook: "prerouting", NFFamily: "ip6", NFTFamily: "inet",
			NFTTable: "my table", NFTChain: "in\"put", NFVerdict: kmeta.NFDrop, RetVal: 0, HasRetVal: true},
	}
	p := kmeta.NewParser()
	for i, want := range events {
		// The comment's dev only where the interface's name does not
		// say it (never here, but for the ambiguous name).
		c, place := writeAsRecord(&want)
		if strings.Contains(string(c), " netns=") || strings.Contains(string(c), " ifindex=") || place.Dev == want.Dev && strings.Contains(string(c), " dev=") {
			t.Errorf("event %d: comment %q says what the interface says", i, c)
		}
		p.SetPlace(place)
		var got kmeta.Event
		if err := p.Parse(c, &got); err != nil {
			t.Fatalf("event %d: parse %q: %v", i, c, err)
		}
		if got != want {
			t.Errorf("event %d: comment %q\n got %+v\nwant %+v", i, c, got, want)
		}
	}
}

// TestPlaces: a version 2 comment's device, namespace and ifindex are
// those of its interface, unless it names another device (renamed since
// the interface block, or named like an unresolved one); the memo keeps
// the same comment on two interfaces apart; a version 1 comment says all
// three itself; a missing tid is the pid.
func TestPlaces(t *testing.T) {
	p := kmeta.NewParser()
	c := []byte("pathcap/2 hook=tp:net_dev_queue skb=0x10 len=84 proto=0x0800 cpu=0 pid=7 comm=ping")
	for _, tc := range []struct {
		ifName, desc string
		dev          string
		netns, idx   uint32
	}{
		{"veth-a", "netns 4026532174 (nsA) ifindex 2", "veth-a", 4026532174, 2},
		{"veth-b", "netns 4026532239 (nsB) ifindex 2", "veth-b", 4026532239, 2},
		{"if5", "netns 4026531840 (init) ifindex 5", "", 4026531840, 5},
		{"nodev", "netns 4026531840 (init) no device", "", 4026531840, 0},
		{"odd", "not a description", "", 0, 0},
		{"veth-a", "netns 4026532174 (nsA) ifindex 2", "veth-a", 4026532174, 2},
	} {
		p.SetPlace(kmeta.PlaceOf(tc.ifName, tc.desc))
		for _, share := range []bool{false, true, true} {
			var e kmeta.Event
			got := &e
			var err error
			if share {
				got, err = p.ParseShared(c, &e)
			} else {
				err = p.Parse(c, &e)
			}
			if err != nil || got.Dev != tc.dev || got.NetNS != tc.netns || got.Ifindex != tc.idx || got.TID != 7 {
				t.Errorf("on %s (%s), shared %v: dev %q netns %d ifindex %d tid %d, %v; want %q %d %d 7",
					tc.ifName, tc.desc, share, got.Dev, got.NetNS, got.Ifindex, got.TID, err, tc.dev, tc.netns, tc.idx)
			}
		}
	}
	p.SetPlace(kmeta.PlaceOf("veth-a", "netns 4026532174 (nsA) ifindex 2"))
	var e kmeta.Event
	if err := p.Parse([]byte("pathcap/2 hook=tp:net_dev_queue dev=veth-new skb=0x10 cpu=0 pid=7 tid=8 comm=ping"), &e); err != nil ||
		e.Dev != "veth-new" || e.NetNS != 4026532174 || e.Ifindex != 2 || e.TID != 8 {
		t.Errorf("renamed device: %+v, %v", e, err)
	}
	if err := p.Parse([]byte("pathcap/1 hook=tp:net_dev_queue dev=eth0 netns=9 ifindex=3 skb=0x10 cpu=0 pid=7 tid=8 comm=ping"), &e); err != nil ||
		e.Dev != "eth0" || e.NetNS != 9 || e.Ifindex != 3 || e.TID != 8 {
		t.Errorf("version 1: %+v, %v", e, err)
	}
	if err := p.Parse([]byte("pathcap/1 hook=tp:net_dev_queue netns=9 ifindex=3 skb=0x10 cpu=0 pid=7 tid=8 comm=ping"), &e); err != nil ||
		e.Dev != "" || e.NetNS != 9 {
		t.Errorf("version 1 without a device name: %+v, %v", e, err)
	}
	for dev, want := range map[[2]string]string{
		{"veth-a", "veth-a"}: "",
		{"veth-a", "if2"}:    "veth-a",
		{"if2", "if2"}:       "if2",
		{"", "veth-a"}:       "",
	} {
		if got := kmeta.DevFor(dev[0], dev[1], 2); got != want {
			t.Errorf("DevFor(%q, %q): %q, want %q", dev[0], dev[1], got, want)
		}
	}
}

func TestParseIgnoresUnknownKeys(t *testing.T) {
	var e kmeta.Event
	err := kmeta.NewParser().Parse([]byte(`pathcap/1 hook=tp:consume_skb future=1 other="x y" len=5`), &e)
	if err != nil {
		t.Fatal(err)
	}
	if e.Hook != "consume_skb" || e.Len != 5 {
		t.Errorf("got %+v", e)
	}
}

func TestParseErrors(t *testing.T) {
	p := kmeta.NewParser()
	var e kmeta.Event
	if err := p.Parse([]byte("a user's comment"), &e); !errors.Is(err, kmeta.ErrNotMetadata) {
		t.Errorf("plain comment: got %v, want ErrNotMetadata", err)
	}
	bad := map[string]string{
		"pathcap/":                                          "no version",
		"pathcap/3 hook=tp:x":                               "unsupported version",
		"pathcap/1":                                         "no hook",
		"pathcap/1 hook=tp:x  len=1":                        "invalid key",
		"pathcap/1 hook=tp:x len":                           "key=value",
		"pathcap/1 hook=tpx":                                "kind:name",
		"pathcap/1 hook=tp:x len=":                          "empty value",
		"pathcap/1 hook=tp:x len=12a":                       "decimal",
		"pathcap/1 hook=tp:x len=99999999999":               "32 bits",
		"pathcap/1 hook=tp:x skb=ffff":                      "0x",
		"pathcap/1 hook=tp:x comm=\"abc":                    "unterminated",
		"pathcap/1 hook=tp:x comm=\"a\\q\"":                 "bad quoted",
		"pathcap/1 hook=tp:x Len=1":                         "invalid key",
		"pathcap/1 hook=tp:x hdr=eth":                       "unknown hdr",
		"pathcap/1 hook=tp:x bytes=all":                     "unknown bytes",
		"pathcap/1 hook=tp:x proto=0x10000":                 "16 bits",
		"pathcap/1 hook=tp:x comm=a\x01b":                   "bad byte",
		"pathcap/1hook=tp:x":                                "expected a space",
		"pathcap/1 hook=tp:x parent=1844674407370955161600": "decimal",
		"pathcap/1 hook=tp:x stack=0":                       "start at 1",
		"pathcap/1 hook=tp:x stack=LOST":                    "decimal",
		"pathcap/1 hook=tp:x stack=-1":                      "decimal",
		"pathcap/1 hook=tp:x stack_err=x":                   "stack_err",
		"pathcap/1 hook=tp:x stack_err=2147483648":          "stack_err",
	}
	for in, want := range bad {
		err := p.Parse([]byte(in), &e)
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

func TestParseAllocatesNothingForKnownStrings(t *testing.T) {
	e := sampleDrop()
	c := kmeta.AppendComment(nil, &e)
	p := kmeta.NewParser()
	var got kmeta.Event
	if err := p.Parse(c, &got); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() { _ = p.Parse(c, &got) })
	if allocs != 0 {
		t.Errorf("Parse allocates %.1f times per comment, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() { c = kmeta.AppendComment(c[:0], &e) })
	if allocs != 0 {
		t.Errorf("AppendComment allocates %.1f times per comment, want 0", allocs)
	}
}

func FuzzParse(f *testing.F) {
	e := sampleDrop()
	f.Add(string(kmeta.AppendComment(nil, &e)))
	f.Add(`pathcap/1 hook=tp:x comm="a b" dev="\xff"`)
	f.Add(`pathcap/1 hook=tp:x stack=12`)
	f.Add(`pathcap/1 hook=tp:x stack=lost stack_err=-14`)
	f.Add(`pathcap/1 hook=tp:x skipped=12`)
	f.Add(`pathcap/1 hook=tp:x stack=lost stack=3 stack_err=0`)
	f.Fuzz(func(t *testing.T, s string) {
		p := kmeta.NewParser()
		var e kmeta.Event
		if err := p.Parse([]byte(s), &e); err != nil {
			return
		}
		// What parses must survive a round trip, written as record
		// writes it.
		c, place := writeAsRecord(&e)
		p.SetPlace(place)
		var again kmeta.Event
		if err := p.Parse(c, &again); err != nil {
			t.Fatalf("re-parse of %q: %v", c, err)
		}
		if again != e {
			t.Fatalf("round trip changed %+v into %+v", e, again)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	e := sampleDrop()
	c := kmeta.AppendComment(nil, &e)
	p := kmeta.NewParser()
	var got kmeta.Event
	b.SetBytes(int64(len(c)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse(c, &got); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendComment(b *testing.B) {
	e := sampleDrop()
	var c []byte
	b.ReportAllocs()
	for b.Loop() {
		c = kmeta.AppendComment(c[:0], &e)
	}
}
