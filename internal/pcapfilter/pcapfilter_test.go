package pcapfilter_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/internal/pcapfilter"
)

// A UDP datagram from 10.0.0.1:5353 to 10.0.0.2:53 in an Ethernet frame.
var udpFrame = []byte{
	0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00,
	0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
	0x14, 0xe9, 0, 53, 0, 8, 0, 0,
}

func TestCompileAndMatch(t *testing.T) {
	if !pcapfilter.Available() {
		t.Skip("built without libpcap")
	}
	for expr, want := range map[string]bool{
		"udp port 53":           true,
		"udp and src port 5353": true,
		"tcp":                   false,
		"host 10.0.0.2":         true,
		"ip6":                   false,
		"ip protochain 17":      true,
	} {
		prog, err := pcapfilter.Compile(expr, pcapfilter.LinkTypeEthernet, 262144)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		m, err := pcapfilter.NewMatcher(prog)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if got := m.Match(udpFrame); got != want {
			t.Errorf("%s: match %v, want %v", expr, got, want)
		}
	}
}

func TestCompileError(t *testing.T) {
	if !pcapfilter.Available() {
		_, err := pcapfilter.Compile("udp", pcapfilter.LinkTypeEthernet, 100)
		if !errors.Is(err, pcapfilter.ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
		return
	}
	_, err := pcapfilter.Compile("udp port banana", pcapfilter.LinkTypeEthernet, 262144)
	var pe *pcapfilter.Error
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "banana") {
		t.Fatalf("got %v, want libpcap's message naming the bad token", err)
	}
}

// The IPv4 packet of udpFrame, without its Ethernet header.
var udpPacket = udpFrame[14:]

func TestCompileRawIP(t *testing.T) {
	if !pcapfilter.Available() {
		t.Skip("built without libpcap")
	}
	for expr, want := range map[string]bool{
		"udp port 53":      true,
		"ip and udp":       true,
		"host 10.0.0.2":    true,
		"tcp":              false,
		"ip6":              false,
		"ip protochain 17": true,
		"len == 28":        true,
	} {
		prog, err := pcapfilter.Compile(expr, pcapfilter.LinkTypeRaw, 262144)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if got := pcapfilter.RunLibpcap(prog, udpPacket); got != want {
			t.Errorf("%s: match %v, want %v", expr, got, want)
		}
	}
	// Link-layer keywords have no meaning for raw IP.
	for _, expr := range []string{"arp", "vlan", "ether host 00:00:00:00:00:01"} {
		if _, err := pcapfilter.Compile(expr, pcapfilter.LinkTypeRaw, 262144); err == nil {
			t.Errorf("%s: compiled for raw IP", expr)
		}
	}
}
