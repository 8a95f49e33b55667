package pcapng_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pathcap/pathcap/pcapng"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the committed fuzz seed corpus in testdata/fuzz")

// fuzzLimit bounds the block size in FuzzReader, and so its memory.
const fuzzLimit = 1 << 16

// smallEverything is everything() without its huge packets and options,
// small enough for a seed.
func smallEverything() []item {
	var items []item
	for _, it := range everything() {
		if it.packet != nil && (len(it.packet.Data) > 2000 || len(it.packet.Options.Comments) == 1 && len(it.packet.Options.Comments[0]) > 2000) {
			continue
		}
		items = append(items, it)
	}
	return items
}

// readerSeeds are the committed seeds of FuzzReader: files from our
// Writer and crafted bad blocks.
func readerSeeds(t testing.TB) map[string][]byte {
	var buf bytes.Buffer
	w, err := pcapng.NewWriter(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddInterface(&pcapng.Interface{LinkType: pcapng.LinkTypeEthernet, TSResolution: pcapng.Nanoseconds}); err != nil {
		t.Fatal(err)
	}
	for i, p := range []*pcapng.Packet{
		{Timestamp: baseTime, Data: icmpEcho(false, 1, 1, 8), Options: pcapng.PacketOptions{Comments: [][]byte{[]byte("c1"), []byte("c2")}, PacketID: 7, HasPacketID: true}},
		{Timestamp: baseTime, Data: udpFrame(1, 9, []byte("x")), Options: pcapng.PacketOptions{Flags: 1, HasFlags: true, Verdicts: [][]byte{tcVerdict(2)}}},
	} {
		if err := w.WritePacket(p); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	simple := buf.Bytes()

	items := smallEverything()
	var all bytes.Buffer
	aw, err := pcapng.NewWriter(&all, items[0].section)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items[1:] {
		if err := it.write(aw); err != nil {
			t.Fatal(err)
		}
	}

	bigEndian := func(b []byte) []byte {
		// The small file converted by hand to a big-endian section
		// holding one IDB and one EPB without options.
		be := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
		shb := concat(be(0x0A0D0D0A), be(28), be(0x1A2B3C4D), []byte{0, 1, 0, 0}, bytes.Repeat([]byte{0xff}, 8), be(28))
		idb := concat(be(1), be(20), []byte{0, 1, 0, 0}, be(0), be(20))
		epb := concat(be(6), be(36), be(0), be(1), be(2), be(4), be(4), []byte("abcd"), be(36))
		return concat(shb, idb, epb, b)
	}

	return map[string][]byte{
		"writer-small":           simple,
		"writer-everything":      all.Bytes(),
		"big-endian":             bigEndian(nil),
		"two-sections":           concat(simple, simple),
		"truncated":              simple[:len(simple)-7],
		"length-not-multiple-4":  concat(shb, idb, setLen(goodEPB, uint32(len(goodEPB))+2, false), []byte{0, 0}),
		"length-below-minimum":   concat(shb, idb, setLen(goodEPB, 8, false)),
		"trailing-mismatch":      concat(shb, idb, setLen(goodEPB, uint32(len(goodEPB)), false)[:len(goodEPB)-4], le32(nil, 52)),
		"option-past-block":      concat(shb, idb, rawEPB(0, 1, payload(4, 0), le16(le16(nil, 1), 300))),
		"epb-flags-3-bytes":      concat(shb, idb, rawEPB(0, 1, payload(4, 0), rawOpt(pcapng.OptEPBFlags, []byte{1, 0, 0}))),
		"verdict-tc-5-bytes":     concat(shb, idb, rawEPB(0, 1, payload(4, 0), rawOpt(pcapng.OptEPBVerdict, []byte{1, 1, 2, 3, 4}))),
		"tsresol-2-bytes":        concat(shb, rawIDB(pcapng.LinkTypeEthernet, 0, rawOpt(pcapng.OptIfTsresol, []byte{9, 0}))),
		"tsresol-2pow-127":       concat(shb, rawIDB(pcapng.LinkTypeEthernet, 0, rawOpt(pcapng.OptIfTsresol, []byte{0xff})), rawEPB(0, ^uint64(0), nil)),
		"tsresol-10pow-127":      concat(shb, rawIDB(pcapng.LinkTypeEthernet, 0, rawOpt(pcapng.OptIfTsresol, []byte{0x7f}), rawOpt(pcapng.OptIfTsoffset, le64(nil, 1<<63))), rawEPB(0, ^uint64(0), nil)),
		"interface-out-of-range": concat(shb, idb, rawEPB(3, 1, payload(4, 0))),
		"caplen-past-block":      concat(shb, idb, epbWithCaplen(0xfffffff0)),
		"version-2":              concat(rawSHB(2), idb, goodEPB),
		"claims-4GiB":            concat(shb, idb, setLen(goodEPB, 0xfffffffc, false)),
		"claims-limit":           concat(shb, idb, setLen(goodEPB, fuzzLimit, false), make([]byte, 100)),
		"spb-and-pb":             concat(shb, rawIDB(pcapng.LinkTypeEthernet, 6), rawBlock(pcapng.BlockSimplePacket, concat(le32(nil, 100), payload(8, 0))), rawBlock(pcapng.BlockPacket, concat(le16(le16(nil, 0), 3), le32(le32(nil, 0), 1), le32(le32(nil, 4), 4), payload(4, 0)))),
		"nrb-odd-records":        concat(shb, rawBlock(pcapng.BlockNameResolution, concat(le16(le16(nil, 1), 5), []byte{1, 2, 3, 4, 'a', 0, 0, 0}, le16(le16(nil, 77), 1), []byte{9, 0, 0, 0}, le32(nil, 0)))),
		"unknown-block":          concat(shb, rawBlock(0x0BADF00D, []byte("what"))),
		"text":                   []byte("not a capture at all\n"),
	}
}

func seedFileName(name string) string {
	return filepath.Join("testdata", "fuzz", "FuzzReader", "seed-"+name)
}

func encodeSeed(b []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b)
}

// TestFuzzSeedCorpus checks that the committed seeds are what
// readerSeeds generates (go test -run FuzzSeedCorpus -update-seeds
// rewrites them).
func TestFuzzSeedCorpus(t *testing.T) {
	for name, data := range readerSeeds(t) {
		path := seedFileName(name)
		want := encodeSeed(data)
		if *updateSeeds {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("seed %s: %v (run with -update-seeds)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("seed %s is out of date (run with -update-seeds)", name)
		}
	}
}

// checkReadAll reads data to the end and checks the Reader's promises.
func checkReadAll(t *testing.T, data []byte, limit int) {
	r, err := pcapng.NewReaderSize(bytes.NewReader(data), limit)
	if err != nil {
		var fe *pcapng.FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("NewReader: %v (%T) is not a *FormatError", err, err)
		}
		return
	}
	last := int64(-1)
	for {
		typ, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			var fe *pcapng.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Next: %v (%T) is not a *FormatError", err, err)
			}
			if fe.Offset < 0 || fe.Offset > int64(len(data)) || fe.Msg == "" {
				t.Fatalf("error %v has offset %d in %d bytes", err, fe.Offset, len(data))
			}
			if _, err2 := r.Next(); err2 != err {
				t.Fatalf("error not sticky: %v then %v", err, err2)
			}
			return
		}
		off := r.Offset()
		if off <= last || off >= int64(len(data)) || off%4 != 0 {
			t.Fatalf("block %v at offset %d after %d, in %d bytes", typ, off, last, len(data))
		}
		last = off
		body := r.RawBody()
		if len(body) > limit || int64(len(body))+12 > int64(len(data))-off {
			t.Fatalf("%v at %d: body of %d bytes", typ, off, len(body))
		}
		switch {
		case typ.IsPacket():
			p := r.Packet()
			if p == nil || p.Interface == nil || len(p.Data) > len(body) {
				t.Fatalf("%v at %d: packet %+v", typ, off, p)
			}
			if int(p.InterfaceID) >= len(r.Interfaces()) || &r.Interfaces()[p.InterfaceID] != p.Interface {
				t.Fatalf("%v at %d: interface %d of %d", typ, off, p.InterfaceID, len(r.Interfaces()))
			}
			_ = p.Timestamp.String()
			_ = p.Options.Direction()
		case typ == pcapng.BlockInterfaceStatistics:
			if r.InterfaceStatistics() == nil {
				t.Fatal("no statistics")
			}
		case typ == pcapng.BlockNameResolution:
			if r.NameResolution() == nil {
				t.Fatal("no names")
			}
		case typ == pcapng.BlockDecryptionSecrets:
			if r.DecryptionSecrets() == nil {
				t.Fatal("no secrets")
			}
		case typ == pcapng.BlockCustom || typ == pcapng.BlockCustomNoCopy:
			if r.CustomBlock() == nil {
				t.Fatal("no custom block")
			}
		case typ == pcapng.BlockSectionHeader:
			if r.Section().MajorVersion != 1 {
				t.Fatalf("section of version %d accepted", r.Section().MajorVersion)
			}
		case typ == pcapng.BlockInterfaceDescription:
			_ = r.Interfaces()[len(r.Interfaces())-1].TSResolution.String()
		}
	}
}

