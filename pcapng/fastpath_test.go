package pcapng

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// These tests check that readEnhancedFast (fastpath.go) changes nothing:
// every input, read with the fast path and with it turned off, must give
// the same blocks, packets, options and errors.

// readSteps reads data to the end (or to its error), calling ReadPacket
// or Next as pattern says (bit i%64 set: ReadPacket for step i), and
// returns a description of the Reader after each step: everything a
// caller can see.
func readSteps(t *testing.T, data []byte, source string, limit int, fast bool, pattern uint64) []string {
	t.Helper()
	var r *Reader
	var err error
	switch source {
	case "bytes":
		r, err = NewReaderBytes(data)
	case "sized":
		r, err = NewReaderSize(bytes.NewReader(data), limit)
	case "half":
		r, err = NewReaderSize(iotest.HalfReader(struct{ io.Reader }{bytes.NewReader(data)}), limit)
	case "one byte":
		r, err = NewReaderSize(iotest.OneByteReader(bytes.NewReader(data)), limit)
	default:
		t.Fatalf("unknown source %q", source)
	}
	if err != nil {
		return []string{"NewReader: " + describeError(err)}
	}
	r.noFastPath = !fast
	var steps []string
	for i := 0; ; i++ {
		var s string
		var err error
		if pattern>>(i%64)&1 != 0 {
			var p *Packet
			p, err = r.ReadPacket()
			if err == nil && p != r.Packet() {
				t.Fatalf("step %d: ReadPacket returned %p, Packet() is %p", i, p, r.Packet())
			}
			s = "ReadPacket"
		} else {
			var typ BlockType
			typ, err = r.Next()
			if err == nil && typ != r.BlockType() {
				t.Fatalf("step %d: Next returned %v, BlockType() is %v", i, typ, r.BlockType())
			}
			s = "Next"
		}
		s += fmt.Sprintf(" %v at %d, body %x", r.BlockType(), r.Offset(), r.RawBody())
		if err != nil {
			steps = append(steps, s+": "+describeError(err))
			return steps
		}
		if p := r.Packet(); p != nil {
			ifcs := r.Interfaces()
			if int(p.InterfaceID) >= len(ifcs) || p.Interface != &ifcs[p.InterfaceID] {
				t.Fatalf("step %d: packet on interface %d points at %p", i, p.InterfaceID, p.Interface)
			}
			q := *p
			q.Interface = nil
			s += fmt.Sprintf(" packet %+v ts %d %v", q, q.Timestamp.UnixNano(), q.Timestamp.Location())
		}
		steps = append(steps, s)
	}
}

func describeError(err error) string {
	s := err.Error()
	var fe *FormatError
	if errors.As(err, &fe) {
		s += fmt.Sprintf(" [offset %d block %v msg %q cause %v]", fe.Offset, fe.Block, fe.Msg, fe.Err)
	}
	for _, sentinel := range []error{io.EOF, ErrNotPcapng, ErrTruncated, ErrBlockTooLarge, ErrUnsupportedVersion, ErrUnknownInterface, ErrInvalidOption} {
		if errors.Is(err, sentinel) {
			s += " is " + sentinel.Error()
		}
	}
	return s
}

