package paths

// Test helpers: hand-built Ethernet/IPv4/IPv6 frames, a writer of pathcap
// recordings (pcap-ng with kmeta comments and tracking ids, as record
// writes them) and the realistic scenario the tests and the committed
// testdata files are made from.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/pcapng"
	"github.com/pathcap/pathcap/recording"
)

// ---------------------------------------------------------------- frames

var (
	macA = []byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a}
	macB = []byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b}
)

func csum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// ethernet prepends an Ethernet header; zero addresses when synth (the
// header record synthesizes for hdr=net events).
func ethernet(etherType uint16, payload []byte, synth bool) []byte {
	b := make([]byte, 14, 14+len(payload))
	if !synth {
		copy(b[0:6], macB)
		copy(b[6:12], macA)
	}
	binary.BigEndian.PutUint16(b[12:], etherType)
	return append(b, payload...)
}

func ipv4(src, dst string, proto uint8, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	binary.BigEndian.PutUint16(h[6:], 0x4000) // DF
	h[8] = 64
	h[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[10:], csum(h))
	return append(h, payload...)
}

// ipv6 builds an IPv6 packet; ext are extension headers as (next header
// code, body) pairs, each padded to 8 bytes.
func ipv6(src, dst string, proto uint8, payload []byte, ext ...extHeader) []byte {
	var exts []byte
	next := proto
	for i := len(ext) - 1; i >= 0; i-- {
		e := ext[i]
		body := e.build(next)
		exts = append(body, exts...)
		next = e.code
	}
	h := make([]byte, 40, 40+len(exts)+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(exts)+len(payload)))
	h[6] = next
	h[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	h = append(h, exts...)
	return append(h, payload...)
}

type extHeader struct {
	code uint8 // 0 hop-by-hop, 43 routing, 60 destination options, 44 fragment
	// fragOffset (in 8-byte units) and more for fragment headers.
	fragOffset uint16
	more       bool
}

func (e extHeader) build(next uint8) []byte {
	if e.code == 44 {
		b := make([]byte, 8)
		b[0] = next
		v := e.fragOffset << 3
		if e.more {
			v |= 1
		}
		binary.BigEndian.PutUint16(b[2:], v)
		binary.BigEndian.PutUint32(b[4:], 0xabcd)
		return b
	}
	// 8 bytes: next, length 0 (8 bytes), PadN option.
	return []byte{next, 0, 1, 4, 0, 0, 0, 0}
}

func udp(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func tcp(sport, dport uint16, flags uint8) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], 1000)
	b[12] = 5 << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 64240)
	return b
}

func icmpEcho(typ uint8, seq uint16) []byte {
	b := make([]byte, 8+16)
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:], 0x77)
	binary.BigEndian.PutUint16(b[6:], seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(i)
	}
	binary.BigEndian.PutUint16(b[2:], csum(b))
	return b
}

// dnsQuery is a DNS query for example.com, type A.
func dnsQuery() []byte {
	q := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	q = append(q, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1)
	return q
}

func udp4Frame(src, dst string, sport, dport uint16, payload []byte) []byte {
	return ethernet(0x0800, ipv4(src, dst, 17, udp(sport, dport, payload)), false)
}

func tcp4Frame(src, dst string, sport, dport uint16, flags uint8) []byte {
	return ethernet(0x0800, ipv4(src, dst, 6, tcp(sport, dport, flags)), false)
}

func icmp4Frame(src, dst string, typ uint8, seq uint16) []byte {
	return ethernet(0x0800, ipv4(src, dst, 1, icmpEcho(typ, seq)), false)
}

// ---------------------------------------------------------------- recordings

// Network namespaces and devices of the scenario.
const (
	nsInit   = 4026531840
	nsClient = 4026532841
	nsServer = 4026532842
)

var nsNames = map[uint32]string{nsInit: "init", nsClient: "ns-client", nsServer: "ns-server"}

// T0 is the start of every crafted recording.
var T0 = time.Date(2025, 11, 25, 8, 0, 0, 0, time.UTC)

