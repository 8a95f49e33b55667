package recording_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/pcapng"
	"github.com/pathcap/pathcap/recording"
)

// TestDescribeIsWhatTheWriterWrites checks that the metadata record's
// line printer gets from Describe is the metadata the Writer puts in the
// file, for events with and without device, drop and resolvable location.
func TestDescribeIsWhatTheWriterWrites(t *testing.T) {
	kprobe := capture.Hook{Name: "skb_clone", Kind: capture.HookFexit}
	events := []capture.Event{
		{Hook: &queueHook, Time: t0, PID: 7, TID: 8, SKB: 0x1000, PacketID: 5, NetNS: 4026532000, Ifindex: 2, Protocol: 0x0800, Len: 60, Mark: 3},
		{Hook: &freeHook, Time: t0, SKB: 0x1000, PacketID: 5, NetNS: 4026532000, Ifindex: 9, Len: 60, HasDrop: true, DropReason: 2, DropLocation: 0xffffffff81000000},
		{Hook: &freeHook, Time: t0, SKB: 0x1000, PacketID: 6, HasDrop: true, DropLocation: 0xffffffff81000010, Header: capture.HeaderNetwork},
		{Hook: &kprobe, Time: t0, SKB: 0x2000, PacketID: 7, Parent: 5, RetVal: -22, HasRetVal: true, PktType: 4, DataLen: 10},
	}
	copy(events[0].Comm[:], "ping")
	var buf bytes.Buffer
	w := mustWriter(t, &buf)
	d := recording.NewDescriber(fakeNames{}, fakeSymbols{})
	var want []kmeta.Event
	for i := range events {
		if err := w.WriteEvent(&events[i]); err != nil {
			t.Fatal(err)
		}
		var m kmeta.Event
		d.Describe(&events[i], &m)
		want = append(want, m)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if want[1].Dev != "" || want[0].Dev != "veth0" || want[2].Location != "0xffffffff81000010" || want[1].Location != "__udp4_lib_rcv+0x4bc" {
		t.Errorf("described %+v", want)
	}
	r, err := pcapng.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	p := kmeta.NewParser()
	for i := 0; ; {
		typ, err := r.Next()
		if err == io.EOF {
			if i != len(want) {
				t.Fatalf("%d events read, want %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !typ.IsPacket() {
			continue
		}
		var got kmeta.Event
		pk := r.Packet()
		p.SetPlace(kmeta.PlaceOf(pk.Interface.Name, pk.Interface.Description))
		if err := p.Parse(pk.Options.Comments[0], &got); err != nil {
			t.Fatal(err)
		}
		if got != want[i] {
			t.Errorf("event %d: file has %+v, Describe gives %+v", i, got, want[i])
		}
		i++
	}
}