// checkSame reads data with and without the fast path, from memory and
// from streams (whole, and a few bytes at a time so that blocks straddle
// refills), with block size limits below and above the read buffer, with
// ReadPacket, Next and mixes of both, and fails at the first difference.
// With quick set (for the fuzz target), it tries fewer combinations.
func checkSame(t *testing.T, name string, data []byte, quick bool) {
	t.Helper()
	sources := []string{"bytes", "sized", "half", "one byte"}
	limits := []int{64, 1 << 16, DefaultMaxBlockSize}
	patterns := []uint64{^uint64(0), 0, 0x5555555555555555, 0x3333333333333333}
	if quick {
		sources, limits, patterns = []string{"bytes", "half"}, []int{1 << 16}, []uint64{^uint64(0), 0x3333333333333333}
	}
	for _, source := range sources {
		for _, limit := range limits {
			if source == "bytes" && limit != limits[len(limits)-1] {
				continue // NewReaderBytes has no limit to set
			}
			for _, pattern := range patterns {
				fast := readSteps(t, data, source, limit, true, pattern)
				slow := readSteps(t, data, source, limit, false, pattern)
				if !reflect.DeepEqual(fast, slow) {
					for i := range max(len(fast), len(slow)) {
						var f, s string
						if i < len(fast) {
							f = fast[i]
						}
						if i < len(slow) {
							s = slow[i]
						}
						if f != s {
							t.Fatalf("%s (%s, limit %d, pattern %x): step %d differs:\nfast path: %s\ngeneral:   %s", name, source, limit, pattern, i, f, s)
						}
					}
				}
			}
		}
	}
	checkSameOptions(t, name, data)
}

// checkSameOptions reads data packet by packet with and without the fast
// path, comparing the options with reflect.DeepEqual, which, unlike the
// descriptions, tells a nil slice from an empty one.
func checkSameOptions(t *testing.T, name string, data []byte) {
	t.Helper()
	fast, err1 := NewReaderBytes(data)
	slow, err2 := NewReaderBytes(data)
	if err1 != nil || err2 != nil {
		return
	}
	slow.noFastPath = true
	for i := 0; ; i++ {
		p1, err1 := fast.ReadPacket()
		p2, err2 := slow.ReadPacket()
		if err1 != nil || err2 != nil {
			if fmt.Sprint(err1) != fmt.Sprint(err2) {
				t.Fatalf("%s: packet %d: errors %v and %v", name, i, err1, err2)
			}
			return
		}
		if !reflect.DeepEqual(p1.Options, p2.Options) || !reflect.DeepEqual(p1.Data, p2.Data) {
			t.Fatalf("%s: packet %d: options\n%#v\n%#v", name, i, p1.Options, p2.Options)
		}
	}
}

// Builders of little-endian blocks, for crafted inputs.

func tBlock(typ BlockType, body []byte) []byte {
	n := uint32(12 + len(body))
	b := binary.LittleEndian.AppendUint32(nil, uint32(typ))
	b = binary.LittleEndian.AppendUint32(b, n)
	b = append(b, body...)
	return binary.LittleEndian.AppendUint32(b, n)
}

// tOpt is one option with its padding; tOptRaw has no padding.
func tOpt(code uint16, val []byte) []byte {
	b := tOptRaw(code, val)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func tOptRaw(code uint16, val []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, code)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(val)))
	return append(b, val...)
}

func tSHB() []byte {
	body := binary.LittleEndian.AppendUint32(nil, byteOrderMagic)
	body = append(body, 1, 0, 0, 0)
	body = binary.LittleEndian.AppendUint64(body, ^uint64(0))
	return tBlock(BlockSectionHeader, body)
}

// tIDB is an Ethernet interface with the given if_tsresol byte (none
// when 0) and if_tsoffset.
func tIDB(tsresol byte, tsoffset int64) []byte {
	body := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	if tsresol != 0 {
		body = append(body, tOpt(OptIfTsresol, []byte{tsresol})...)
	}
	if tsoffset != 0 {
		body = append(body, tOpt(OptIfTsoffset, binary.LittleEndian.AppendUint64(nil, uint64(tsoffset)))...)
	}
	return tBlock(BlockInterfaceDescription, body)
}

// tEPB is an enhanced packet block of caplen bytes (original length
// caplen+3) whose options part is opts, as given.
func tEPB(ifc uint32, ts uint64, caplen int, opts []byte) []byte {
	body := binary.LittleEndian.AppendUint32(nil, ifc)
	body = binary.LittleEndian.AppendUint32(body, uint32(ts>>32))
	body = binary.LittleEndian.AppendUint32(body, uint32(ts))
	body = binary.LittleEndian.AppendUint32(body, uint32(caplen))
	body = binary.LittleEndian.AppendUint32(body, uint32(caplen+3))
	for i := range caplen {
		body = append(body, byte(i*7))
	}
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	return tBlock(BlockEnhancedPacket, append(body, opts...))
}

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