func FuzzReader(f *testing.F) {
	// Seeds from the conformance corpus, when it is present.
	files, _ := filepath.Glob(filepath.Join(conformanceDir, "output_*", "*", "*.pcapng"))
	for _, path := range files {
		if data, err := os.ReadFile(path); err == nil && len(data) <= 4096 {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkReadAll(t, data, fuzzLimit)
		// A limit above the read buffer size sends large blocks down
		// the other path.
		checkReadAll(t, data, pcapng.DefaultMaxBlockSize)
		// Reading from memory must give what reading a stream gives,
		// and must not write to the memory.
		orig := string(data)
		var s1, s2 []string
		var d1, d2 []string
		var e1, e2 error
		if r, err := pcapng.NewReader(bytes.NewReader(data)); err == nil {
			s1, d1, _, e1 = describeReader(r)
		} else {
			e1 = err
		}
		if r, err := pcapng.NewReaderBytes(data); err == nil {
			s2, d2, _, e2 = describeReader(r)
		} else {
			e2 = err
		}
		if fmt.Sprint(s1, d1, e1) != fmt.Sprint(s2, d2, e2) {
			t.Fatalf("stream and memory readers differ:\nstream %v %v\nmemory %v %v", s1, e1, s2, e2)
		}
		if string(data) != orig {
			t.Fatal("NewReaderBytes wrote to its input")
		}
		checkReadPacket(t, data)
	})
}