// ev is one event to write.
type ev struct {
	id      uint64
	noID    bool          // leave epb_packetid out
	at      time.Duration // after T0
	hook    string        // tracepoint name
	dev     string
	netns   uint32
	ifindex uint32
	skb     uint64
	data    []byte // the frame as recorded (with its Ethernet header)
	hdr     kmeta.HeaderStart
	reason  string // kfree_skb drop reason
	loc     string
	parent  uint64
	mark    uint32
	cpu     uint32
	comm    string
	extra   []string // further comments (a user's own)
	comment []byte   // replaces the metadata comment when set
}

// meta returns the kmeta.Event the recorder would write for e.
func (e *ev) meta() kmeta.Event {
	m := kmeta.Event{
		Kind: "tp", Hook: e.hook, Dev: e.dev, NetNS: e.netns, Ifindex: e.ifindex,
		SKB: e.skb, Len: uint32(len(e.data)), Header: e.hdr, Parent: e.parent, Mark: e.mark,
		CPU: e.cpu, PID: 0, TID: 0, Comm: e.comm, Location: e.loc,
	}
	if m.SKB == 0 {
		m.SKB = 0xffff8e2b45a30000 + e.id*0x100
	}
	if m.Comm == "" {
		m.Comm = "swapper/" + strconv.Itoa(int(e.cpu))
	}
	if e.hdr != kmeta.HeaderMAC {
		m.Len -= 14
	}
	if len(e.data) >= 14 {
		m.Proto = binary.BigEndian.Uint16(e.data[12:])
	}
	if e.reason != "" {
		m.HasDrop, m.Reason = true, e.reason
	}
	return m
}

// recorder writes one pathcap recording the way record does.
type recorder struct {
	t      testing.TB
	w      *pcapng.Writer
	ifaces map[[2]uint32]uint32
	recv   map[uint32]uint64 // events per interface id
	buf    []byte
	events int
	last   time.Time
}

// recordingSection is the section header of a recording made on host.
func recordingSection(host string) *pcapng.Section {
	return &pcapng.Section{
		Hardware:        "x86_64",
		OS:              "Linux 6.18.44",
		UserApplication: "pathcap record 0.1.0",
		Comments:        []string{"pathcap recording on host " + host + ": pathcap record -i any -w trace.pcapng"},
	}
}

