package recording_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/pcapng"
	"github.com/pathcap/pathcap/recording"
)

type fakeNames struct{}

func (fakeNames) DeviceName(netns, ifindex uint32) (string, bool) {
	if ifindex == 2 {
		return "veth0", true
	}
	return "", false
}

func (fakeNames) NamespaceName(netns uint32) string { return "nsA" }

type fakeSymbols struct{}

func (fakeSymbols) AppendSymbol(dst []byte, addr uint64) ([]byte, bool) {
	if addr == 0xffffffff81000000 {
		return append(dst, "__udp4_lib_rcv+0x4bc"...), true
	}
	return dst, false
}

var (
	queueHook = capture.Hook{Name: "net_dev_queue", Kind: capture.HookTracepoint}
	freeHook  = capture.Hook{Name: "kfree_skb", Kind: capture.HookTracepoint}
	t0        = time.Date(2026, 11, 25, 8, 0, 0, 123456789, time.UTC)
)

func mustWriter(t testing.TB, w io.Writer) *recording.Writer {
	t.Helper()
	rw, err := recording.NewWriter(w, recording.Info{Hardware: "x86_64", OS: "Linux test", Application: "pathcap test", Snaplen: 128}, 0, fakeNames{}, fakeSymbols{})
	if err != nil {
		t.Fatal(err)
	}
	return rw
}

func TestWriteEvents(t *testing.T) {
	var buf bytes.Buffer
	w := mustWriter(t, &buf)
	frame := bytes.Repeat([]byte{0xab}, 60)
	binary.BigEndian.PutUint16(frame[12:], 0x0800)
	ev := capture.Event{Hook: &queueHook, Time: t0, PID: 7, TID: 8, SKB: 0x1000, PacketID: 5, NetNS: 4026532000, Ifindex: 2,
		Protocol: 0x0800, Len: 60, Data: frame}
	copy(ev.Comm[:], "ping")
	if err := w.WriteEvent(&ev); err != nil {
		t.Fatal(err)
	}
	// A drop on an skb whose bytes start at the network header, after
	// three lost events.
	drop := ev
	drop.Hook, drop.Header, drop.Data, drop.Len = &freeHook, capture.HeaderNetwork, frame[14:], 46
	drop.HasDrop, drop.DropLocation, drop.LostBefore, drop.Ifindex = true, 0xffffffff81000000, 3, 0
	if err := w.WriteEvent(&drop); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(3, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}

	r, err := pcapng.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var got []kmeta.Event
	var pkts []pcapng.Packet
	var stats []pcapng.InterfaceStatistics
	p := kmeta.NewParser()
	for {
		typ, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case pcapng.BlockEnhancedPacket:
			pk := *r.Packet()
			pk.Data = bytes.Clone(pk.Data)
			var m kmeta.Event
			pk.Interface = &r.Interfaces()[pk.InterfaceID]
			p.SetPlace(kmeta.PlaceOf(pk.Interface.Name, pk.Interface.Description))
			if err := p.Parse(pk.Options.Comments[0], &m); err != nil {
				t.Fatal(err)
			}
			ifc := *pk.Interface
			pk.Interface = &ifc
			got = append(got, m)
			pkts = append(pkts, pk)
		case pcapng.BlockInterfaceStatistics:
			stats = append(stats, *r.InterfaceStatistics())
		}
	}
	if len(got) != 2 {
		t.Fatalf("read %d events, want 2", len(got))
	}
	q := pkts[0]
	if q.Interface.Name != "veth0" || q.Interface.Description != "netns 4026532000 (nsA) ifindex 2" {
		t.Errorf("interface %q %q", q.Interface.Name, q.Interface.Description)
	}
	if !q.Timestamp.Equal(t0) || q.Options.PacketID != 5 || q.Options.Flags != pcapng.DirectionOutbound || q.Options.ProcessID != 7 || q.Options.ThreadID != 8 {
		t.Errorf("options of the first event: %+v at %v", q.Options, q.Timestamp)
	}
	if !bytes.Equal(q.Data, frame) || q.Options.HasDropCount {
		t.Errorf("first event data or dropcount wrong: %+v", q.Options)
	}
	if m := got[0]; m.Hook != "net_dev_queue" || m.Kind != "tp" || m.Dev != "veth0" || m.Comm != "ping" || m.Header != kmeta.HeaderMAC {
		t.Errorf("first comment: %+v", m)
	}
	d := pkts[1]
	// The synthesized Ethernet header: zero addresses, the skb's protocol.
	want := append(append(make([]byte, 12), 0x08, 0x00), frame[14:]...)
	if !bytes.Equal(d.Data, want) || d.OriginalLength != 46+14 {
		t.Errorf("drop data %x (orig %d), want %x", d.Data, d.OriginalLength, want)
	}
	if d.Interface.Name != "nodev" || d.Options.DropCount != 3 || d.Options.HasFlags {
		t.Errorf("drop event: interface %q, options %+v", d.Interface.Name, d.Options)
	}
	if m := got[1]; !m.HasDrop || m.Reason != "REASON_0" || m.Location != "__udp4_lib_rcv+0x4bc" || m.Header != kmeta.HeaderNetwork {
		t.Errorf("drop comment: %+v", m)
	}
	// One ISB per interface: veth0 and "nodev" in nsA with one event
	// each, and the loss interface (no device, no netns) with the loss.
	if len(stats) != 3 {
		t.Fatalf("%d ISBs, want 3", len(stats))
	}
	for i, s := range stats {
		wantRecv, wantLost := uint64(1), uint64(0)
		if i == 2 {
			wantRecv, wantLost = 0, 3
		}
		if !s.HasIfRecv || s.IfRecv != wantRecv || s.OSDrop != wantLost || s.HasOSDrop != (i == 2) {
			t.Errorf("ISB %d: %d events, %d lost (present %v), want %d and %d", i, s.IfRecv, s.OSDrop, s.HasOSDrop, wantRecv, wantLost)
		}
	}
}