// samePacket reports whether two Readers are on the same packet, at the
// same offset.
func samePacket(r1, r2 *pcapng.Reader) bool {
	p1, p2 := r1.Packet(), r2.Packet()
	if r1.Offset() != r2.Offset() || p1 == nil || p2 == nil {
		return false
	}
	return p1.Type == p2.Type && p1.InterfaceID == p2.InterfaceID &&
		p1.TimestampRaw == p2.TimestampRaw && p1.Timestamp.Equal(p2.Timestamp) &&
		p1.OriginalLength == p2.OriginalLength && bytes.Equal(p1.Data, p2.Data) &&
		reflect.DeepEqual(p1.Options, p2.Options)
}

// checkReadPacket checks that ReadPacket returns the packets that Next
// finds, and then the same error, sticky.
func checkReadPacket(t *testing.T, data []byte) {
	t.Helper()
	byNext, err1 := pcapng.NewReader(bytes.NewReader(data))
	byPacket, err2 := pcapng.NewReader(bytes.NewReader(data))
	if err1 != nil || err2 != nil {
		if fmt.Sprint(err1) != fmt.Sprint(err2) {
			t.Fatalf("NewReader: %v, then %v", err1, err2)
		}
		return
	}
	for n := 0; ; n++ {
		var errNext error
		for {
			typ, err := byNext.Next()
			if err != nil {
				errNext = err
				break
			}
			if typ.IsPacket() {
				break
			}
		}
		p, err := byPacket.ReadPacket()
		if fmt.Sprint(err) != fmt.Sprint(errNext) {
			t.Fatalf("packet %d: ReadPacket returned error %v, Next %v", n, err, errNext)
		}
		if err != nil {
			if _, again := byPacket.ReadPacket(); again != err {
				t.Fatalf("ReadPacket error not sticky: %v then %v", err, again)
			}
			if byPacket.Packet() != nil || byPacket.RawBody() != nil {
				t.Fatalf("after error %v the Reader is still on a block", err)
			}
			return
		}
		if p != byPacket.Packet() || !samePacket(byPacket, byNext) {
			t.Fatalf("packet %d: ReadPacket returned %+v at offset %d, Next %+v at offset %d", n, p, byPacket.Offset(), byNext.Packet(), byNext.Offset())
		}
	}
}