func newRecorder(t testing.TB, w io.Writer, host string) *recorder {
	t.Helper()
	pw, err := pcapng.NewWriterSize(w, recordingSection(host), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{t: t, w: pw, ifaces: make(map[[2]uint32]uint32), recv: make(map[uint32]uint64)}
}

func (r *recorder) iface(netns, ifindex uint32, dev string) uint32 {
	k := [2]uint32{netns, ifindex}
	if id, ok := r.ifaces[k]; ok {
		return id
	}
	name := dev
	desc := "netns " + strconv.FormatUint(uint64(netns), 10)
	if n := nsNames[netns]; n != "" {
		desc += " (" + n + ")"
	}
	if ifindex == 0 {
		name = "nodev"
		desc += " no device"
	} else {
		desc += " ifindex " + strconv.FormatUint(uint64(ifindex), 10)
	}
	id, err := r.w.AddInterface(&pcapng.Interface{
		LinkType:     pcapng.LinkTypeEthernet,
		SnapLen:      262144,
		Name:         name,
		Description:  desc,
		TSResolution: pcapng.Nanoseconds,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.ifaces[k] = id
	return id
}

func (r *recorder) write(e *ev) {
	r.t.Helper()
	var comments [][]byte
	if e.comment != nil {
		comments = append(comments, e.comment)
	} else {
		m := e.meta()
		r.buf = kmeta.AppendComment(r.buf[:0], &m)
		comments = append(comments, r.buf)
	}
	for _, c := range e.extra {
		comments = append(comments, []byte(c))
	}
	p := &pcapng.Packet{
		InterfaceID:    r.iface(e.netns, e.ifindex, e.dev),
		Timestamp:      T0.Add(e.at),
		Data:           e.data,
		OriginalLength: uint32(len(e.data)),
		Options: pcapng.PacketOptions{
			Comments:    comments,
			PacketID:    e.id,
			HasPacketID: !e.noID,
		},
	}
	if d := recording.Direction(e.hook); d != 0 {
		p.Options.Flags, p.Options.HasFlags = d, true
	}
	if err := r.w.WritePacket(p); err != nil {
		r.t.Fatal(err)
	}
	r.events++
	r.recv[p.InterfaceID]++
	if p.Timestamp.After(r.last) {
		r.last = p.Timestamp
	}
}

// finish ends the recording as record does, with the statistics of every
// interface, and flushes.
func (r *recorder) finish() {
	r.t.Helper()
	for id := range uint32(len(r.ifaces)) {
		s := pcapng.InterfaceStatistics{InterfaceID: id, Timestamp: r.last,
			IfRecv: r.recv[id], HasIfRecv: true, UsrDeliv: r.recv[id], HasUsrDeliv: true}
		if err := r.w.WriteInterfaceStatistics(&s); err != nil {
			r.t.Fatal(err)
		}
	}
	if err := r.w.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

// writeRecording writes the events as one recording made on host.
func writeRecording(t testing.TB, name, host string, events []ev) string {
	t.Helper()
	var b bytes.Buffer
	r := newRecorder(t, &b, host)
	for i := range events {
		r.write(&events[i])
	}
	r.finish()
	if err := os.WriteFile(name, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// tempRecording writes the events to a file in a temporary directory.
func tempRecording(t testing.TB, host string, events []ev) string {
	t.Helper()
	return writeRecording(t, filepath.Join(t.TempDir(), "rec.pcapng"), host, events)
}

// ---------------------------------------------------------------- scenario

// Hop spacing helpers.
func us(n int) time.Duration { return time.Duration(n) * time.Microsecond }
func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// veth hops: the client side (veth0 in ns-client) and the server side
// (veth1 in ns-server).
func cli(e ev) ev  { e.dev, e.netns, e.ifindex = "veth0", nsClient, 2; return e }
func srv(e ev) ev  { e.dev, e.netns, e.ifindex = "veth1", nsServer, 2; return e }
func host(e ev) ev { e.dev, e.netns, e.ifindex = "eth0", nsInit, 2; return e }
func hostVeth(e ev) ev {
	e.dev, e.netns, e.ifindex = "veth-host", nsInit, 5
	return e
}

// sock is an event of an skb without a device (socket layer) in ns.
func sock(e ev, ns uint32) ev { e.dev, e.netns, e.ifindex = "", ns, 0; return e }

// scenario is a realistic recording: every outcome kind, NAT, clones,
// IPv6 with an extension header, out-of-order events and a tracking id
// that comes back after a quiet gap longer than the analysis window. The
// events are in file order. want describes what analyze must make of it.
func scenario() []ev {
	var evs []ev
	add := func(es ...ev) { evs = append(evs, es...) }

	// 1: DNS query from the client, delivered to the server's socket.
	dns := udp4Frame("10.0.0.1", "10.0.0.2", 40001, 53, dnsQuery())
	dnsSock := ethernet(0x0800, dns[14:], true) // hdr=net: synthesized Ethernet header
	add(
		cli(ev{id: 1, at: ms(1), hook: "net_dev_queue", data: dns, cpu: 0, comm: "dig"}),
		cli(ev{id: 1, at: ms(1) + us(4), hook: "net_dev_start_xmit", data: dns, cpu: 0, comm: "dig"}),
		cli(ev{id: 1, at: ms(1) + us(9), hook: "net_dev_xmit", data: dns, cpu: 0, comm: "dig"}),
		srv(ev{id: 1, at: ms(1) + us(15), hook: "netif_rx", data: dns, cpu: 0, comm: "dig"}),
		srv(ev{id: 1, at: ms(1) + us(40), hook: "netif_receive_skb", data: dns, cpu: 0}),
		sock(ev{id: 1, at: ms(1) + us(95), hook: "skb_copy_datagram_iovec", data: dnsSock, hdr: kmeta.HeaderNetwork, cpu: 1, comm: "named"}, nsServer),
		sock(ev{id: 1, at: ms(1) + us(99), hook: "consume_skb", data: dnsSock, hdr: kmeta.HeaderNetwork, cpu: 1, comm: "named", loc: "skb_consume_udp+0x39"}, nsServer),
	)
	// 2: UDP delivered, seen only as freed by skb_consume_udp.
	u2 := udp4Frame("10.0.0.1", "10.0.0.2", 40002, 5000, []byte("hello"))
	add(
		srv(ev{id: 2, at: ms(2), hook: "netif_receive_skb", data: u2}),
		sock(ev{id: 2, at: ms(2) + us(30), hook: "consume_skb", data: u2, loc: "skb_consume_udp+0x39", comm: "nc", cpu: 1}, nsServer),
	)
	// 3: TCP transmitted on eth0; the first hop has no MAC header yet.
	t3 := tcp4Frame("192.168.1.10", "192.168.1.20", 22, 50000, 0x18)
	synth := ethernet(0x0800, t3[14:], true)
	add(
		host(ev{id: 3, at: ms(3), hook: "net_dev_queue", data: synth, hdr: kmeta.HeaderNetwork, comm: "sshd", cpu: 1}),
		host(ev{id: 3, at: ms(3) + us(2), hook: "net_dev_start_xmit", data: t3, comm: "sshd", cpu: 1}),
		host(ev{id: 3, at: ms(3) + us(6), hook: "net_dev_xmit", data: t3, comm: "sshd", cpu: 1}),
	)
	// 4: transmitted, then freed by the driver's completion.
	u4 := udp4Frame("192.168.1.10", "192.168.1.53", 40004, 123, make([]byte, 48))
	add(
		host(ev{id: 4, at: ms(4), hook: "net_dev_queue", data: u4, comm: "chronyd"}),
		host(ev{id: 4, at: ms(4) + us(3), hook: "net_dev_start_xmit", data: u4, comm: "chronyd"}),
		host(ev{id: 4, at: ms(4) + us(5), hook: "net_dev_xmit", data: u4, comm: "chronyd"}),
		host(ev{id: 4, at: ms(4) + us(80), hook: "consume_skb", data: u4, loc: "napi_consume_skb+0x5d"}),
	)
	// 5: UDP to a port nobody listens on: dropped NO_SOCKET.
	u5 := udp4Frame("10.0.0.1", "10.0.0.2", 40005, 9, []byte("discard me"))
	add(
		cli(ev{id: 5, at: ms(5), hook: "net_dev_xmit", data: u5, comm: "nc"}),
		srv(ev{id: 5, at: ms(5) + us(6), hook: "netif_rx", data: u5, comm: "nc"}),
		srv(ev{id: 5, at: ms(5) + us(30), hook: "netif_receive_skb", data: u5}),
		srv(ev{id: 5, at: ms(5) + us(41), hook: "kfree_skb", data: u5, reason: "NO_SOCKET", loc: "__udp4_lib_rcv+0x4bc"}),
	)
	// 6: ICMP echo request answered by the kernel: consumed at icmp_rcv.
	i6 := icmp4Frame("10.0.0.1", "10.0.0.2", 8, 1)
	add(
		srv(ev{id: 6, at: ms(6), hook: "netif_receive_skb", data: i6}),
		srv(ev{id: 6, at: ms(6) + us(12), hook: "consume_skb", data: i6, loc: "icmp_rcv+0x1a2"}),
	)
	// 7: still in flight when the recording ends: unknown.
	t7 := tcp4Frame("10.0.0.1", "10.0.0.2", 40007, 443, 0x02)
	add(
		srv(ev{id: 7, at: ms(7), hook: "netif_rx", data: t7}),
		srv(ev{id: 7, at: ms(7) + us(20), hook: "netif_receive_skb", data: t7}),
	)
	// 8: DNAT: 198.51.100.7:40008 -> 192.0.2.10:80 becomes -> 10.0.0.2:8080.
	n1 := tcp4Frame("198.51.100.7", "192.0.2.10", 40008, 80, 0x02)
	n2 := tcp4Frame("198.51.100.7", "10.0.0.2", 40008, 8080, 0x02)
	add(
		host(ev{id: 8, at: ms(8), hook: "netif_receive_skb", data: n1}),
		hostVeth(ev{id: 8, at: ms(8) + us(25), hook: "net_dev_queue", data: n2}),
		hostVeth(ev{id: 8, at: ms(8) + us(28), hook: "net_dev_start_xmit", data: n2}),
		hostVeth(ev{id: 8, at: ms(8) + us(31), hook: "net_dev_xmit", data: n2}),
	)
	// 9 and its clone 10 (say a packet socket's copy sent on): 10 starts
	// while 9 is still open. 11 is a clone whose parent was never seen.
	u9 := udp4Frame("10.0.0.1", "10.0.0.2", 40009, 6000, []byte("cloned"))
	add(
		srv(ev{id: 9, at: ms(9), hook: "netif_receive_skb", data: u9}),
		hostVeth(ev{id: 10, parent: 9, at: ms(9) + us(5), hook: "net_dev_queue", data: u9}),
		hostVeth(ev{id: 10, at: ms(9) + us(9), hook: "net_dev_xmit", data: u9}),
		sock(ev{id: 9, at: ms(9) + us(50), hook: "skb_copy_datagram_iovec", data: u9, comm: "app"}, nsServer),
		sock(ev{id: 9, at: ms(9) + us(52), hook: "consume_skb", data: u9, comm: "app", loc: "skb_consume_udp+0x39"}, nsServer),
	)
	u11 := udp4Frame("10.0.0.2", "10.0.0.1", 6000, 40009, []byte("reply"))
	add(
		cli(ev{id: 11, parent: 999, at: ms(11), hook: "net_dev_queue", data: u11}),
		cli(ev{id: 11, at: ms(11) + us(3), hook: "net_dev_start_xmit", data: u11}),
		cli(ev{id: 11, at: ms(11) + us(5), hook: "net_dev_xmit", data: u11}),
	)
	// 12: IPv6 UDP with a hop-by-hop header, delivered.
	v6 := ethernet(0x86dd, ipv6("fd00::1", "fd00::2", 17, udp(40012, 5353, []byte("mdns?")), extHeader{code: 0}), false)
	add(
		srv(ev{id: 12, at: ms(12), hook: "netif_receive_skb", data: v6}),
		sock(ev{id: 12, at: ms(12) + us(70), hook: "skb_copy_datagram_iovec", data: v6, comm: "avahi"}, nsServer),
		sock(ev{id: 12, at: ms(12) + us(71), hook: "consume_skb", data: v6, comm: "avahi", loc: "skb_consume_udp+0x39"}, nsServer),
	)
	// 13: events written out of order (a later timestamp first, as two
	// CPUs' buffers deliver them), dropped by netfilter. A user's own
	// comment rides along.
	u13 := udp4Frame("10.0.0.1", "10.0.0.2", 40013, 7000, []byte("filtered"))
	add(
		srv(ev{id: 13, at: ms(13) + us(20), hook: "netif_receive_skb", data: u13, cpu: 1}),
		srv(ev{id: 13, at: ms(13), hook: "netif_rx", data: u13, cpu: 0, extra: []string{"look at this one"}}),
		srv(ev{id: 13, at: ms(13) + us(33), hook: "kfree_skb", data: u13, cpu: 1, reason: "NETFILTER_DROP", loc: "nf_hook_slow+0x9a"}),
	)
	// 14: seen once, then again after a quiet gap longer than the 2 s
	// window: two packets.
	t14 := tcp4Frame("10.0.0.1", "10.0.0.2", 40014, 443, 0x10)
	add(
		srv(ev{id: 14, at: ms(14), hook: "netif_receive_skb", data: t14}),
		srv(ev{id: 14, at: ms(14) + 5*time.Second, hook: "netif_receive_skb", data: t14}),
	)
	return evs
}

// want is what analyze makes of one packet of the scenario.
type want struct {
	id       uint64
	outcome  OutcomeKind
	path     string
	reason   string
	location string // Outcome.Location
	hook     string // Outcome.Hook
	dev      string // Outcome.Dev
	parent   uint64
	children []uint64
}

func scenarioWant() []want {
	return []want{
		{id: 1, outcome: Delivered, path: "net_dev_queue>net_dev_start_xmit>net_dev_xmit>netif_rx>netif_receive_skb>skb_copy_datagram_iovec>consume_skb", hook: "skb_copy_datagram_iovec", location: "skb_consume_udp+0x39"},
		{id: 2, outcome: Delivered, path: "netif_receive_skb>consume_skb", hook: "consume_skb", location: "skb_consume_udp+0x39"},
		{id: 3, outcome: Transmitted, path: "net_dev_queue>net_dev_start_xmit>net_dev_xmit", hook: "net_dev_xmit", dev: "eth0"},
		{id: 4, outcome: Transmitted, path: "net_dev_queue>net_dev_start_xmit>net_dev_xmit>consume_skb", hook: "net_dev_xmit", dev: "eth0", location: "napi_consume_skb+0x5d"},
		{id: 5, outcome: Dropped, path: "net_dev_xmit>netif_rx>netif_receive_skb>kfree_skb", hook: "kfree_skb", dev: "veth1", reason: "NO_SOCKET", location: "__udp4_lib_rcv+0x4bc"},
		{id: 6, outcome: Consumed, path: "netif_receive_skb>consume_skb", hook: "consume_skb", dev: "veth1", location: "icmp_rcv+0x1a2"},
		{id: 7, outcome: Unknown, path: "netif_rx>netif_receive_skb", hook: "netif_receive_skb"},
		{id: 8, outcome: Transmitted, path: "netif_receive_skb>net_dev_queue>net_dev_start_xmit>net_dev_xmit", hook: "net_dev_xmit", dev: "veth-host"},
		{id: 9, outcome: Delivered, path: "netif_receive_skb>skb_copy_datagram_iovec>consume_skb", hook: "skb_copy_datagram_iovec", location: "skb_consume_udp+0x39", children: []uint64{10}},
		{id: 10, outcome: Transmitted, path: "net_dev_queue>net_dev_xmit", hook: "net_dev_xmit", dev: "veth-host", parent: 9},
		{id: 11, outcome: Transmitted, path: "net_dev_queue>net_dev_start_xmit>net_dev_xmit", hook: "net_dev_xmit", dev: "veth0", parent: 999},
		{id: 12, outcome: Delivered, path: "netif_receive_skb>skb_copy_datagram_iovec>consume_skb", hook: "skb_copy_datagram_iovec", location: "skb_consume_udp+0x39"},
		{id: 13, outcome: Dropped, path: "netif_rx>netif_receive_skb>kfree_skb", hook: "kfree_skb", dev: "veth1", reason: "NETFILTER_DROP", location: "nf_hook_slow+0x9a"},
		{id: 14, outcome: Unknown, path: "netif_receive_skb", hook: "netif_receive_skb"},
		{id: 14, outcome: Unknown, path: "netif_receive_skb", hook: "netif_receive_skb"},
	}
}

// ---------------------------------------------------------------- analysis

// clonePacket deep-copies a packet handed to a callback (which reuses it).
func clonePacket(p *Packet) *Packet {
	c := *p
	c.Hops = slices.Clone(p.Hops)
	for i := range c.Hops {
		// The metadata may be the Analyzer's, reused with the packet.
		m := *c.Hops[i].Meta
		c.Hops[i].Meta = &m
	}
	c.Children = slices.Clone(p.Children)
	c.Clones = slices.Clone(p.Clones)
	c.Data = slices.Clone(p.Data)
	return &c
}

// analyze runs Open and Process over the files and returns every packet.
func analyze(t testing.TB, opts Options, sel *Selector, files ...string) []*Packet {
	t.Helper()
	pkts, err := analyzeErr(opts, sel, files...)
	if err != nil {
		t.Fatal(err)
	}
	return pkts
}

func analyzeErr(opts Options, sel *Selector, files ...string) ([]*Packet, error) {
	in, err := Open(files)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	var out []*Packet
	err = Process(in, opts, sel, func(p *Packet) error {
		out = append(out, clonePacket(p))
		return nil
	})
	if err == nil && len(in.Truncated) > 0 {
		err = in.Truncated[0]
	}
	return out, err
}

// sortPackets orders packets by start time, then id.
func sortPackets(ps []*Packet) {
	slices.SortStableFunc(ps, func(a, b *Packet) int {
		if c := cmp.Compare(a.Start(), b.Start()); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// dump describes packets, in start order, for comparing two analyses:
// every field but where the events were read from (Hop.File, Hop.Frame),
// stacks by their contents.
func dump(ps []*Packet) string {
	sortPackets(ps)
	stack := func(s *Stack) string {
		if s == nil {
			return "-"
		}
		return fmt.Sprintf("%d/%v/%q", s.ID, s.Offsets, s.Frames)
	}
	var b strings.Builder
	for _, p := range ps {
		q := *p
		q.Hops, q.Outcome.Stack = nil, nil
		fmt.Fprintf(&b, "%+v outcome stack %s\n", q, stack(p.Outcome.Stack))
		for _, h := range p.Hops {
			st, m := h.Stack, h.Meta
			h.File, h.Frame, h.Stack, h.Meta = 0, 0, nil, nil
			fmt.Fprintf(&b, "  %+v meta %+v stack %s\n", h, *m, stack(st))
		}
	}
	return b.String()
}
