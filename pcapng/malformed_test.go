package pcapng_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/pcapng"
)

// Offsets in the crafted files: a 28-byte SHB, then an IDB.
var (
	shb = rawSHB(1)
	idb = rawIDB(pcapng.LinkTypeEthernet, 0)
	// goodEPB is a valid 16-byte packet on interface 0.
	goodEPB = rawEPB(0, 1, payload(16, 0))
)

const afterIDB = 28 + 20 // offset of the first block after shb and idb

// setLen overwrites the leading (and optionally the trailing) length.
func setLen(b []byte, lead uint32, trail bool) []byte {
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b[4:], lead)
	if trail {
		binary.LittleEndian.PutUint32(b[len(b)-4:], lead)
	}
	return b
}

// epbWithCaplen returns an EPB whose captured length field claims caplen.
func epbWithCaplen(caplen uint32) []byte {
	b := rawEPB(0, 1, payload(8, 0))
	binary.LittleEndian.PutUint32(b[20:], caplen)
	return b
}

func TestMalformedBlocks(t *testing.T) {
	tests := []struct {
		name   string
		file   []byte
		good   int // complete blocks delivered before the error
		offset int64
		block  pcapng.BlockType
		msg    string // part of the message
		is     error  // sentinel, or nil when none applies
	}{
		{"length not a multiple of 4", concat(shb, idb, setLen(goodEPB, uint32(len(goodEPB))+2, false), []byte{0, 0}),
			2, afterIDB, pcapng.BlockEnhancedPacket, "not a multiple of 4", nil},
		{"length below the minimum", concat(shb, idb, setLen(goodEPB, 8, false)),
			2, afterIDB, pcapng.BlockEnhancedPacket, "below the minimum", nil},
		{"zero length", concat(shb, idb, setLen(goodEPB, 0, false)),
			2, afterIDB, pcapng.BlockEnhancedPacket, "below the minimum", nil},
		{"trailing length mismatch", concat(shb, idb, func() []byte {
			b := bytes.Clone(goodEPB)
			binary.LittleEndian.PutUint32(b[len(b)-4:], 52)
			return b
		}()), 2, afterIDB, pcapng.BlockEnhancedPacket, "trailing block length 52 does not match the leading length 48", nil},
		{"packet option running past the block", concat(shb, idb, func() []byte {
			b := rawEPB(0, 1, payload(4, 0), rawOpt(pcapng.OptComment, []byte("abcd")))
			binary.LittleEndian.PutUint16(b[8+20+4+2:], 200) // the comment's length
			return b
		}()), 2, afterIDB, pcapng.BlockEnhancedPacket, "length 200, which runs past the end of the block", nil},
		{"interface option running past the block", concat(shb, func() []byte {
			b := rawIDB(pcapng.LinkTypeEthernet, 0, rawOpt(pcapng.OptIfName, []byte("eth0")))
			binary.LittleEndian.PutUint16(b[8+8+2:], 9)
			return b
		}()), 1, 28, pcapng.BlockInterfaceDescription, "runs past the end of the block", nil},
		{"section option running past the block", func() []byte {
			body := le64(le16(le16(le32(nil, 0x1A2B3C4D), 1), 0), ^uint64(0))
			body = append(body, le16(le16(nil, pcapng.OptComment), 1000)...)
			body = append(body, "abcd"...)
			return rawBlock(pcapng.BlockSectionHeader, body)
		}(), 0, 0, pcapng.BlockSectionHeader, "runs past the end of the block", nil},
		{"epb_flags of 3 bytes", concat(shb, idb, rawEPB(0, 1, payload(4, 0), rawOpt(pcapng.OptEPBFlags, []byte{1, 0, 0}))),
			2, afterIDB, pcapng.BlockEnhancedPacket, "epb_flags has length 3, want 4", pcapng.ErrInvalidOption},
		{"epb_packetid of 4 bytes", concat(shb, idb, rawEPB(0, 1, payload(4, 0), rawOpt(pcapng.OptEPBPacketID, []byte{1, 0, 0, 0}))),
			2, afterIDB, pcapng.BlockEnhancedPacket, "epb_packetid has length 4, want 8", pcapng.ErrInvalidOption},
		{"epb_dropcount of 9 bytes", concat(shb, idb, rawEPB(0, 1, payload(4, 0), rawOpt(pcapng.OptEPBDropCount, make([]byte, 9)))),
			2, afterIDB, pcapng.BlockEnhancedPacket, "epb_dropcount has length 9, want 8", pcapng.ErrInvalidOption},
		{"tc verdict of 5 bytes", concat(shb, idb, rawEPB(0, 1, payload(4, 0), rawOpt(pcapng.OptEPBVerdict, []byte{pcapng.VerdictLinuxTC, 1, 2, 3, 4}))),
			2, afterIDB, pcapng.BlockEnhancedPacket, "epb_verdict of type 1 has length 5, want 9", pcapng.ErrInvalidOption},
		{"xdp verdict of 10 bytes", concat(shb, idb, rawEPB(0, 1, payload(4, 0), rawOpt(pcapng.OptEPBVerdict, append(xdpVerdict(1), 0)))),
			2, afterIDB, pcapng.BlockEnhancedPacket, "epb_verdict of type 2 has length 10, want 9", pcapng.ErrInvalidOption},
		{"empty epb_hash", concat(shb, idb, rawEPB(0, 1, payload(4, 0), rawOpt(pcapng.OptEPBHash, nil))),
			2, afterIDB, pcapng.BlockEnhancedPacket, "epb_hash is empty", pcapng.ErrInvalidOption},
		{"custom option without enterprise number", concat(shb, idb, rawEPB(0, 1, payload(4, 0), rawOpt(pcapng.OptCustomBinary, []byte{1, 2}))),
			2, afterIDB, pcapng.BlockEnhancedPacket, "too short for an enterprise number", pcapng.ErrInvalidOption},
		{"if_tsresol of 2 bytes", concat(shb, rawIDB(pcapng.LinkTypeEthernet, 0, rawOpt(pcapng.OptIfTsresol, []byte{9, 0}))),
			1, 28, pcapng.BlockInterfaceDescription, "if_tsresol has length 2, want 1", pcapng.ErrInvalidOption},
		{"if_tsoffset of 4 bytes", concat(shb, rawIDB(pcapng.LinkTypeEthernet, 0, rawOpt(pcapng.OptIfTsoffset, []byte{9, 0, 0, 0}))),
			1, 28, pcapng.BlockInterfaceDescription, "if_tsoffset has length 4, want 8", pcapng.ErrInvalidOption},
		{"isb_ifrecv of 4 bytes", concat(shb, idb, rawBlock(pcapng.BlockInterfaceStatistics,
			concat(make([]byte, 12), rawOpt(pcapng.OptISBIfRecv, []byte{1, 2, 3, 4}), []byte{0, 0, 0, 0}))),
			2, afterIDB, pcapng.BlockInterfaceStatistics, "isb_ifrecv has length 4, want 8", pcapng.ErrInvalidOption},
		{"EPB interface id out of range", concat(shb, idb, rawEPB(1, 1, payload(4, 0))),
			2, afterIDB, pcapng.BlockEnhancedPacket, "interface id 1, but the section describes 1 interfaces", pcapng.ErrUnknownInterface},
		{"EPB without any interface", concat(shb, rawEPB(0, 1, payload(4, 0))),
			1, 28, pcapng.BlockEnhancedPacket, "interface id 0", pcapng.ErrUnknownInterface},
		{"ISB interface id out of range", concat(shb, idb, rawBlock(pcapng.BlockInterfaceStatistics, concat(le32(nil, 5), make([]byte, 8)))),
			2, afterIDB, pcapng.BlockInterfaceStatistics, "interface id 5", pcapng.ErrUnknownInterface},
		{"caplen beyond the block", concat(shb, idb, epbWithCaplen(9)),
			2, afterIDB, pcapng.BlockEnhancedPacket, "captured length 9 exceeds the 8 bytes left", nil},
		{"caplen of 4 GiB", concat(shb, idb, epbWithCaplen(0xffffffff)),
			2, afterIDB, pcapng.BlockEnhancedPacket, "captured length 4294967295 exceeds", nil},
		{"EPB body too short", concat(shb, idb, rawBlock(pcapng.BlockEnhancedPacket, make([]byte, 16))),
			2, afterIDB, pcapng.BlockEnhancedPacket, "shorter than an enhanced packet header", nil},
		{"major version 2", concat(rawSHB(2), idb, goodEPB),
			0, 0, pcapng.BlockSectionHeader, "version 2.0", pcapng.ErrUnsupportedVersion},
		{"major version 2 in the second section", concat(shb, idb, goodEPB, rawSHB(2), idb),
			3, afterIDB + int64(len(goodEPB)), pcapng.BlockSectionHeader, "version 2.0", pcapng.ErrUnsupportedVersion},
		{"bad byte-order magic in the second section", concat(shb, idb, func() []byte {
			b := rawSHB(1)
			b[8] = 0x4E
			return b
		}()), 2, afterIDB, pcapng.BlockSectionHeader, "bad byte-order magic", nil},
		{"claimed length of 4 GiB", concat(shb, idb, setLen(goodEPB, 0xfffffffc, false)),
			2, afterIDB, pcapng.BlockEnhancedPacket, "exceeds the limit", pcapng.ErrBlockTooLarge},
		{"truncated last block", concat(shb, idb, goodEPB, goodEPB, goodEPB[:30]),
			4, afterIDB + 2*int64(len(goodEPB)), pcapng.BlockEnhancedPacket, "input ends after 30 bytes", pcapng.ErrTruncated},
		{"truncated block header", concat(shb, idb, goodEPB, goodEPB[:6]),
			3, afterIDB + int64(len(goodEPB)), pcapng.BlockEnhancedPacket, "after 6 bytes of the block header", pcapng.ErrTruncated},
		{"truncated section header", concat(shb, idb, goodEPB, rawSHB(1)[:10]),
			3, afterIDB + int64(len(goodEPB)), pcapng.BlockSectionHeader, "inside the section header", pcapng.ErrTruncated},
		{"name record running past the block", concat(shb, rawBlock(pcapng.BlockNameResolution, concat(le16(le16(nil, 1), 40), []byte{1, 2, 3, 4}))),
			1, 28, pcapng.BlockNameResolution, "runs past the end of the block", nil},
		{"name resolution without end record", concat(shb, rawBlock(pcapng.BlockNameResolution, concat(le16(le16(nil, 1), 4), []byte{1, 2, 3, 4}))),
			1, 28, pcapng.BlockNameResolution, "without an end record", nil},
		{"secrets length beyond the block", concat(shb, rawBlock(pcapng.BlockDecryptionSecrets, le32(le32(nil, 1), 100))),
			1, 28, pcapng.BlockDecryptionSecrets, "secrets length 100 exceeds", nil},
		{"custom block without enterprise number", concat(shb, rawBlock(pcapng.BlockCustom, nil)),
			1, 28, pcapng.BlockCustom, "no room for the enterprise number", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := pcapng.NewReader(bytes.NewReader(tc.file))
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			n := 0
			for {
				_, err = r.Next()
				if err != nil {
					break
				}
				n++
			}
			var fe *pcapng.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("after %d blocks: got %v (%T), want a *FormatError", n, err, err)
			}
			if n != tc.good {
				t.Errorf("%d blocks delivered before the error, want %d", n, tc.good)
			}
			if fe.Offset != tc.offset || fe.Block != tc.block {
				t.Errorf("error at %v offset %d, want %v offset %d (%v)", fe.Block, fe.Offset, tc.block, tc.offset, err)
			}
			if fe.Msg == "" || !strings.Contains(fe.Msg, tc.msg) {
				t.Errorf("message %q, want one containing %q", fe.Msg, tc.msg)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v does not wrap %v", err, tc.is)
			}
			if tc.is == nil && fe.Err != nil {
				t.Errorf("%v wraps %v, want no cause", err, fe.Err)
			}
			if !strings.HasPrefix(err.Error(), "pcapng: "+tc.block.String()+" at offset ") {
				t.Errorf("error text %q", err.Error())
			}
			// Errors are sticky.
			if _, err2 := r.Next(); err2 != err {
				t.Errorf("second Next: %v, want the same error", err2)
			}
			if r.Packet() != nil {
				t.Error("Packet() is not nil after an error")
			}
		})
	}
}