// FuzzRoundTrip writes packets made of fuzz input and reads them back.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello world"), "a comment", uint64(1), uint32(1), int64(123456789), byte(9), uint8(2))
	f.Add([]byte{}, "", uint64(0), uint32(0), int64(0), byte(0x94), uint8(0))
	f.Add(bytes.Repeat([]byte{0xff}, 1500), "c1\x00c2\x00c3", ^uint64(0), ^uint32(0), int64(999999999), byte(6), uint8(5))
	f.Add([]byte{1, 2, 3}, "x", uint64(42), uint32(2), int64(1), byte(0x9e), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, comments string, id uint64, flags uint32, nsec int64, tsresol byte, nPackets uint8) {
		if len(comments) > 60000 {
			return // longer than an option can hold
		}
		ifc := &pcapng.Interface{LinkType: pcapng.LinkTypeEthernet, TSResolution: pcapng.NewResolution(tsresol&0x80 != 0, tsresol&0x7f), TSOffset: int64(id % 1000)}
		var buf bytes.Buffer
		w, err := pcapng.NewWriter(&buf, &pcapng.Section{Comments: strings.Split(comments, "\x00")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.AddInterface(ifc); err != nil {
			// Resolutions too coarse or too fine for today's dates are
			// refused; nothing else is.
			r := ifc.TSResolution
			if (r.Base2 && r.Exp <= 31) || (!r.Base2 && r.Exp <= 9) {
				t.Fatalf("interface with resolution %v refused: %v", r, err)
			}
			return
		}
		n := int(nPackets%8) + 1
		var want []*pcapng.Packet
		for i := range n {
			chunk := data[len(data)*i/n : len(data)*(i+1)/n]
			p := &pcapng.Packet{
				Timestamp:      time.Unix(1_000_000_000+int64(id%1_000_000_000)+int64(i), (nsec%1e9+1e9)%1e9),
				Data:           chunk,
				OriginalLength: uint32(len(chunk)) + flags%3,
			}
			o := &p.Options
			parts := strings.Split(comments, "\x00")
			for _, c := range parts[:min(i%3, len(parts))] {
				o.Comments = append(o.Comments, []byte(c))
			}
			if i%2 == 0 {
				o.PacketID, o.HasPacketID = id+uint64(i), true
			}
			if flags&1 != 0 {
				o.Flags, o.HasFlags = flags, true
			}
			if i%3 == 1 {
				o.Verdicts = append(o.Verdicts, tcVerdict(uint64(flags)), append([]byte{0}, chunk[:min(len(chunk), 20)]...))
			}
			if i%4 == 3 {
				o.Hashes = append(o.Hashes, append([]byte{2}, chunk[:min(len(chunk), 16)]...))
				o.DropCount, o.HasDropCount = id, true
			}
			if err := w.WritePacket(p); err != nil {
				t.Fatalf("packet %d: %v", i, err)
			}
			want = append(want, p)
		}
		r, err := pcapng.NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(r.Section().Comments, "\x00"); got != comments {
			// The section is read by the first Next.
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(r.Section().Comments, "\x00"); got != comments {
				t.Fatalf("section comments %q, want %q", got, comments)
			}
		}
		for i, wp := range want {
			p, err := r.ReadPacket()
			if err != nil {
				t.Fatalf("packet %d: %v", i, err)
			}
			if !bytes.Equal(p.Data, wp.Data) || p.OriginalLength != wp.OriginalLength {
				t.Fatalf("packet %d: data %x (%d), want %x (%d)", i, p.Data, p.OriginalLength, wp.Data, wp.OriginalLength)
			}
			wantTime, wantRaw := expectedTime(wp.Timestamp, ifc)
			if !p.Timestamp.Equal(wantTime) || p.TimestampRaw != wantRaw {
				t.Fatalf("packet %d: time %v (%d), want %v (%d)", i, p.Timestamp, p.TimestampRaw, wantTime, wantRaw)
			}
			got, exp := p.Options, wp.Options
			emptyToNil(&got)
			emptyToNil(&exp)
			if fmt.Sprintf("%q", got.Comments) != fmt.Sprintf("%q", exp.Comments) || fmt.Sprintf("%x %x", got.Verdicts, got.Hashes) != fmt.Sprintf("%x %x", exp.Verdicts, exp.Hashes) ||
				got.PacketID != exp.PacketID || got.HasPacketID != exp.HasPacketID || got.Flags != exp.Flags || got.HasFlags != exp.HasFlags ||
				got.DropCount != exp.DropCount || got.HasDropCount != exp.HasDropCount {
				t.Fatalf("packet %d: options %+v, want %+v", i, got, exp)
			}
		}
		if _, err := r.ReadPacket(); err != io.EOF {
			t.Fatalf("after the packets: %v", err)
		}
	})
}