var endOfOpt = []byte{0, 0, 0, 0}

// fastPathOptionSets are options parts of EPBs: the ones the fast path
// decodes, and the ones it must leave to the general path.
func fastPathOptionSets() (good, other map[string][]byte) {
	j := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	good = map[string][]byte{
		"none":             nil,
		"end only":         endOfOpt,
		"comment":          j(tOpt(OptComment, []byte("hello")), endOfOpt),
		"empty comment":    j(tOpt(OptComment, nil), endOfOpt),
		"two comments":     j(tOpt(OptComment, []byte("a")), tOpt(OptComment, []byte("bcdefgh")), endOfOpt),
		"comment+id":       j(tOpt(OptComment, bytes.Repeat([]byte("x"), 100)), tOpt(OptEPBPacketID, u64(77)), endOfOpt),
		"id, no end":       tOpt(OptEPBPacketID, u64(1<<40)),
		"flags":            j(tOpt(OptEPBFlags, u32(2)), endOfOpt),
		"dropcount":        j(tOpt(OptEPBDropCount, u64(5)), endOfOpt),
		"queue":            j(tOpt(OptEPBQueue, u32(3)), endOfOpt),
		"pid/tid":          j(tOpt(OptEPBProcessIDThreadID, append(u32(7), u32(8)...)), endOfOpt),
		"all":              j(tOpt(OptEPBFlags, u32(1)), tOpt(OptEPBDropCount, u64(9)), tOpt(OptEPBPacketID, u64(10)), tOpt(OptEPBQueue, u32(11)), tOpt(OptEPBProcessIDThreadID, append(u32(12), u32(13)...)), tOpt(OptComment, []byte("c")), endOfOpt),
		"twice the id":     j(tOpt(OptEPBPacketID, u64(1)), tOpt(OptEPBPacketID, u64(2)), endOfOpt),
		"after the end":    j(tOpt(OptComment, []byte("kept")), endOfOpt, tOpt(OptComment, []byte("ignored")), []byte{1, 2}),
		"padding cut":      tOptRaw(OptComment, []byte("abcde")),
		"end with a value": j(tOpt(OptEPBQueue, u32(1)), tOpt(OptEndOfOpt, []byte("xy"))),
	}
	other = map[string][]byte{
		"hash":             j(tOpt(OptEPBHash, []byte{2, 1, 2, 3, 4}), endOfOpt),
		"empty hash":       j(tOpt(OptEPBHash, nil), endOfOpt),
		"verdict":          j(tOpt(OptEPBVerdict, []byte{0, 1, 2}), endOfOpt),
		"tc verdict":       j(tOpt(OptEPBVerdict, append([]byte{VerdictLinuxTC}, u64(1)...)), endOfOpt),
		"short tc verdict": j(tOpt(OptEPBVerdict, []byte{VerdictLinuxTC, 1, 2, 3, 4}), endOfOpt),
		"custom":           j(tOpt(OptCustomBinary, append(u32(32473), 1, 2, 3)), endOfOpt),
		"short custom":     j(tOpt(OptCustomString, []byte{1, 2}), endOfOpt),
		"unknown":          j(tOpt(99, []byte("?")), tOpt(OptComment, []byte("c")), endOfOpt),
		"flags 3 bytes":    j(tOpt(OptEPBFlags, []byte{1, 2, 3}), endOfOpt),
		"id 4 bytes":       j(tOpt(OptEPBPacketID, u32(1)), endOfOpt),
		"id 16 bytes":      j(tOpt(OptEPBPacketID, append(u64(1), u64(2)...)), endOfOpt),
		"flags 8 bytes":    j(tOpt(OptEPBFlags, u64(1)), endOfOpt),
		"empty flags":      j(tOpt(OptEPBFlags, nil), endOfOpt),
		"dropcount 9":      j(tOpt(OptEPBDropCount, append(u64(1), 0)), endOfOpt),
		"queue 8":          j(tOpt(OptEPBQueue, u64(1)), endOfOpt),
		"pid/tid 4":        j(tOpt(OptEPBProcessIDThreadID, u32(1)), endOfOpt),
		"stray 1":          j(tOpt(OptComment, []byte("c")), []byte{1}),
		"stray 2":          []byte{1, 0},
		"stray 3":          j(tOpt(OptEPBPacketID, u64(3)), []byte{0, 0, 0}),
		"past the block":   j(tOpt(OptComment, []byte("c")), tOptRaw(OptComment, []byte("abc"))[:4], []byte("ab")),
		"long past":        j(tOptRaw(OptEPBPacketID, u64(1))[:4], u32(1)),
		"comment then bad": j(tOpt(OptComment, []byte("c")), tOpt(OptEPBFlags, nil), endOfOpt),
	}
	return good, other
}