// TestMalformedBlockLimit checks NewReaderSize's limit and that a huge
// claimed length costs no memory.
func TestMalformedBlockLimit(t *testing.T) {
	big := rawEPB(0, 1, payload(2000, 0))
	file := concat(shb, idb, goodEPB, big, goodEPB)
	r, err := pcapng.NewReaderSize(bytes.NewReader(file), 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadPacket(); err != nil {
		t.Fatal(err)
	}
	_, err = r.ReadPacket()
	var fe *pcapng.FormatError
	if !errors.As(err, &fe) || !errors.Is(err, pcapng.ErrBlockTooLarge) || fe.Offset != afterIDB+int64(len(goodEPB)) || !strings.Contains(fe.Msg, "block length 2032 exceeds the limit of 1024") {
		t.Fatalf("got %v, want ErrBlockTooLarge at %d", err, afterIDB+len(goodEPB))
	}
	// The same file reads with a larger limit, the big block going
	// through the path for blocks larger than the read buffer.
	r, err = pcapng.NewReaderSize(bytes.NewReader(file), 2048)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if i == 1 && !bytes.Equal(p.Data, payload(2000, 0)) {
			t.Fatal("big packet read back wrong")
		}
	}

	claims := []struct {
		name  string
		limit int
		claim uint32
		is    error
	}{
		{"4 GiB, default limit", pcapng.DefaultMaxBlockSize, 0xfffffffc, pcapng.ErrBlockTooLarge},
		{"4 GiB, highest limit", 1 << 40, 0xfffffffc, pcapng.ErrBlockTooLarge},
		{"1 GiB within a 2 GiB limit", 1 << 31, 1 << 30, pcapng.ErrTruncated},
		{"16 MiB within the default limit", pcapng.DefaultMaxBlockSize, pcapng.DefaultMaxBlockSize, pcapng.ErrTruncated},
	}
	for _, c := range claims {
		t.Run(c.name, func(t *testing.T) {
			file := concat(shb, idb, setLen(goodEPB, c.claim, false), make([]byte, 1000))
			read := func() error {
				r, err := pcapng.NewReaderSize(bytes.NewReader(file), c.limit)
				if err != nil {
					return err
				}
				for {
					if _, err := r.Next(); err != nil {
						return err
					}
				}
			}
			if err := read(); !errors.Is(err, c.is) {
				t.Fatalf("got %v, want %v", err, c.is)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			const runs = 10
			for range runs {
				_ = read()
			}
			runtime.ReadMemStats(&after)
			perRun := (after.TotalAlloc - before.TotalAlloc) / runs
			// The read buffer (1 MiB at most) plus a little: far below
			// the claimed length.
			if perRun > 2<<20 {
				t.Errorf("reading a block that claims %d bytes allocated %d bytes per run", c.claim, perRun)
			}
		})
	}
}

func TestNotPcapng(t *testing.T) {
	classic := le32(nil, 0xa1b2c3d4)
	classic = le16(le16(classic, 2), 4)
	classic = append(classic, make([]byte, 16)...)
	tests := []struct {
		name string
		in   []byte
		msg  string
	}{
		{"empty", nil, "empty input"},
		{"one byte", []byte{0x0a}, "no section header block"},
		{"pcap classic", classic, "no section header block"},
		{"pcap classic big-endian", append([]byte{0xa1, 0xb2, 0xc3, 0xd4}, make([]byte, 20)...), "no section header block"},
		{"text", []byte("hello, this is a text file\nnot a capture\n"), "no section header block"},
		{"block before the first section header", concat(idb, shb), "no section header block"},
		{"section header with a bad magic", func() []byte { b := bytes.Clone(shb); b[8] = 0; return b }(), "bad byte-order magic"},
		{"section header cut short", shb[:11], "no section header block"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := pcapng.NewReader(bytes.NewReader(tc.in))
			var fe *pcapng.FormatError
			if r != nil || !errors.As(err, &fe) || !errors.Is(err, pcapng.ErrNotPcapng) {
				t.Fatalf("got %v, %v; want a *FormatError wrapping ErrNotPcapng", r, err)
			}
			if fe.Offset != 0 || fe.Block != pcapng.BlockSectionHeader || !strings.Contains(fe.Msg, tc.msg) {
				t.Errorf("got %+v, want offset 0, SHB, a message containing %q", fe, tc.msg)
			}
		})
	}
}

// errReader fails after its data.
type errReader struct {
	data []byte
	err  error
}

func (e *errReader) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

func TestReadErrorIsReported(t *testing.T) {
	ioErr := errors.New("device gone")
	r, err := pcapng.NewReader(&errReader{data: concat(shb, idb, goodEPB, goodEPB[:20]), err: ioErr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadPacket(); err != nil {
		t.Fatal(err)
	}
	_, err = r.ReadPacket()
	var fe *pcapng.FormatError
	if !errors.As(err, &fe) || !errors.Is(err, ioErr) || fe.Offset != afterIDB+int64(len(goodEPB)) {
		t.Fatalf("got %v, want a *FormatError wrapping the read error at offset %d", err, afterIDB+len(goodEPB))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, pcapng.ErrTruncated) {
		t.Fatalf("%v: a read error is not a truncation", err)
	}
}
