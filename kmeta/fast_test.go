package kmeta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fastCases are comments for which the fast path and the general scanner
// must agree: the same event, or the same error.
var fastCases = []string{
	`pathcap/1 hook=tp:kfree_skb dev=veth1 netns=4026532841 ifindex=2 skb=0xffff8e2b45a3c400 len=42 proto=0x0800 cpu=1 pid=0 tid=0 comm=swapper/1 reason=NO_SOCKET loc=__udp4_lib_rcv+0x4bc`,
	`pathcap/1 hook=tp:net_dev_queue dev=veth-a netns=4026532300 ifindex=2 skb=0xffff888100000100 len=84 proto=0x0800 cpu=1 pid=4242 tid=4242 comm=ping`,
	`pathcap/1 hook=fexit:ip_rcv data_len=1400 mark=0xdeadbeef hdr=net parent=99 ret=-22 stack=5 pkt_type=otherhost`,
	`pathcap/1 hook=fexit:bpf_prog_3b185187f1855c4c_drop_flow dev=veth1 netns=4026532841 ifindex=2 skb=0xffff8e2b45a3c400 len=57 proto=0x0800 prog_type=tc prog=drop_flow prog_id=42 prog_tag=3b185187f1855c4c ret=2 cpu=1 pid=0 tid=0 comm=swapper/1`,
	`pathcap/1 hook=fentry:bpf_prog_0011223344556677_xdp_drop dev=veth1 netns=4026532841 ifindex=2 skb=0x0 len=57 proto=0x0800 prog_type=xdp prog="a b" prog_id=4294967296 cpu=1 pid=0 tid=0 comm=swapper/1`,
	`pathcap/1 hook=tp:x stack=lost stack_err=-14`,
	`pathcap/1 hook=tp:x stack=lost`,
	`pathcap/1 hook=tp:x stack=lostx`,
	`pathcap/1 hook=tp:x stack=0`,
	`pathcap/1 hook=tp:x stack=18446744073709551615`,
	`pathcap/1 hook=tp:x parent=18446744073709551616`,
	`pathcap/1 hook=tp:x parent=00000000000000000000001`,
	`pathcap/1 hook=tp:x len=4294967295 cpu=4294967296`,
	`pathcap/1 hook=tp:x len=0004`,
	`pathcap/1 hook=tp:x len=12a`,
	`pathcap/1 hook=tp:x len=`,
	`pathcap/1 hook=tp:x len=-1`,
	`pathcap/1 hook=tp:x len=1` + "\x01",
	`pathcap/1 hook=tp:x skb=0x`,
	`pathcap/1 hook=tp:x skb=0X12`,
	`pathcap/1 hook=tp:x skb=0xABCdef0123456789`,
	`pathcap/1 hook=tp:x skb=0x10000000000000000`,
	`pathcap/1 hook=tp:x proto=0x10000`,
	`pathcap/1 hook=tp:x proto=0x86dd mark=0x100000000`,
	`pathcap/1 hook=tp:x hdr=mac hdr=data`,
	`pathcap/1 hook=tp:x hdr=eth`,
	`pathcap/1 hook=tp:x len=84 proto=0x0800 hdr=net bytes=same cpu=1`,
	`pathcap/1 hook=tp:x len=84 proto=0x0800 bytes=same parent=3 cpu=1`,
	`pathcap/1 hook=tp:x bytes=same`,
	`pathcap/1 hook=tp:x bytes=samex`,
	`pathcap/1 hook=tp:x bytes=sam`,
	`pathcap/1 hook=tp:x bytes=all`,
	`pathcap/1 hook=tp:x bytes=`,
	`pathcap/1 hook=tp:x bytes="same"`,
	`pathcap/1 hook=tp:x bytes=same` + "\x01",
	`pathcap/1 hook=tp:x bytes\x00=same`,
	`pathcap/1 hook=tp:x dev="a b" comm=""`,
	`pathcap/1 hook=tp:x dev=a"b`,
	`pathcap/1 hook=tp:x dev=a` + "\x7f",
	`pathcap/1 hook=tp:x dev=é comm=` + "\xff\xfe",
	`pathcap/1 hook=tp:x comm=a` + "\x01" + `b`,
	`pathcap/1 hook=tpx`,
	`pathcap/1 hook=:x`,
	`pathcap/1 hook=tp:`,
	`pathcap/1 hook=tp:a:b hook=k:y`,
	`pathcap/1 hook="tp:x"`,
	`pathcap/1 hook=tp:x  len=1`,
	`pathcap/1 hook=tp:x =1`,
	`pathcap/1 hook=tp:x Len=1`,
	`pathcap/1 hook=tp:x len`,
	`pathcap/1 hook=tp:x data_len=5 data_len`,
	`pathcap/1 hook=tp:x data_lenx=5 data_len=4294967296`,
	`pathcap/1 hook=tp:x future=1 other="x y" len=5`,
	`pathcap/1 hook=tp:x reason=NO_SOCKET loc=0xffffffff81000000`,
	`pathcap/1 len=5`,
	`pathcap/1 hook=tp:x cpu=1 `,
	`pathcap/1 hook=tp:x netns=123456789012345678901 ifindex=12345678 len=1234567 cpu=123456789`,
	`pathcap/1 hook=tp:x netns=1234567x9 ifindex=12345678` + "\x00",
	`pathcap/1 hook=tp:x skb=0xffff888100000100x`,
	`pathcap/1 hook=tp:x skb=0xffff88810000010 proto=0x0800`,
	`pathcap/1 hook=tp:x skb=0xFFFF888100000100`,
	`pathcap/1 hook=tp:x skb=0xffff8881000g0100`,
	`pathcap/1 hook=tp:x skb=0xffff888100000100` + "\x01",
	`pathcap/1 hook=tp:x data_len=12 data_len=`,
	`pathcap/1 hook=tp:x dev=a netns=1 ifindex=2 skb=0x1 len=3 data_len=4 proto=0x5 mark=0x6 hdr=data bytes=same parent=7 cpu=8 pid=9 tid=10 comm=c reason=R loc=l stack=11`,
	`pathcap/1 stack=1 loc=l reason=R comm=c tid=10 pid=9 cpu=8 parent=7 hdr=data mark=0x6 proto=0x5 data_len=4 len=3 skb=0x1 ifindex=2 netns=1 dev=a hook=tp:x`,
}

