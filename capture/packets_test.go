package capture

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// testPacket is one packet of the differential filter test: an Ethernet
// frame, and the IP packet inside it if there is one (sent through a TUN
// device so that the filter sees it from the network header).
type testPacket struct {
	name  string
	frame []byte // from the Ethernet header, ending with the marker
	ip    []byte // from the IP header (also ending with a marker), or nil
}

// markerTag starts every marker: markerTag, then a 16-bit packet number.
// L2 frames use numbers below l3Base; their IP packets sent through TUN
// use l3Base + the same number.
var markerTag = []byte("PCMK")

const l3Base = 0x8000

// findMarker returns the packet number in the last marker of b.
func findMarker(b []byte) (int, bool) {
	i := bytes.LastIndex(b, markerTag)
	if i < 0 || i+len(markerTag)+2 > len(b) {
		return 0, false
	}
	return int(binary.BigEndian.Uint16(b[i+len(markerTag):])), true
}

func marker(n int) []byte {
	return binary.BigEndian.AppendUint16(bytes.Clone(markerTag), uint16(n))
}

// Addresses of the test packets: none of them is in the veth pair's subnet
// nor local to either namespace, so the kernel sends no replies.
var (
	macA     = []byte{0x02, 0, 0, 0, 0, 0x01}
	macB     = []byte{0x02, 0, 0, 0, 0, 0x02}
	macBcast = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	macMcast = []byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}
	macLLDP  = []byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}
	macSTP   = []byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00}
	mac6Mc   = []byte{0x33, 0x33, 0, 0, 0, 1}
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

const (
	ethIPv4  = 0x0800
	ethARP   = 0x0806
	ethIPv6  = 0x86dd
	ethVLAN  = 0x8100
	ethQinQ  = 0x88a8
	ethMPLS  = 0x8847
	ethLLDP  = 0x88cc
	protoHBH = 0
	protoICM = 1
	protoTCP = 6
	protoUDP = 17
	protoRt  = 43
	protoFrg = 44
	protoGRE = 47
	protoAH  = 51
	protoIC6 = 58
	protoNo  = 59
	protoDst = 60
	protoSCT = 132
)

func eth(dst, src []byte, etype uint16, payload []byte) []byte {
	b := append(append(append([]byte{}, dst...), src...), byte(etype>>8), byte(etype))
	return append(b, payload...)
}

// vlanTag returns the 4 bytes after a TPID: TCI then the inner EtherType.
func vlanTag(vid uint16, inner uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, vid), inner)
}

type v4opts struct {
	ttl     byte
	flags   uint16 // fragment field: 0x2000 MF, 0x4000 DF, offset in 8-byte units
	options []byte // a multiple of 4 bytes
	tos     byte
}

func ipv4(src, dst string, proto byte, payload []byte, o v4opts) []byte {
	hl := 20 + len(o.options)
	if o.ttl == 0 {
		o.ttl = 64
	}
	h := make([]byte, 20, hl+len(payload))
	h[0] = 0x40 | byte(hl/4)
	h[1] = o.tos
	binary.BigEndian.PutUint16(h[2:], uint16(hl+len(payload)))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	binary.BigEndian.PutUint16(h[6:], o.flags)
	h[8] = o.ttl
	h[9] = proto
	s, d := addr(src).As4(), addr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	h = append(h, o.options...)
	var sum uint32
	for i := 0; i < hl; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
	return append(h, payload...)
}

func ipv6(src, dst string, next byte, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = next
	h[7] = 64
	s, d := addr(src).As16(), addr(dst).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

// ext6 wraps payload in IPv6 extension headers, outermost first. Each
// entry is the header's own protocol number; the last one's next header
// is last.
func ext6(chain []byte, last byte, payload []byte) (first byte, b []byte) {
	b = payload
	next := last
	for i := len(chain) - 1; i >= 0; i-- {
		var h []byte
		switch chain[i] {
		case protoFrg:
			// next, reserved, offset 0 + M, identification
			h = []byte{next, 0, 0, 1, 0, 0, 0, 7}
		case protoRt:
			// type 4 (segment routing), segments left 0, one address
			h = append([]byte{next, 2, 4, 0, 0, 0, 0, 0}, make([]byte, 16)...)
		default: // hop-by-hop, destination options: PadN to 8 or 16 bytes
			if i%2 == 0 {
				h = []byte{next, 0, 1, 4, 0, 0, 0, 0}
			} else {
				h = []byte{next, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
			}
		}
		b = append(h, b...)
		next = chain[i]
	}
	return next, b
}

func tcp(sport, dport uint16, flags byte, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint32(h[4:], 1000)
	h[12] = 5 << 4
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], 65535)
	return append(h, payload...)
}

