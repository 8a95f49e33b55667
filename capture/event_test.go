package capture

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/pathcap/pathcap/bpf"
)

// record returns the ring buffer bytes of rec followed by data.
func record(rec bpf.SkbEvent, data []byte) []byte {
	rec.Caplen = uint32(len(data))
	raw := make([]byte, recordSize+len(data))
	copy(raw, unsafe.Slice((*byte)(unsafe.Pointer(&rec)), recordSize))
	copy(raw[recordSize:], data)
	return raw
}

func TestEventDecode(t *testing.T) {
	rec := bpf.SkbEvent{
		Skb: 0xffff888012345678, PacketId: 42, DropLocation: 0xffffffff81000000,
		Pid: 100, Tid: 101, Netns: 4026531840, Ifindex: 2, Mark: 7,
		Len: 98, DataLen: 0, DropReason: 3, Cpu: 1,
		HookId: 0, Protocol: 0x0008, DevType: 1, PktType: 4,
		Header: uint8(HeaderNetwork), Flags: flagHasDrop | flagHasDev,
	}
	for i, c := range "ping" {
		rec.Comm[i] = int8(c)
	}
	raw := record(rec, []byte{0x45, 0, 0, 84})

	var ev Event
	var scratch bpf.SkbEvent
	if err := ev.decode(raw, &scratch, 0); err != nil {
		t.Fatal(err)
	}
	if ev.SKB != rec.Skb || ev.PacketID != 42 || ev.NetNS != rec.Netns || ev.Ifindex != 2 ||
		ev.Mark != 7 || ev.Len != 98 || ev.CPU != 1 || ev.PID != 100 || ev.TID != 101 ||
		ev.DevType != 1 || ev.PktType != 4 || !ev.HasDev {
		t.Errorf("decoded %+v", ev)
	}
	if ev.Protocol != 0x0800 {
		t.Errorf("protocol %#04x, want 0x0800", ev.Protocol)
	}
	if ev.Header != HeaderNetwork || ev.Header.String() != "network" {
		t.Errorf("header %v", ev.Header)
	}
	if got := ev.CommString(); got != "ping" {
		t.Errorf("comm %q", got)
	}
	if !ev.HasDrop || ev.DropReason != 3 || ev.DropLocation != rec.DropLocation {
		t.Errorf("drop: %v %d %#x", ev.HasDrop, ev.DropReason, ev.DropLocation)
	}
	if got := ev.DropReasonName(); got != "REASON_3" {
		t.Errorf("drop reason name without a table: %q", got)
	}
	if string(ev.Data) != "\x45\x00\x00\x54" {
		t.Errorf("data %x", ev.Data)
	}

	var short errShortRecord
	if err := ev.decode(raw[:recordSize-1], &scratch, 0); !errors.As(err, &short) {
		t.Errorf("short header: %v", err)
	}
	if err := ev.decode(raw[:len(raw)-1], &scratch, 0); !errors.As(err, &short) {
		t.Errorf("short data: %v", err)
	}
}

func TestEventDecodeAllocs(t *testing.T) {
	raw := record(bpf.SkbEvent{Len: 60}, make([]byte, 60))
	var ev Event
	var scratch bpf.SkbEvent
	allocs := testing.AllocsPerRun(100, func() {
		if err := ev.decode(raw, &scratch, 0); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("decode allocates %v times per event", allocs)
	}
}

func BenchmarkEventDecode(b *testing.B) {
	raw := record(bpf.SkbEvent{Len: 98}, make([]byte, 98))
	var ev Event
	var scratch bpf.SkbEvent
	b.ReportAllocs()
	for b.Loop() {
		if err := ev.decode(raw, &scratch, 0); err != nil {
			b.Fatal(err)
		}
	}
}