func parseBoth(t *testing.T, s string) {
	t.Helper()
	fast, slow := NewParser(), NewParser()
	slow.generic = true
	var ef, es Event
	errF := fast.Parse([]byte(s), &ef)
	errS := slow.Parse([]byte(s), &es)
	switch {
	case (errF == nil) != (errS == nil):
		t.Fatalf("%q: fast path error %v, general scanner error %v", s, errF, errS)
	case errF != nil:
		if errF.Error() != errS.Error() {
			t.Fatalf("%q: fast path error %q, general scanner error %q", s, errF, errS)
		}
	case ef != es:
		t.Fatalf("%q: fast path\n%+v\ngeneral scanner\n%+v", s, ef, es)
	}
	// Again, from the memo when it parsed: the same event or error.
	em := Event{Hook: "stale", Len: 1}
	errM := fast.Parse([]byte(s), &em)
	switch {
	case (errM == nil) != (errF == nil):
		t.Fatalf("%q: parsed again, error %v, first %v", s, errM, errF)
	case errM != nil:
		if errM.Error() != errF.Error() {
			t.Fatalf("%q: parsed again, error %q, first %q", s, errM, errF)
		}
	case em != ef:
		t.Fatalf("%q: parsed again\n%+v\nfirst\n%+v", s, em, ef)
	}
	// Shared, three times (the second and third from the memo, the third
	// the same shared event): the same event or error.
	var first *Event
	for i := range 3 {
		own := Event{Hook: "stale", Len: 2}
		es, errSh := fast.ParseShared([]byte(s), &own)
		if i == 2 && es != &own && es != first {
			t.Fatalf("%q: ParseShared gave %p, then %p", s, first, es)
		}
		first = es
		switch {
		case (errSh == nil) != (errF == nil):
			t.Fatalf("%q: ParseShared error %v, Parse %v", s, errSh, errF)
		case errSh != nil:
			if errSh.Error() != errF.Error() || es != nil {
				t.Fatalf("%q: ParseShared error %q (event %v), Parse %q", s, errSh, es, errF)
			}
		case *es != ef:
			t.Fatalf("%q: ParseShared\n%+v\nParse\n%+v", s, *es, ef)
		}
	}
}

func TestFastPathMatchesGeneral(t *testing.T) {
	for _, s := range fastCases {
		parseBoth(t, s)
	}
}