func udp(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

func icmp(typ, code byte, payload []byte) []byte {
	return append([]byte{typ, code, 0, 0, 0, 1, 0, 1}, payload...)
}

func sctp(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 12)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	return append(h, payload...)
}

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

// testPackets returns the packets of the differential filter test, each
// frame (and IP packet) ending with its marker.
func testPackets() []testPacket {
	type l3 struct {
		name string
		// build returns the IP packet for the marker's payload and the
		// EtherType of the frame; vlan wraps the frame in these tags.
		build func(m []byte) []byte
		etype uint16
		dst   []byte
		vlans [][2]uint16 // (TPID, VID) outermost first
	}
	pad := func(n int) []byte { return bytes.Repeat([]byte{0xab}, n) }
	withM := func(b, m []byte) []byte { return append(bytes.Clone(b), m...) }
	v4 := func(name, src, dst string, proto byte, l4 func(m []byte) []byte, o v4opts) l3 {
		return l3{name: name, etype: ethIPv4, dst: macB, build: func(m []byte) []byte { return ipv4(src, dst, proto, l4(m), o) }}
	}
	v6 := func(name, src, dst string, chain []byte, last byte, l4 func(m []byte) []byte) l3 {
		return l3{name: name, etype: ethIPv6, dst: macB, build: func(m []byte) []byte {
			first, b := ext6(chain, last, l4(m))
			if len(chain) == 0 {
				first = last
			}
			return ipv6(src, dst, first, b)
		}}
	}
	tcpP := func(sport, dport uint16, flags byte) func(m []byte) []byte {
		return func(m []byte) []byte { return tcp(sport, dport, flags, m) }
	}
	udpP := func(sport, dport uint16) func(m []byte) []byte {
		return func(m []byte) []byte { return udp(sport, dport, m) }
	}
	icmpP := func(typ byte) func(m []byte) []byte {
		return func(m []byte) []byte { return icmp(typ, 0, m) }
	}
	raw := func(b []byte) func(m []byte) []byte { return func(m []byte) []byte { return withM(b, m) } }

	specs := []l3{
		v4("v4 tcp syn :80", "10.1.1.1", "10.1.1.2", protoTCP, tcpP(1234, 80, tcpSYN), v4opts{}),
		v4("v4 tcp ack 80:", "10.1.1.2", "10.1.1.1", protoTCP, tcpP(80, 1234, tcpACK|tcpPSH), v4opts{}),
		v4("v4 tcp synack :1500", "10.1.1.1", "10.2.3.4", protoTCP, tcpP(40000, 1500, tcpSYN|tcpACK), v4opts{}),
		v4("v4 tcp fin :443 ipopts", "10.1.1.1", "10.2.3.4", protoTCP, tcpP(5555, 443, tcpFIN|tcpACK), v4opts{options: []byte{1, 1, 1, 0}}),
		v4("v4 tcp rst :2000 long ipopts", "192.168.0.7", "10.1.1.2", protoTCP, tcpP(2000, 9, tcpRST), v4opts{options: bytes.Repeat([]byte{1}, 40)}),
		v4("v4 udp :53", "10.1.1.1", "10.1.1.53", protoUDP, udpP(5353, 53), v4opts{}),
		v4("v4 udp 53:", "10.1.1.53", "10.1.1.1", protoUDP, udpP(53, 5353), v4opts{}),
		v4("v4 udp :999", "10.1.1.1", "192.168.0.9", protoUDP, udpP(7, 999), v4opts{}),
		v4("v4 udp :1000", "10.1.1.1", "192.168.0.9", protoUDP, udpP(7, 1000), v4opts{}),
		v4("v4 udp :2001", "10.1.1.1", "192.168.1.9", protoUDP, udpP(7, 2001), v4opts{}),
		v4("v4 udp 1999:", "10.2.0.1", "10.1.1.1", protoUDP, udpP(1999, 7), v4opts{tos: 0xb8}),
		v4("v4 icmp echo", "10.1.1.1", "10.1.1.2", protoICM, icmpP(8), v4opts{}),
		v4("v4 icmp reply ttl 1", "10.1.1.2", "10.1.1.1", protoICM, icmpP(0), v4opts{ttl: 1}),
		v4("v4 icmp unreach big", "10.1.1.2", "10.1.1.1", protoICM, func(m []byte) []byte { return icmp(3, 3, withM(pad(300), m)) }, v4opts{}),
		v4("v4 frag first udp :53", "10.1.1.1", "10.1.1.2", protoUDP, func(m []byte) []byte { return udp(1111, 53, withM(pad(16), m)) }, v4opts{flags: 0x2000}),
		v4("v4 frag middle udp", "10.1.1.1", "10.1.1.2", protoUDP, raw(pad(24)), v4opts{flags: 0x2000 | 3}),
		v4("v4 frag last tcp", "10.1.1.1", "10.1.1.2", protoTCP, raw(pad(8)), v4opts{flags: 6}),
		v4("v4 df tcp :80", "10.1.1.1", "10.1.1.2", protoTCP, tcpP(1234, 80, tcpACK), v4opts{flags: 0x4000}),
		v4("v4 gre", "10.1.1.1", "10.1.1.2", protoGRE, raw([]byte{0, 0, 0x08, 0}), v4opts{}),
		v4("v4 ah tcp :80", "10.1.1.1", "10.1.1.2", protoAH, func(m []byte) []byte {
			// AH: next header TCP, payload length 4 (24 bytes in all)
			ah := append([]byte{protoTCP, 4, 0, 0}, make([]byte, 20)...)
			return append(ah, tcp(1234, 80, tcpSYN, m)...)
		}, v4opts{}),
		v4("v4 ah udp", "10.1.1.1", "10.1.1.2", protoAH, func(m []byte) []byte {
			ah := append([]byte{protoUDP, 4, 0, 0}, make([]byte, 20)...)
			return append(ah, udp(1, 2, m)...)
		}, v4opts{}),
		v4("v4 sctp", "10.1.1.1", "10.1.1.2", protoSCT, func(m []byte) []byte { return sctp(1, 2, m) }, v4opts{}),
		{name: "v4 mcast udp", etype: ethIPv4, dst: macMcast, build: func(m []byte) []byte {
			return ipv4("10.1.1.1", "224.0.0.251", protoUDP, udp(5353, 5353, m), v4opts{ttl: 255})
		}},
		{name: "v4 bcast udp", etype: ethIPv4, dst: macBcast, build: func(m []byte) []byte { return ipv4("10.1.1.1", "255.255.255.255", protoUDP, udp(68, 67, m), v4opts{}) }},

		v6("v6 tcp syn :80", "2001:db8::1", "2001:db8:1::2", nil, protoTCP, tcpP(1234, 80, tcpSYN)),
		v6("v6 tcp :1500", "2001:db8:1::2", "2001:db8::1", nil, protoTCP, tcpP(1500, 40000, tcpACK)),
		v6("v6 udp :53", "2001:db8::1", "2001:db8:2::53", nil, protoUDP, udpP(5353, 53)),
		v6("v6 icmp6 echo", "2001:db8::1", "2001:db8:1::2", nil, protoIC6, icmpP(128)),
		v6("v6 icmp6 ns", "fe80::1", "ff02::1:ff00:2", nil, protoIC6, icmpP(135)),
		v6("v6 hbh icmp6", "fe80::1", "ff02::16", []byte{protoHBH}, protoIC6, icmpP(143)),
		v6("v6 hbh dst tcp :80", "2001:db8::1", "2001:db8:1::2", []byte{protoHBH, protoDst}, protoTCP, tcpP(1234, 80, tcpSYN)),
		v6("v6 rt udp :53", "2001:db8::1", "2001:db8:1::2", []byte{protoRt}, protoUDP, udpP(1, 53)),
		v6("v6 frag udp", "2001:db8::1", "2001:db8:1::2", []byte{protoFrg}, protoUDP, udpP(1, 2)),
		v6("v6 hbh dst rt frag dst udp", "2001:db8::1", "2001:db8:1::2", []byte{protoHBH, protoDst, protoRt, protoFrg, protoDst}, protoUDP, udpP(3, 4)),
		v6("v6 8-deep chain icmp6", "2001:db8::1", "2001:db8:1::2", []byte{protoHBH, protoDst, protoRt, protoDst, protoFrg, protoDst, protoRt, protoDst}, protoIC6, icmpP(128)),
		v6("v6 dst tcp", "2001:db8::1", "2001:db8:1::2", []byte{protoDst}, protoTCP, tcpP(9, 1000, tcpSYN|tcpACK)),
		v6("v6 no next", "2001:db8::1", "2001:db8:1::2", []byte{protoDst}, protoNo, raw(pad(8))),
		{name: "v6 mcast icmp6", etype: ethIPv6, dst: mac6Mc, build: func(m []byte) []byte { return ipv6("fe80::1", "ff02::1", protoIC6, icmp(128, 0, m)) }},

		{name: "vlan 100 v4 tcp :80", etype: ethIPv4, dst: macB, vlans: [][2]uint16{{ethVLAN, 100}}, build: func(m []byte) []byte {
			return ipv4("10.1.1.1", "10.1.1.2", protoTCP, tcp(1234, 80, tcpSYN, m), v4opts{})
		}},
		{name: "vlan 200 v6 udp :53", etype: ethIPv6, dst: macB, vlans: [][2]uint16{{ethVLAN, 200}}, build: func(m []byte) []byte {
			return ipv6("2001:db8::1", "2001:db8:1::2", protoUDP, udp(1, 53, m))
		}},
		{name: "qinq 300/100 v4 icmp", etype: ethIPv4, dst: macB, vlans: [][2]uint16{{ethQinQ, 300}, {ethVLAN, 100}}, build: func(m []byte) []byte {
			return ipv4("10.1.1.1", "10.1.1.2", protoICM, icmp(8, 0, m), v4opts{})
		}},
	}

	var out []testPacket
	for i, s := range specs {
		ip := s.build(marker(i))
		payload := ip
		etype := s.etype
		for j := len(s.vlans) - 1; j >= 0; j-- {
			payload = append(vlanTag(s.vlans[j][1], etype), payload...)
			etype = s.vlans[j][0]
		}
		p := testPacket{name: s.name, frame: eth(s.dst, macA, etype, payload)}
		if len(s.vlans) == 0 {
			p.ip = s.build(marker(l3Base + i))
		}
		out = append(out, p)
	}

	// Frames without an IP packet to send through TUN.
	arp := func(op uint16, sha, spa, tpa string) []byte {
		b := []byte{0, 1, 8, 0, 6, 4, 0, byte(op)}
		b = append(b, macA...)
		s, t := addr(spa).As4(), addr(tpa).As4()
		b = append(b, s[:]...)
		b = append(b, make([]byte, 6)...)
		return append(b, t[:]...)
	}
	others := []struct {
		name  string
		frame func(m []byte) []byte
	}{
		{"arp request", func(m []byte) []byte {
			return eth(macBcast, macA, ethARP, withM(arp(1, "", "10.1.1.1", "10.1.1.9"), m))
		}},
		{"arp reply", func(m []byte) []byte { return eth(macB, macA, ethARP, withM(arp(2, "", "10.1.1.9", "10.1.1.1"), m)) }},
		{"vlan arp", func(m []byte) []byte {
			return eth(macBcast, macA, ethVLAN, append(vlanTag(100, ethARP), withM(arp(1, "", "10.1.1.1", "10.1.1.9"), m)...))
		}},
		{"lldp", func(m []byte) []byte { return eth(macLLDP, macA, ethLLDP, withM([]byte{2, 7, 4, 2, 0, 0, 0, 0, 1}, m)) }},
		{"stp 802.3", func(m []byte) []byte {
			llc := withM(append([]byte{0x42, 0x42, 0x03}, make([]byte, 35)...), m)
			return eth(macSTP, macA, uint16(len(llc)), llc)
		}},
		{"mpls v4", func(m []byte) []byte {
			return eth(macB, macA, ethMPLS, append([]byte{0, 0x01, 0x41, 64}, ipv4("10.1.1.1", "10.1.1.2", protoUDP, udp(1, 53, m), v4opts{})...))
		}},
		{"short ethertype only", func(m []byte) []byte { return eth(macB, macA, 0x88b5, m) }},
	}
	for _, o := range others {
		out = append(out, testPacket{name: o.name, frame: o.frame(marker(len(out)))})
	}
	for i := range out {
		if n, ok := findMarker(out[i].frame); !ok || n != i {
			panic(fmt.Sprintf("packet %d (%s): marker %d %v", i, out[i].name, n, ok))
		}
	}
	return out
}