// fastPathFiles returns crafted files around the fast path's conditions.
func fastPathFiles() map[string][]byte {
	good, other := fastPathOptionSets()
	files := map[string][]byte{}
	head := concat(tSHB(), tIDB(9, 0))
	var names []string
	for name := range good {
		names = append(names, name)
	}
	// Every good set after every other, so that options left over
	// from the previous packet have to be cleared.
	for _, a := range names {
		for _, b := range names {
			files["good "+a+" then "+b] = concat(head, tEPB(0, 1e9+1, 5, good[a]), tEPB(0, 2e9+2, 0, good[b]), tEPB(0, 3, 8, good[a]))
		}
	}
	for name, opts := range other {
		for _, before := range []string{"none", "all", "comment"} {
			files["other "+name+" after "+before] = concat(head, tEPB(0, 1, 5, good[before]), tEPB(0, 2, 6, opts), tEPB(0, 3, 7, good["all"]), tEPB(0, 4, 7, good["none"]))
		}
	}
	epb := tEPB(0, 1, 6, good["comment+id"])
	bad := func(f func(b []byte)) []byte {
		b := bytes.Clone(epb)
		f(b)
		return concat(head, tEPB(0, 1, 5, good["all"]), b, epb)
	}
	le := binary.LittleEndian
	files["trailer mismatch"] = bad(func(b []byte) { le.PutUint32(b[len(b)-4:], 8) })
	files["length not multiple of 4"] = bad(func(b []byte) { le.PutUint32(b[4:], uint32(len(b)-2)) })
	files["length below the minimum"] = bad(func(b []byte) { le.PutUint32(b[4:], 8) })
	files["length below an EPB"] = bad(func(b []byte) { le.PutUint32(b[4:], 28) })
	files["length past the input"] = bad(func(b []byte) { le.PutUint32(b[4:], 1<<20) })
	files["length past 64 KiB"] = bad(func(b []byte) { le.PutUint32(b[4:], 1<<16+4) })
	files["unknown interface"] = bad(func(b []byte) { le.PutUint32(b[8:], 1) })
	files["caplen past the block"] = bad(func(b []byte) { le.PutUint32(b[20:], 1000) })
	files["caplen padding past the block"] = concat(head, tBlock(BlockEnhancedPacket, concat(u32(0), u64(0), u32(3), u32(3), []byte{1, 2, 3})))
	files["caplen fills the block"] = concat(head, tBlock(BlockEnhancedPacket, concat(u32(0), u64(0), u32(4), u32(4), []byte{1, 2, 3, 4})))
	files["EPB of 32 bytes"] = concat(head, tBlock(BlockEnhancedPacket, concat(u32(0), u64(0), u32(0), u32(0))), epb)
	files["EPB body of 19 bytes"] = concat(head, tBlock(BlockEnhancedPacket, make([]byte, 16)), epb)
	files["truncated"] = concat(head, epb, epb[:len(epb)-5])
	files["EPB before the section"] = concat(epb, head)
	files["EPB before an interface"] = concat(tSHB(), epb)
	files["microseconds"] = concat(tSHB(), tIDB(6, 0), epb, epb)
	files["no if_tsresol"] = concat(tSHB(), tIDB(0, 0), epb)
	files["2^-30"] = concat(tSHB(), tIDB(0x80|30, 0), epb)
	files["tsoffset"] = concat(tSHB(), tIDB(9, -1000), tIDB(9, 1<<40), epb, tEPB(1, 1<<60, 1, good["flags"]))
	files["second interface"] = concat(head, tIDB(6, 3), epb, tEPB(1, 5, 5, good["all"]), epb)
	files["two sections"] = concat(head, epb, tSHB(), epb, tIDB(9, 0), epb)
	files["other blocks between"] = concat(head, epb, tBlock(BlockSimplePacket, concat(u32(4), []byte{1, 2, 3, 4})), epb,
		tBlock(BlockPacket, concat([]byte{0, 0, 7, 0}, u64(0), u32(4), u32(4), []byte{1, 2, 3, 4}, good["comment"])), epb,
		tBlock(BlockCustom, concat(u32(1), []byte("data"))), epb)
	// A big-endian section: left to the general path.
	be := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	beSHB := concat(be(uint32(BlockSectionHeader)), be(28), be(byteOrderMagic), []byte{0, 1, 0, 0}, bytes.Repeat([]byte{0xff}, 8), be(28))
	beIDB := concat(be(1), be(20), []byte{0, 1, 0, 0}, be(0), be(20))
	beEPB := concat(be(6), be(48), be(0), be(1), be(2), be(4), be(4), []byte("abcd"), []byte{0, 1, 0, 1}, []byte("c\x00\x00\x00"), be(0), be(48))
	files["big-endian"] = concat(beSHB, beIDB, beEPB, beEPB, head, epb)
	return files
}