func TestLossWithoutDevicelessEvents(t *testing.T) {
	var buf bytes.Buffer
	w := mustWriter(t, &buf)
	ev := capture.Event{Hook: &queueHook, Time: t0, NetNS: 1, Ifindex: 2, Data: make([]byte, 20)}
	if err := w.WriteEvent(&ev); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(9, t0); err != nil {
		t.Fatal(err)
	}
	r, _ := pcapng.NewReader(&buf)
	var lost uint64
	for {
		typ, err := r.Next()
		if err != nil {
			break
		}
		if typ == pcapng.BlockInterfaceStatistics {
			s := r.InterfaceStatistics()
			if s.HasOSDrop {
				lost += s.OSDrop
				if name := r.Interfaces()[s.InterfaceID].Name; name != "nodev" {
					t.Errorf("loss on interface %q, want nodev", name)
				}
			}
		}
	}
	if lost != 9 {
		t.Errorf("lost %d, want 9", lost)
	}
}

// TestCloneAndReturnValue checks that a clone's parent and a function's
// return value reach the comment.
func TestCloneAndReturnValue(t *testing.T) {
	var buf bytes.Buffer
	w := mustWriter(t, &buf)
	hook := capture.Hook{Name: "skb_clone", Kind: capture.HookFexit}
	ev := capture.Event{Hook: &hook, Time: t0, NetNS: 1, Ifindex: 2, PacketID: 9, Parent: 7, RetVal: -22, HasRetVal: true, Data: make([]byte, 20)}
	if err := w.WriteEvent(&ev); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(0, t0); err != nil {
		t.Fatal(err)
	}
	r, _ := pcapng.NewReader(&buf)
	p, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	var m kmeta.Event
	if err := kmeta.NewParser().Parse(p.Options.Comments[0], &m); err != nil {
		t.Fatal(err)
	}
	if m.Parent != 7 || !m.HasRetVal || m.RetVal != -22 || m.Kind != "fexit" || m.Hook != "skb_clone" {
		t.Errorf("comment %q gives %+v", p.Options.Comments[0], m)
	}
}

func TestDirection(t *testing.T) {
	for hook, want := range map[string]uint32{
		"netif_receive_skb": pcapng.DirectionInbound, "napi_gro_receive_entry": pcapng.DirectionInbound,
		"net_dev_xmit": pcapng.DirectionOutbound, "kfree_skb": pcapng.DirectionUnknown,
	} {
		if got := recording.Direction(hook); got != want {
			t.Errorf("%s: %d, want %d", hook, got, want)
		}
	}
}

// BenchmarkWriteEvent measures the user-side cost of one event: comment,
// options and block, into memory.
func BenchmarkWriteEvent(b *testing.B) {
	w, err := recording.NewWriter(io.Discard, recording.Info{Snaplen: 128}, 256<<10, fakeNames{}, fakeSymbols{})
	if err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, 98)
	ev := capture.Event{Hook: &queueHook, Time: t0, PID: 7, TID: 8, SKB: 0xffff888100001000, PacketID: 5, NetNS: 4026532000, Ifindex: 2,
		Protocol: 0x0800, Len: 98, Data: frame}
	copy(ev.Comm[:], "ping")
	b.ReportAllocs()
	for b.Loop() {
		if err := w.WriteEvent(&ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestNewWriterChecksFirst checks that a Writer with arguments out of range
// is refused before anything is written.
func TestNewWriterChecksFirst(t *testing.T) {
	for _, snaplen := range []int{0, -1, 1 << 20} {
		var buf bytes.Buffer
		_, err := recording.NewWriter(&buf, recording.Info{Application: "pathcap test", Snaplen: snaplen}, 0, nil, nil)
		if err == nil {
			t.Errorf("snap length %d: no error", snaplen)
		}
		if buf.Len() != 0 {
			t.Errorf("snap length %d: %d bytes written before the error", snaplen, buf.Len())
		}
	}
}