func TestKeyConstants(t *testing.T) {
	for k, v := range map[string]uint64{
		"dev": keyDev, "len": keyLen, "cpu": keyCPU, "pid": keyPID, "tid": keyTID, "skb": keySKB,
		"loc": keyLoc, "hdr": keyHdr, "hook": keyHook, "comm": keyComm, "mark": keyMark,
		"netns": keyNetNS, "proto": keyProto, "stack": keyStack, "reason": keyReason,
		"parent": keyParent, "ifindex": keyIfidx, "data_len": keyDLen, "bytes": keyBytes,
	} {
		var b [8]byte
		copy(b[:], k)
		if got := binary.LittleEndian.Uint64(b[:]); got != v {
			t.Errorf("key %s: constant 0x%x, want 0x%x", k, v, got)
		}
	}
}

func TestBareEnd(t *testing.T) {
	for _, s := range []string{"", "a", "abcdefgh", "abcdefghi", "abcdefg hij", "abcdefgh\"", "ab\x7fcdefghij", "abcdefghijklmn\x01", "ééééé ", "\x80\xff\x90 x"} {
		want := 0
		for want < len(s) && byteClass[s[want]]&classBare != 0 {
			want++
		}
		if got := bareEnd([]byte(s), 0); got != want {
			t.Errorf("bareEnd(%q) = %d, want %d", s, got, want)
		}
	}
}

func FuzzFastPath(f *testing.F) {
	for _, s := range fastCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parseBoth(t, s)
	})
}

// TestSWARNumbers checks the 8-byte digit conversions against strconv on
// every byte value in every position and on random digit strings.
func TestSWARNumbers(t *testing.T) {
	base := []byte("12345678")
	hbase := []byte("9aBcDeF0")
	for pos := 0; pos < 8; pos++ {
		for c := 0; c < 256; c++ {
			b := append([]byte(nil), base...)
			b[pos] = byte(c)
			w := binary.LittleEndian.Uint64(b)
			want, err := strconv.ParseUint(string(b), 10, 64)
			if got := digits8(w); got != (err == nil) {
				t.Fatalf("digits8(%q) = %v", b, got)
			}
			if err == nil && dec8(w) != want {
				t.Fatalf("dec8(%q) = %d, want %d", b, dec8(w), want)
			}
			h := append([]byte(nil), hbase...)
			h[pos] = byte(c)
			hw := binary.LittleEndian.Uint64(h)
			hwant, herr := strconv.ParseUint(string(h), 16, 64)
			if c == '+' || c == '_' {
				herr = errors.New("not a digit") // accepted by ParseUint only as sign or separator
			}
			got, ok := hex8(hw)
			if ok != (herr == nil) || ok && got != hwant {
				t.Fatalf("hex8(%q) = %x, %v; want %x, %v", h, got, ok, hwant, herr)
			}
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 100000; n++ {
		v := r.Uint64() % 100_000_000
		s := fmt.Sprintf("%08d", v)
		if w := binary.LittleEndian.Uint64([]byte(s)); !digits8(w) || dec8(w) != v {
			t.Fatalf("dec8(%q) = %d", s, dec8(w))
		}
		hv := r.Uint64() & 0xffffffff
		hs := fmt.Sprintf("%08x", hv)
		if got, ok := hex8(binary.LittleEndian.Uint64([]byte(hs))); !ok || got != hv {
			t.Fatalf("hex8(%q) = %x, %v", hs, got, ok)
		}
	}
}

// TestMemoAcrossComments parses every case twice through one Parser, so
// that the memo holds many comments: each must still give what the
// general scanner gives.
func TestMemoAcrossComments(t *testing.T) {
	p := NewParser()
	long := `pathcap/1 hook=tp:kfree_skb dev=veth1 comm=` + strings.Repeat("x", memoMaxLen)
	cases := append(slices.Clone(fastCases), long, long[:memoMaxLen], long[:memoMaxLen+1])
	for round := 0; round < 2; round++ {
		for _, s := range cases {
			g := NewParser()
			g.generic = true
			var em, eg Event
			errM := p.Parse([]byte(s), &em)
			errG := g.Parse([]byte(s), &eg)
			if (errM == nil) != (errG == nil) || errM != nil && errM.Error() != errG.Error() || em != eg {
				t.Fatalf("round %d, %q: %+v, %v; general scanner %+v, %v", round, s, em, errM, eg, errG)
			}
		}
	}
}
