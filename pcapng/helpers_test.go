package pcapng_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/pathcap/pathcap/pcapng"
)

// needTool returns the path of an external program a test relies on. When
// the program is missing the test is skipped, unless the CI environment
// variable is set: there a missing tool is a broken test machine and the
// test fails.
func needTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required when CI is set, but it was not found: %v", name, err)
		}
		t.Skipf("skipping: %s not found in PATH (install it, or set CI to turn this skip into a failure)", name)
	}
	return path
}

// writeCounter counts the Write calls made on it and keeps their sizes.
type writeCounter struct {
	buf   bytes.Buffer
	sizes []int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return w.buf.Write(p)
}

// Hand-built frames. Checksums are computed, so that dissectors report no
// problem with them.

var (
	macA = []byte{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	macB = []byte{0x02, 0x00, 0x5e, 0x10, 0x00, 0x02}
	ipA  = [4]byte{192, 0, 2, 1}
	ipB  = [4]byte{198, 51, 100, 7}
)

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func ethernet(dst, src []byte, etherType uint16, payload []byte) []byte {
	f := append(append(append([]byte{}, dst...), src...), byte(etherType>>8), byte(etherType))
	return append(f, payload...)
}

func ipv4(proto byte, src, dst [4]byte, id uint16, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(h[4:], id)
	h[6] = 0x40 // don't fragment
	h[8] = 64
	h[9] = proto
	copy(h[12:], src[:])
	copy(h[16:], dst[:])
	binary.BigEndian.PutUint16(h[10:], checksum(h))
	return append(h, payload...)
}

// icmpEcho returns an Ethernet frame holding an ICMP echo request (or
// reply) with payloadLen bytes of data.
func icmpEcho(reply bool, id, seq uint16, payloadLen int) []byte {
	m := make([]byte, 8+payloadLen)
	if !reply {
		m[0] = 8
	}
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	for i := 8; i < len(m); i++ {
		m[i] = byte(i)
	}
	binary.BigEndian.PutUint16(m[2:], checksum(m))
	src, dst, smac, dmac := ipA, ipB, macA, macB
	if reply {
		src, dst, smac, dmac = ipB, ipA, macB, macA
	}
	return ethernet(dmac, smac, 0x0800, ipv4(1, src, dst, seq, m))
}

// udpFrame returns an Ethernet frame holding a UDP datagram.
func udpFrame(sport, dport uint16, payload []byte) []byte {
	u := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	u = append(u, payload...)
	// Checksum over the pseudo-header.
	ph := append(append(append([]byte{}, ipA[:]...), ipB[:]...), 0, 17, byte(len(u)>>8), byte(len(u)))
	c := checksum(append(ph, u...))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return ethernet(macB, macA, 0x0800, ipv4(17, ipA, ipB, 0x1234, u))
}

// frameOfSize returns a UDP frame of exactly n bytes (n >= 42).
func frameOfSize(n int) []byte {
	p := make([]byte, n-42)
	for i := range p {
		p[i] = byte('a' + i%26)
	}
	return udpFrame(40000, 9, p)
}

// le32 and le64 append little-endian integers.
func le16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func le32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func le64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

// rawBlock returns a little-endian block with correct lengths.
func rawBlock(typ pcapng.BlockType, body []byte) []byte {
	n := uint32(12 + len(body))
	b := le32(le32(nil, uint32(typ)), n)
	b = append(b, body...)
	return le32(b, n)
}

// rawOpt returns one little-endian option, padded.
func rawOpt(code uint16, val []byte) []byte {
	b := le16(le16(nil, code), uint16(len(val)))
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// rawSHB returns a 28-byte little-endian section header block.
func rawSHB(major uint16) []byte {
	body := le32(nil, 0x1A2B3C4D)
	body = le16(le16(body, major), 0)
	body = le64(body, ^uint64(0))
	return rawBlock(pcapng.BlockSectionHeader, body)
}

// rawIDB returns an interface description block with the given options.
func rawIDB(link pcapng.LinkType, snap uint32, opts ...[]byte) []byte {
	body := le32(le16(le16(nil, uint16(link)), 0), snap)
	for _, o := range opts {
		body = append(body, o...)
	}
	if len(opts) > 0 {
		body = append(body, 0, 0, 0, 0)
	}
	return rawBlock(pcapng.BlockInterfaceDescription, body)
}

// rawEPB returns an enhanced packet block.
func rawEPB(ifc uint32, ts uint64, data []byte, opts ...[]byte) []byte {
	body := le32(nil, ifc)
	body = le32(le32(body, uint32(ts>>32)), uint32(ts))
	body = le32(le32(body, uint32(len(data))), uint32(len(data)))
	body = append(body, data...)
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	for _, o := range opts {
		body = append(body, o...)
	}
	if len(opts) > 0 {
		body = append(body, 0, 0, 0, 0)
	}
	return rawBlock(pcapng.BlockEnhancedPacket, body)
}

func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// baseTime is a packet time used throughout the tests.
var baseTime = time.Date(2024, 3, 9, 14, 7, 31, 123456789, time.UTC)
