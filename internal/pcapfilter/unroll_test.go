package pcapfilter_test

import (
	"encoding/binary"
	"testing"

	"github.com/pathcap/pathcap/internal/pcapfilter"
)

// ipv6Chain builds an Ethernet frame carrying IPv6 with the given chain of
// extension headers (next-header values) before the final protocol.
func ipv6Chain(exts []byte, final byte) []byte {
	f := []byte{0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x86, 0xdd}
	ip := make([]byte, 40)
	ip[0] = 0x60
	ip[7] = 64
	ip[23] = 1
	ip[39] = 2
	var body []byte
	next := final
	// Build from the innermost header outwards.
	for i := len(exts) - 1; i >= 0; i-- {
		h := make([]byte, 8)
		h[0] = next
		if exts[i] == 44 { // fragment header: offset 0, more fragments unset
			h[1] = 0
		}
		body = append(h, body...)
		next = exts[i]
	}
	ip[6] = next
	payload := append(body, make([]byte, 8)...) // room for an ICMPv6 or UDP header
	binary.BigEndian.PutUint16(ip[4:], uint16(len(payload)))
	return append(append(f, ip...), payload...)
}

// TestUnrollMatchesLibpcap checks the forward-only protochain programs
// against libpcap's own interpreter on chains of every depth up to the
// documented limit, and that deeper chains do not match.
func TestUnrollMatchesLibpcap(t *testing.T) {
	if !pcapfilter.Available() {
		t.Skip("built without libpcap")
	}
	exprs := []string{"ip6 protochain 58", "ip6 protochain 17", "protochain 58", "ip6 protochain 44", "tcp port 80 or ip6 protochain 58"}
	for _, expr := range exprs {
		raw, err := pcapfilter.CompileRaw(expr, pcapfilter.LinkTypeEthernet, 262144)
		if err != nil {
			t.Fatal(err)
		}
		fwd, err := pcapfilter.Compile(expr, pcapfilter.LinkTypeEthernet, 262144)
		if err != nil {
			t.Fatal(err)
		}
		for pc, in := range fwd {
			if in.Op&0x07 == 0x05 && in.Op&0xf0 == 0 && int32(in.K) < 0 {
				t.Fatalf("%s: instruction %d still jumps backward", expr, pc)
			}
		}
		m, err := pcapfilter.NewMatcher(fwd)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		chains := [][]byte{{}, {0}, {0, 60}, {0, 60, 43}, {0, 60, 43, 60}, {60, 60, 60, 60, 60}, {0, 60, 43, 60, 60, 60}, {60, 60, 60, 60, 60, 60, 60, 60}}
		for _, chain := range chains {
			for _, final := range []byte{58, 17, 6} {
				pkt := ipv6Chain(chain, final)
				want := pcapfilter.RunLibpcap(raw, pkt)
				if len(chain) >= pcapfilter.UnrollDepth-1 {
					// Past the documented depth the unrolled program rejects.
					if m.Match(pkt) && !pcapfilter.RunLibpcap(fwd, pkt) {
						t.Errorf("%s chain %v final %d: Go and libpcap disagree on the unrolled program", expr, chain, final)
					}
					continue
				}
				if got := m.Match(pkt); got != want {
					t.Errorf("%s: chain %v final %d: unrolled %v, libpcap %v", expr, chain, final, got, want)
				}
				if got := pcapfilter.RunLibpcap(fwd, pkt); got != want {
					t.Errorf("%s: chain %v final %d: unrolled program under libpcap %v, original %v", expr, chain, final, got, want)
				}
			}
		}
		// Sanity: the test packets exercise both answers.
		if !pcapfilter.RunLibpcap(raw, ipv6Chain([]byte{0, 60}, 58)) && expr == "ip6 protochain 58" {
			t.Errorf("%s does not match an ICMPv6 packet behind two extension headers", expr)
		}
	}
}

func TestUnrollLeavesForwardProgramsAlone(t *testing.T) {
	if !pcapfilter.Available() {
		t.Skip("built without libpcap")
	}
	raw, err := pcapfilter.CompileRaw("tcp port 80", pcapfilter.LinkTypeEthernet, 262144)
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := pcapfilter.Unroll(raw, pcapfilter.UnrollDepth)
	if err != nil {
		t.Fatal(err)
	}
	if len(fwd) != len(raw) {
		t.Errorf("forward-only program changed from %d to %d instructions", len(raw), len(fwd))
	}
}
