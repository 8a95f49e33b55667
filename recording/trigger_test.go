package recording

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/pcapfilter"
)

// udp4 returns an IPv4 UDP packet from port 1000 to port dport.
func udp4(dport uint16) []byte {
	p := make([]byte, 28)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], 28)
	p[8], p[9] = 64, 17
	copy(p[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(p[20:], 1000)
	binary.BigEndian.PutUint16(p[22:], dport)
	binary.BigEndian.PutUint16(p[24:], 8)
	return p
}

type oneDevice struct{}

func (oneDevice) DeviceName(netns, ifindex uint32) (string, bool) {
	return "eth0", netns == 7 && ifindex == 2
}
func (oneDevice) NamespaceName(uint32) string { return "" }

func TestTrigger(t *testing.T) {
	drop := &capture.Event{Hook: &capture.Hook{Name: "kfree_skb"}, HasDrop: true, DropReason: 2,
		NetNS: 7, Ifindex: 2, Header: capture.HeaderNetwork, Protocol: 0x0800, Data: udp4(53)}
	pass := &capture.Event{Hook: &capture.Hook{Name: "ip_rcv"}, NetNS: 7, Ifindex: 2,
		Header: capture.HeaderNetwork, Protocol: 0x0800, Data: udp4(53)}
	other := &capture.Event{Hook: &capture.Hook{Name: "kfree_skb"}, HasDrop: true, DropReason: 2,
		NetNS: 8, Ifindex: 2, Header: capture.HeaderNetwork, Protocol: 0x0800, Data: udp4(80)}
	for _, tc := range []struct {
		trigger string
		want    [3]bool // drop, pass, other
	}{
		{"reason=REASON_2", [3]bool{true, false, true}},
		{"reason=skb_drop_reason_reason_2", [3]bool{true, false, true}},
		{"hook=ip_rcv", [3]bool{false, true, false}},
		{"hook=tp:kfree_skb,netns=7", [3]bool{true, false, false}},
		{"dev=eth0", [3]bool{true, true, false}},
		{"filter=udp port 53", [3]bool{true, true, false}},
		{"reason=REASON_2,filter=udp and (port 53 or port 80)", [3]bool{true, false, true}},
	} {
		if strings.Contains(tc.trigger, "filter=") && !pcapfilter.Available() {
			continue
		}
		tr, err := ParseTrigger(tc.trigger, 256)
		if err != nil {
			t.Fatalf("%q: %v", tc.trigger, err)
		}
		for i, ev := range []*capture.Event{drop, pass, other} {
			if got := tr.Match(ev, oneDevice{}); got != tc.want[i] {
				t.Errorf("%q on event %d: %v, want %v", tc.trigger, i, got, tc.want[i])
			}
		}
	}
	for _, bad := range []string{"", "reason", "color=red", "netns=x", "filter=", "filter=port port"} {
		if _, err := ParseTrigger(bad, 256); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if tr, _ := ParseTrigger("reason=NO_SOCKET, dev=eth0", 256); tr == nil || tr.String() != "reason=NO_SOCKET,dev=eth0" {
		t.Errorf("String: %v", tr)
	}
}

// TestTriggerCarriesBytes: with --bytes changed, a drop without bytes of
// its own (BytesSame) is matched against its packet's earlier bytes.
func TestTriggerCarriesBytes(t *testing.T) {
	if !pcapfilter.Available() {
		t.Skip("no libpcap")
	}
	tr, err := ParseTrigger("reason=REASON_2,filter=udp port 53", 256)
	if err != nil {
		t.Fatal(err)
	}
	first := &capture.Event{Hook: &capture.Hook{Name: "ip_rcv"}, PacketID: 9,
		Header: capture.HeaderNetwork, Protocol: 0x0800, Data: udp4(53)}
	drop := &capture.Event{Hook: &capture.Hook{Name: "kfree_skb", Frees: true}, PacketID: 9, HasDrop: true, DropReason: 2,
		Header: capture.HeaderNetwork, Protocol: 0x0800, BytesSame: true}
	if tr.Match(first, nil) {
		t.Error("the first event (no drop) matched")
	}
	if !tr.Match(drop, nil) {
		t.Error("the drop without bytes of its own did not match its packet's bytes")
	}
	// Freed: the id's bytes are forgotten.
	if tr.Match(drop, nil) {
		t.Error("a second drop of a freed id matched")
	}
	other := *drop
	other.PacketID = 10
	if tr.Match(&other, nil) {
		t.Error("a drop of an id never seen with bytes matched")
	}
}