func TestFastPathMatchesGeneral(t *testing.T) {
	for name, data := range fastPathFiles() {
		checkSame(t, name, data, false)
	}
}

// TestFastPathTakesTheCommonCase checks that the fast path does decode
// the packets it is for, so that the tests above compare something.
func TestFastPathTakesTheCommonCase(t *testing.T) {
	good, _ := fastPathOptionSets()
	data := concat(tSHB(), tIDB(9, 0), tEPB(0, 1, 5, good["all"]), tEPB(0, 2, 5, good["comment+id"]))
	r, err := NewReaderBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil { // the section header
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil { // the interface
		t.Fatal(err)
	}
	for i := range 2 {
		if !r.readEnhancedFast() {
			t.Fatalf("packet %d: the fast path gave up", i)
		}
	}
}

// TestFastPathCorpus compares the paths on the conformance corpus, whole
// and cut short.
func TestFastPathCorpus(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("../../shared/conformance/pcapng-test-generator", "output_*", "*", "*.pcapng"))
	if len(files) == 0 {
		t.Skip("conformance corpus not found")
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, cut := range []int{len(data), len(data) - 3, len(data) * 2 / 3} {
			if cut >= 0 {
				checkSame(t, fmt.Sprintf("%s cut at %d", path, cut), data[:cut], false)
			}
		}
	}
}

// FuzzFastPath compares the paths on arbitrary input.
func FuzzFastPath(f *testing.F) {
	for _, data := range fastPathFiles() {
		f.Add(data)
	}
	seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzReader", "*"))
	for _, path := range seeds {
		if b, err := os.ReadFile(path); err == nil {
			if data, ok := parseSeed(string(b)); ok {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSame(t, "input", data, true)
	})
}

// parseSeed reads a one-value []byte seed file of the go fuzz format.
func parseSeed(s string) ([]byte, bool) {
	s, ok := strings.CutPrefix(s, "go test fuzz v1\n[]byte(")
	if !ok {
		return nil, false
	}
	s = strings.TrimSpace(s)
	s, ok = strings.CutSuffix(s, ")")
	if !ok {
		return nil, false
	}
	var q string
	if _, err := fmt.Sscanf(s, "%q", &q); err != nil {
		return nil, false
	}
	return []byte(q), true
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
