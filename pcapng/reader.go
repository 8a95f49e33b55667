package pcapng

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

const (
	byteOrderMagic   = 0x1A2B3C4D
	blockOverhead    = 12      // type, length and trailing length
	readBufferSize   = 1 << 20 // blocks up to this size are read without copying
	minReadBuffer    = 4 << 10 // for inputs that say they are smaller
	minBlockSize     = 12
	maxInterfacesCap = 1 << 16 // interfaces per section the Reader keeps
)

// endian decodes integers in one byte order without an interface call.
type endian struct{ big bool }

func (e endian) u16(b []byte) uint16 {
	if e.big {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (e endian) u32(b []byte) uint32 {
	if e.big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

func (e endian) u64(b []byte) uint64 {
	if e.big {
		return binary.BigEndian.Uint64(b)
	}
	return binary.LittleEndian.Uint64(b)
}

func (e endian) order() binary.ByteOrder {
	if e.big {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// Reader reads a pcap-ng file block by block.
//
// Next advances to the next block and returns its type; the accessor for
// that type (Packet, InterfaceStatistics, NameResolution, ...) then returns
// its decoded content. ReadPacket skips to the next packet. Everything
// returned is valid until the next call to Next or ReadPacket.
type Reader struct {
	src      io.Reader
	buf      []byte // read buffer; the unread bytes are buf[start:end]
	start    int
	end      int
	srcErr   error // the first error src returned (io.EOF at the end)
	maxBlock uint32
	err      error // sticky error

	next  int64 // offset of the next block
	e     endian
	ready bool // a section header has been read

	// The current block.
	typ    BlockType
	offset int64
	body   []byte // between the length field and the trailing length
	large  []byte // buffer for blocks larger than the bufio buffer

	section      Section
	sectionIndex int
	interfaces   []Interface

	packet Packet
	// optionsSet says which fields of packet.Options may hold something,
	// so that the packet decoders clear only those between packets: the
	// fast path keeps it exact, the general path sets it to 0 or optAll.
	optionsSet optionFields
	stats      InterfaceStatistics
	names      NameResolution
	secrets    DecryptionSecrets
	custom     CustomBlock

	// noFastPath turns readEnhancedFast off, for the tests that check
	// it against the general path.
	noFastPath bool
}

// NewReader returns a Reader for r with the default block size limit
// (DefaultMaxBlockSize). It returns an error wrapping ErrNotPcapng when r
// does not start with a section header block.
func NewReader(r io.Reader) (*Reader, error) {
	return NewReaderSize(r, DefaultMaxBlockSize)
}

// NewReaderSize is like NewReader with a limit on the size of one block:
// a larger block is reported as an error wrapping ErrBlockTooLarge, and the
// Reader never allocates more than about maxBlockSize bytes.
func NewReaderSize(r io.Reader, maxBlockSize int) (*Reader, error) {
	if maxBlockSize < 64 {
		maxBlockSize = 64
	}
	if maxBlockSize > 1<<31 {
		maxBlockSize = 1 << 31
	}
	bufSize := min(readBufferSize, maxBlockSize)
	if l, ok := r.(interface{ Len() int }); ok {
		// Input of known size, such as a bytes.Reader: no need for a
		// buffer much larger than it.
		bufSize = min(bufSize, max(l.Len(), minReadBuffer))
	}
	rd := &Reader{src: r, buf: make([]byte, bufSize), maxBlock: uint32(maxBlockSize)}
	if err := rd.checkStart(); err != nil {
		return nil, err
	}
	return rd, nil
}

// checkStart checks that the input starts with a section header block.
func (r *Reader) checkStart() error {
	head := r.peek(12)
	if len(head) == 0 {
		if r.srcErr == nil || r.srcErr == io.EOF {
			return &FormatError{Block: BlockSectionHeader, Msg: "empty input", Err: ErrNotPcapng}
		}
		return fmt.Errorf("pcapng: read: %w", r.srcErr)
	}
	if len(head) < 12 || binary.LittleEndian.Uint32(head) != uint32(BlockSectionHeader) {
		return &FormatError{Block: BlockSectionHeader, Msg: "no section header block at the start", Err: ErrNotPcapng}
	}
	if m := binary.LittleEndian.Uint32(head[8:]); m != byteOrderMagic && m != 0x4D3C2B1A {
		return &FormatError{Block: BlockSectionHeader, Msg: fmt.Sprintf("bad byte-order magic 0x%08x", m), Err: ErrNotPcapng}
	}
	return nil
}

// NewReaderBytes returns a Reader for a whole file held in memory, for
// example mapped with mmap: blocks are sliced out of data without copying,
// and data is never written to. The limit on one block is
// DefaultMaxBlockSize, as for NewReader.
func NewReaderBytes(data []byte) (*Reader, error) {
	rd := &Reader{buf: data, end: len(data), srcErr: io.EOF, maxBlock: DefaultMaxBlockSize}
	if err := rd.checkStart(); err != nil {
		return nil, err
	}
	return rd, nil
}

// Offset returns the byte offset in the input of the current block.
func (r *Reader) Offset() int64 { return r.offset }

// BlockType returns the type of the current block.
func (r *Reader) BlockType() BlockType { return r.typ }

// RawBody returns the current block's body: everything between its length
// field and its trailing length field, in the section's byte order.
func (r *Reader) RawBody() []byte { return r.body }

// Section returns the header of the current section.
func (r *Reader) Section() *Section { return &r.section }

// SectionIndex returns the number of the current section, from 0.
func (r *Reader) SectionIndex() int { return r.sectionIndex }

// Interfaces returns the interfaces described so far in the current
// section, indexed by interface id.
func (r *Reader) Interfaces() []Interface { return r.interfaces }

// Packet returns the current block's packet, or nil if the current block
// is not a packet block.
func (r *Reader) Packet() *Packet {
	if !r.typ.IsPacket() {
		return nil
	}
	return &r.packet
}

// InterfaceStatistics returns the current interface statistics block, or
// nil if the current block is not one.
func (r *Reader) InterfaceStatistics() *InterfaceStatistics {
	if r.typ != BlockInterfaceStatistics {
		return nil
	}
	return &r.stats
}

// NameResolution returns the current name resolution block, or nil if the
// current block is not one.
func (r *Reader) NameResolution() *NameResolution {
	if r.typ != BlockNameResolution {
		return nil
	}
	return &r.names
}

// DecryptionSecrets returns the current decryption secrets block, or nil if
// the current block is not one.
func (r *Reader) DecryptionSecrets() *DecryptionSecrets {
	if r.typ != BlockDecryptionSecrets {
		return nil
	}
	return &r.secrets
}

// CustomBlock returns the current custom block, or nil if the current block
// is not one.
func (r *Reader) CustomBlock() *CustomBlock {
	if r.typ != BlockCustom && r.typ != BlockCustomNoCopy {
		return nil
	}
	return &r.custom
}

// ReadPacket advances to the next packet block (enhanced, simple or
// obsolete packet block), handling the blocks before it, and returns it.
// It returns io.EOF at the end of the input.
func (r *Reader) ReadPacket() (*Packet, error) {
	if r.err != nil {
		return nil, r.err
	}
	// The common enhanced packet block first (fastpath.go), then the
	// general path for whatever the fast path leaves.
	if r.readEnhancedFast() {
		return &r.packet, nil
	}
	for {
		// next1 rather than Next: one call less per packet.
		t, err := r.next1()
		if err != nil {
			return nil, r.stick(err)
		}
		if t.IsPacket() {
			return &r.packet, nil
		}
	}
}

// Next reads the next block, checks it and decodes it, and returns its
// type. Blocks of unknown types are returned too (their body is available
// from RawBody). Next returns io.EOF at the end of the input, and a
// *FormatError for a malformed or truncated block; errors are sticky.
func (r *Reader) Next() (BlockType, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.readEnhancedFast() { // fastpath.go
		return BlockEnhancedPacket, nil
	}
	t, err := r.next1()
	if err != nil {
		return 0, r.stick(err)
	}
	return t, nil
}

// stick makes err the Reader's sticky error, leaving it on no block, and
// returns it.
func (r *Reader) stick(err error) error {
	r.err = err
	r.typ = 0
	r.body = nil
	return err
}

func (r *Reader) fail(msg string, args ...any) error {
	return &FormatError{Offset: r.offset, Block: r.typ, Msg: fmt.Sprintf(msg, args...)}
}

func (r *Reader) failErr(cause error, msg string, args ...any) error {
	return &FormatError{Offset: r.offset, Block: r.typ, Msg: fmt.Sprintf(msg, args...), Err: cause}
}

func (r *Reader) next1() (BlockType, error) {
	r.offset = r.next
	// Usually the whole block is buffered already: look at everything
	// that is, and read more only when the block needs it.
	head := r.buf[r.start:r.end]
	if len(head) < 12 {
		head = r.peek(12)
	}
	if len(head) == 0 {
		if r.srcErr == io.EOF {
			return 0, io.EOF
		}
		return 0, &FormatError{Offset: r.offset, Msg: "read block header", Err: r.srcErr}
	}
	if len(head) < 8 {
		r.typ = BlockType(r.e.u32(pad4(head)))
		return 0, r.failErr(ErrTruncated, "input ends after %d bytes of the block header", len(head))
	}
	r.typ = BlockType(r.e.u32(head))
	if r.typ == BlockSectionHeader {
		if len(head) < 12 {
			return 0, r.failErr(ErrTruncated, "input ends inside the section header")
		}
		switch binary.LittleEndian.Uint32(head[8:]) {
		case byteOrderMagic:
			r.e = endian{big: false}
		case 0x4D3C2B1A:
			r.e = endian{big: true}
		default:
			return 0, r.fail("bad byte-order magic 0x%08x", binary.LittleEndian.Uint32(head[8:]))
		}
	} else if !r.ready {
		return 0, r.failErr(ErrNotPcapng, "block before the first section header")
	}
	length := r.e.u32(head[4:])
	if length%4 != 0 {
		return 0, r.fail("block length %d is not a multiple of 4", length)
	}
	if length < minBlockSize {
		return 0, r.fail("block length %d is below the minimum of %d", length, minBlockSize)
	}
	if length > r.maxBlock {
		return 0, r.failErr(ErrBlockTooLarge, "block length %d exceeds the limit of %d", length, r.maxBlock)
	}
	var block []byte
	switch {
	case int(length) <= len(head):
		block = head[:length]
		r.start += int(length)
	case int(length) <= len(r.buf):
		block = r.peek(int(length))
		if len(block) < int(length) {
			if r.srcErr == io.EOF || r.srcErr == io.ErrUnexpectedEOF {
				return 0, r.failErr(ErrTruncated, "block length is %d but the input ends after %d bytes", length, len(block))
			}
			return 0, r.failErr(r.srcErr, "read block")
		}
		r.start += int(length)
	default:
		var err error
		block, err = r.readLarge(int(length))
		if err != nil {
			return 0, err
		}
	}
	r.next += int64(length)
	if trail := r.e.u32(block[length-4:]); trail != length {
		return 0, r.fail("trailing block length %d does not match the leading length %d", trail, length)
	}
	r.body = block[8 : length-4]
	var err error
	if r.typ == BlockEnhancedPacket {
		// The block nearly every file is made of, without the switch.
		err = r.decodeEnhancedPacket()
	} else {
		err = r.decode()
	}
	if err != nil {
		return 0, err
	}
	return r.typ, nil
}

// peek returns at least n unread bytes (fewer only at the end of the
// input or after a read error, recorded in r.srcErr) without consuming
// them. It may move the unread bytes to the front of the buffer, so slices
// returned earlier are no longer valid. n must not exceed the buffer.
func (r *Reader) peek(n int) []byte {
	if r.end-r.start >= n || r.src == nil {
		// Enough bytes, or all there will ever be (NewReaderBytes,
		// whose buffer must not be written to).
		return r.buf[r.start:r.end]
	}
	if r.start > 0 {
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	for r.end < n && r.srcErr == nil {
		k, err := r.src.Read(r.buf[r.end:])
		r.end += k
		if err != nil {
			r.srcErr = err
		} else if k == 0 {
			// A reader that returns nothing and no error: try again,
			// like io.ReadFull, but not forever.
			k, err = r.src.Read(r.buf[r.end:])
			r.end += k
			if k == 0 && err == nil {
				r.srcErr = io.ErrNoProgress
			} else if err != nil {
				r.srcErr = err
			}
		}
	}
	return r.buf[r.start:r.end]
}

// readLarge reads a block of n bytes that does not fit in the read
// buffer. Its own buffer grows with the bytes actually read, so a block
// that claims more than the input holds costs memory in proportion to the
// input, not to the claim.
func (r *Reader) readLarge(n int) ([]byte, error) {
	b := r.large[:0]
	// First what is buffered already.
	b = append(b, r.buf[r.start:r.end]...)
	r.start, r.end = 0, 0
	for len(b) < n {
		if len(b) == cap(b) {
			c := min(max(2*cap(b), len(r.buf)), n)
			nb := make([]byte, len(b), c)
			copy(nb, b)
			b = nb
		}
		var err error
		k := 0
		if r.srcErr == nil {
			k, err = io.ReadFull(r.src, b[len(b):min(cap(b), n)])
		} else {
			err = r.srcErr
		}
		b = b[:len(b)+k]
		if err != nil {
			r.large = b[:0]
			if r.srcErr == nil {
				r.srcErr = err
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil, r.failErr(ErrTruncated, "block length is %d but the input ends after %d bytes", n, len(b))
			}
			return nil, r.failErr(err, "read block")
		}
	}
	r.large = b
	return b, nil
}

// pad4 returns b padded with zeros to at least 4 bytes.
func pad4(b []byte) []byte {
	var p [4]byte
	copy(p[:], b)
	return p[:]
}

func (r *Reader) decode() error {
	switch r.typ {
	case BlockSectionHeader:
		return r.decodeSection()
	case BlockInterfaceDescription:
		return r.decodeInterface()
	case BlockEnhancedPacket:
		return r.decodeEnhancedPacket()
	case BlockSimplePacket:
		return r.decodeSimplePacket()
	case BlockPacket:
		return r.decodeObsoletePacket()
	case BlockInterfaceStatistics:
		return r.decodeStatistics()
	case BlockNameResolution:
		return r.decodeNameResolution()
	case BlockDecryptionSecrets:
		return r.decodeSecrets()
	case BlockCustom, BlockCustomNoCopy:
		if len(r.body) < 4 {
			return r.fail("body of %d bytes has no room for the enterprise number", len(r.body))
		}
		r.custom = CustomBlock{Type: r.typ, PEN: r.e.u32(r.body), Data: r.body[4:]}
	}
	return nil
}

// options walks the options in b (which starts at bodyOffset inside the
// block body), calling fn for each but the end-of-options marker.
// Structural problems (an option running past the block) are reported
// here; fn reports problems with a value's content.
func (r *Reader) options(b []byte, bodyOffset int, fn func(code uint16, val []byte) error) error {
	off := 0
	for off < len(b) {
		if len(b)-off < 4 {
			return r.fail("%d stray bytes at the end of the options at body offset %d", len(b)-off, bodyOffset+off)
		}
		code := r.e.u16(b[off:])
		n := int(r.e.u16(b[off+2:]))
		if code == OptEndOfOpt {
			return nil
		}
		start := off + 4
		end := start + n
		padded := start + (n+3)&^3
		if end > len(b) {
			return r.fail("option %d at body offset %d has length %d, which runs past the end of the block", code, bodyOffset+off, n)
		}
		if padded > len(b) {
			padded = len(b)
		}
		if err := fn(code, b[start:end]); err != nil {
			return err
		}
		off = padded
	}
	return nil
}

// customOption handles the custom options (string or binary, copied or
// not) that every block may carry: it appends the option to custom and
// reports whether code was one of them.
func (r *Reader) customOption(code uint16, val []byte, custom *[]CustomOption) (bool, error) {
	switch code {
	case OptCustomString, OptCustomBinary, OptCustomStringNoCopy, OptCustomBinaryNoCopy:
		if len(val) < 4 {
			return true, r.failErr(ErrInvalidOption, "custom option %d has length %d, too short for an enterprise number", code, len(val))
		}
		*custom = append(*custom, CustomOption{Code: code, PEN: r.e.u32(val), Data: val[4:]})
		return true, nil
	}
	return false, nil
}

func (r *Reader) wantLen(name string, val []byte, n int) error {
	if len(val) != n {
		return r.failErr(ErrInvalidOption, "option %s has length %d, want %d", name, len(val), n)
	}
	return nil
}

func (r *Reader) decodeSection() error {
	b := r.body
	if len(b) < 16 {
		return r.fail("body of %d bytes is shorter than a section header (16)", len(b))
	}
	major, minor := r.e.u16(b[4:]), r.e.u16(b[6:])
	if major != 1 {
		return r.failErr(ErrUnsupportedVersion, "version %d.%d", major, minor)
	}
	r.sectionIndex++
	if !r.ready {
		r.sectionIndex = 0
	}
	r.ready = true
	r.interfaces = r.interfaces[:0]
	s := Section{
		ByteOrder:    r.e.order(),
		MajorVersion: major,
		MinorVersion: minor,
		Length:       int64(r.e.u64(b[8:])),
	}
	err := r.options(b[16:], 16, func(code uint16, val []byte) error {
		switch code {
		case OptComment:
			s.Comments = append(s.Comments, string(val))
		case OptSHBHardware:
			s.Hardware = string(val)
		case OptSHBOS:
			s.OS = string(val)
		case OptSHBUserAppl:
			s.UserApplication = string(val)
		default:
			if ok, err := r.customOption(code, val, &s.Custom); ok {
				return err
			}
			s.Unknown = append(s.Unknown, RawOption{Code: code, Value: val})
		}
		return nil
	})
	if err != nil {
		return err
	}
	cloneOptions(s.Custom, s.Unknown)
	r.section = s
	return nil
}

// cloneOptions copies option data out of the read buffer, for blocks whose
// decoded form outlives the next read.
func cloneOptions(custom []CustomOption, unknown []RawOption) {
	for i := range custom {
		custom[i].Data = append([]byte(nil), custom[i].Data...)
	}
	for i := range unknown {
		unknown[i].Value = append([]byte(nil), unknown[i].Value...)
	}
}

func (r *Reader) decodeInterface() error {
	b := r.body
	if len(b) < 8 {
		return r.fail("body of %d bytes is shorter than an interface description (8)", len(b))
	}
	if len(r.interfaces) >= maxInterfacesCap {
		return r.fail("more than %d interfaces in one section", maxInterfacesCap)
	}
	ifc := Interface{LinkType: LinkType(r.e.u16(b)), SnapLen: r.e.u32(b[4:])}
	err := r.options(b[8:], 8, func(code uint16, val []byte) error {
		switch code {
		case OptComment:
			ifc.Comments = append(ifc.Comments, string(val))
		case OptIfName:
			ifc.Name = string(val)
		case OptIfDescription:
			ifc.Description = string(val)
		case OptIfIPv4Addr:
			if len(val) != 8 {
				ifc.Malformed = append(ifc.Malformed, RawOption{Code: code, Value: val})
				break
			}
			ifc.IPv4Addrs = append(ifc.IPv4Addrs, IPv4Address{
				Addr: netip.AddrFrom4([4]byte(val[:4])),
				Mask: netip.AddrFrom4([4]byte(val[4:8])),
			})
		case OptIfIPv6Addr:
			if len(val) != 17 {
				ifc.Malformed = append(ifc.Malformed, RawOption{Code: code, Value: val})
				break
			}
			if val[16] > 128 {
				ifc.Malformed = append(ifc.Malformed, RawOption{Code: code, Value: val})
				break
			}
			ifc.IPv6Addrs = append(ifc.IPv6Addrs, netip.PrefixFrom(netip.AddrFrom16([16]byte(val[:16])), int(val[16])))
		case OptIfMACAddr:
			if len(val) != 6 {
				ifc.Malformed = append(ifc.Malformed, RawOption{Code: code, Value: val})
				break
			}
			ifc.MAC = net.HardwareAddr(append([]byte(nil), val...))
		case OptIfEUIAddr:
			if len(val) != 8 {
				ifc.Malformed = append(ifc.Malformed, RawOption{Code: code, Value: val})
				break
			}
			ifc.EUI = net.HardwareAddr(append([]byte(nil), val...))
		case OptIfSpeed, OptIfTxSpeed, OptIfRxSpeed:
			if len(val) != 8 {
				ifc.Malformed = append(ifc.Malformed, RawOption{Code: code, Value: val})
				break
			}
			v := r.e.u64(val)
			switch code {
			case OptIfSpeed:
				ifc.Speed = v
			case OptIfTxSpeed:
				ifc.TxSpeed = v
			default:
				ifc.RxSpeed = v
			}
		case OptIfTsresol:
			if err := r.wantLen("if_tsresol", val, 1); err != nil {
				return err
			}
			ifc.TSResolution = resolutionFromByte(val[0])
		case OptIfTzone:
			if len(val) != 4 {
				ifc.Malformed = append(ifc.Malformed, RawOption{Code: code, Value: val})
				break
			}
			ifc.Tzone = int32(r.e.u32(val))
		case OptIfFilter:
			if len(val) < 1 {
				return r.failErr(ErrInvalidOption, "option if_filter is empty")
			}
			ifc.Filter = append([]byte(nil), val...)
		case OptIfOS:
			ifc.OS = string(val)
		case OptIfFCSLen:
			if err := r.wantLen("if_fcslen", val, 1); err != nil {
				return err
			}
			ifc.FCSLen, ifc.HasFCSLen = val[0], true
		case OptIfTsoffset:
			if err := r.wantLen("if_tsoffset", val, 8); err != nil {
				return err
			}
			ifc.TSOffset = int64(r.e.u64(val))
		case OptIfHardware:
			ifc.Hardware = string(val)
		case OptIfIANATzname:
			ifc.IANATzname = string(val)
		default:
			if ok, err := r.customOption(code, val, &ifc.Custom); ok {
				return err
			}
			ifc.Unknown = append(ifc.Unknown, RawOption{Code: code, Value: val})
		}
		return nil
	})
	if err != nil {
		return err
	}
	cloneOptions(ifc.Custom, ifc.Unknown)
	cloneOptions(nil, ifc.Malformed)
	r.interfaces = append(r.interfaces, ifc)
	return nil
}

func (r *Reader) iface(id uint32) (*Interface, error) {
	if uint64(id) >= uint64(len(r.interfaces)) {
		return nil, r.unknownInterface(id)
	}
	return &r.interfaces[id], nil
}

// unknownInterface is iface's error, built out of line so that iface is
// inlined into the packet decoders.
func (r *Reader) unknownInterface(id uint32) error {
	return r.failErr(ErrUnknownInterface, "interface id %d, but the section describes %d interfaces", id, len(r.interfaces))
}

func (r *Reader) decodeEnhancedPacket() error {
	b := r.body
	if len(b) < 20 {
		return r.fail("body of %d bytes is shorter than an enhanced packet header (20)", len(b))
	}
	p := &r.packet
	p.Type = BlockEnhancedPacket
	p.InterfaceID = r.e.u32(b)
	ifc, err := r.iface(p.InterfaceID)
	if err != nil {
		return err
	}
	p.Interface = ifc
	raw := uint64(r.e.u32(b[4:]))<<32 | uint64(r.e.u32(b[8:]))
	p.TimestampRaw = raw
	if res := ifc.TSResolution; res.Exp == 9 && !res.Base2 {
		// Nanoseconds, the resolution pathcap records at, without a
		// call.
		p.Timestamp = time.Unix(int64(raw/1e9)+ifc.TSOffset, int64(raw%1e9))
	} else {
		p.Timestamp = res.toTime(raw, ifc.TSOffset)
	}
	caplen := r.e.u32(b[12:])
	p.OriginalLength = r.e.u32(b[16:])
	if uint64(caplen) > uint64(len(b)-20) {
		return r.fail("captured length %d exceeds the %d bytes left in the block", caplen, len(b)-20)
	}
	p.Data = b[20 : 20+caplen]
	optStart := 20 + int((caplen+3)&^3)
	if optStart > len(b) {
		return r.fail("packet data padding runs past the end of the block")
	}
	return r.packetOptions(b[optStart:], optStart, &p.Options)
}

func (r *Reader) packetOptions(b []byte, bodyOffset int, o *PacketOptions) error {
	if len(b) == 0 && r.optionsSet == 0 && o == &r.packet.Options {
		// Nothing to decode, and nothing to clear from the previous
		// packet.
		return nil
	}
	o.Reset()
	if len(b) == 0 && o == &r.packet.Options {
		r.optionsSet = 0
	} else {
		r.optionsSet = optAll
	}
	// The loop is written out rather than going through r.options: this
	// is the hot path of every reader.
	off := 0
	for off < len(b) {
		if len(b)-off < 4 {
			return r.fail("%d stray bytes at the end of the options at body offset %d", len(b)-off, bodyOffset+off)
		}
		// The code and the length in one load.
		h := r.e.u32(b[off:])
		code, n := uint16(h), int(h>>16)
		if r.e.big {
			code, n = uint16(h>>16), int(h&0xffff)
		}
		if code == OptEndOfOpt {
			return nil
		}
		start := off + 4
		end := start + n
		if end > len(b) {
			return r.fail("option %d at body offset %d has length %d, which runs past the end of the block", code, bodyOffset+off, n)
		}
		val := b[start:end]
		switch code {
		case OptComment:
			o.Comments = append(o.Comments, val)
		case OptEPBFlags:
			if n != 4 {
				return r.failErr(ErrInvalidOption, "option epb_flags has length %d, want 4", n)
			}
			o.Flags, o.HasFlags = r.e.u32(val), true
		case OptEPBHash:
			if n < 1 {
				return r.failErr(ErrInvalidOption, "option epb_hash is empty")
			}
			o.Hashes = append(o.Hashes, val)
		case OptEPBDropCount:
			if n != 8 {
				return r.failErr(ErrInvalidOption, "option epb_dropcount has length %d, want 8", n)
			}
			o.DropCount, o.HasDropCount = r.e.u64(val), true
		case OptEPBPacketID:
			if n != 8 {
				return r.failErr(ErrInvalidOption, "option epb_packetid has length %d, want 8", n)
			}
			o.PacketID, o.HasPacketID = r.e.u64(val), true
		case OptEPBQueue:
			if n != 4 {
				return r.failErr(ErrInvalidOption, "option epb_queue has length %d, want 4", n)
			}
			o.Queue, o.HasQueue = r.e.u32(val), true
		case OptEPBVerdict:
			if n < 1 {
				return r.failErr(ErrInvalidOption, "option epb_verdict is empty")
			}
			if (val[0] == VerdictLinuxTC || val[0] == VerdictLinuxXDP) && n != 9 {
				return r.failErr(ErrInvalidOption, "option epb_verdict of type %d has length %d, want 9", val[0], n)
			}
			o.Verdicts = append(o.Verdicts, val)
		case OptEPBProcessIDThreadID:
			if n != 8 {
				return r.failErr(ErrInvalidOption, "option epb_processid_threadid has length %d, want 8", n)
			}
			o.ProcessID, o.ThreadID, o.HasProcessID = r.e.u32(val), r.e.u32(val[4:]), true
		default:
			if ok, err := r.customOption(code, val, &o.Custom); ok {
				if err != nil {
					return err
				}
			} else {
				o.Unknown = append(o.Unknown, RawOption{Code: code, Value: val})
			}
		}
		off = start + (n+3)&^3
	}
	return nil
}

func (r *Reader) decodeSimplePacket() error {
	b := r.body
	if len(b) < 4 {
		return r.fail("body of %d bytes is shorter than a simple packet header (4)", len(b))
	}
	ifc, err := r.iface(0)
	if err != nil {
		return err
	}
	p := &r.packet
	p.Type = BlockSimplePacket
	p.InterfaceID = 0
	p.Interface = ifc
	p.Timestamp = ifc.TSResolution.toTime(0, 0)
	p.TimestampRaw = 0
	p.OriginalLength = r.e.u32(b)
	caplen := uint64(len(b) - 4)
	if uint64(p.OriginalLength) < caplen {
		caplen = uint64(p.OriginalLength)
	}
	if ifc.SnapLen != 0 && uint64(ifc.SnapLen) < caplen {
		caplen = uint64(ifc.SnapLen)
	}
	p.Data = b[4 : 4+caplen]
	p.Options.Reset()
	r.optionsSet = 0
	return nil
}

func (r *Reader) decodeObsoletePacket() error {
	b := r.body
	if len(b) < 20 {
		return r.fail("body of %d bytes is shorter than a packet block header (20)", len(b))
	}
	p := &r.packet
	p.Type = BlockPacket
	p.InterfaceID = uint32(r.e.u16(b))
	ifc, err := r.iface(p.InterfaceID)
	if err != nil {
		return err
	}
	drops := r.e.u16(b[2:])
	p.Interface = ifc
	p.TimestampRaw = uint64(r.e.u32(b[4:]))<<32 | uint64(r.e.u32(b[8:]))
	p.Timestamp = ifc.TSResolution.toTime(p.TimestampRaw, ifc.TSOffset)
	caplen := r.e.u32(b[12:])
	p.OriginalLength = r.e.u32(b[16:])
	if uint64(caplen) > uint64(len(b)-20) {
		return r.fail("captured length %d exceeds the %d bytes left in the block", caplen, len(b)-20)
	}
	p.Data = b[20 : 20+caplen]
	optStart := 20 + int((caplen+3)&^3)
	if optStart > len(b) {
		return r.fail("packet data padding runs past the end of the block")
	}
	if err := r.packetOptions(b[optStart:], optStart, &p.Options); err != nil {
		return err
	}
	if drops != 0xFFFF {
		p.Options.DropCount, p.Options.HasDropCount = uint64(drops), true
		r.optionsSet |= optDropCount
	}
	return nil
}

func (r *Reader) decodeStatistics() error {
	b := r.body
	if len(b) < 12 {
		return r.fail("body of %d bytes is shorter than an interface statistics header (12)", len(b))
	}
	s := &r.stats
	*s = InterfaceStatistics{Comments: s.Comments[:0], Custom: s.Custom[:0], Unknown: s.Unknown[:0]}
	s.InterfaceID = r.e.u32(b)
	ifc, err := r.iface(s.InterfaceID)
	if err != nil {
		return err
	}
	ts := func(v []byte) uint64 { return uint64(r.e.u32(v))<<32 | uint64(r.e.u32(v[4:])) }
	s.TimestampRaw = ts(b[4:])
	s.Timestamp = ifc.TSResolution.toTime(s.TimestampRaw, ifc.TSOffset)
	return r.options(b[12:], 12, func(code uint16, val []byte) error {
		if code >= OptISBStartTime && code <= OptISBUsrDeliv {
			if err := r.wantLen(isbOptionName(code), val, 8); err != nil {
				return err
			}
		}
		switch code {
		case OptComment:
			s.Comments = append(s.Comments, val)
		case OptISBStartTime:
			s.StartTime, s.HasStartTime = ifc.TSResolution.toTime(ts(val), ifc.TSOffset), true
		case OptISBEndTime:
			s.EndTime, s.HasEndTime = ifc.TSResolution.toTime(ts(val), ifc.TSOffset), true
		case OptISBIfRecv:
			s.IfRecv, s.HasIfRecv = r.e.u64(val), true
		case OptISBIfDrop:
			s.IfDrop, s.HasIfDrop = r.e.u64(val), true
		case OptISBFilterAccept:
			s.FilterAccept, s.HasFilterAccept = r.e.u64(val), true
		case OptISBOSDrop:
			s.OSDrop, s.HasOSDrop = r.e.u64(val), true
		case OptISBUsrDeliv:
			s.UsrDeliv, s.HasUsrDeliv = r.e.u64(val), true
		default:
			if ok, err := r.customOption(code, val, &s.Custom); ok {
				return err
			}
			s.Unknown = append(s.Unknown, RawOption{Code: code, Value: val})
		}
		return nil
	})
}

func isbOptionName(code uint16) string {
	names := [...]string{"isb_starttime", "isb_endtime", "isb_ifrecv", "isb_ifdrop", "isb_filteraccept", "isb_osdrop", "isb_usrdeliv"}
	if code >= OptISBStartTime && code <= OptISBUsrDeliv {
		return names[code-OptISBStartTime]
	}
	return fmt.Sprintf("%d", code)
}

func (r *Reader) decodeNameResolution() error {
	b := r.body
	n := &r.names
	*n = NameResolution{Records: n.Records[:0], Comments: n.Comments[:0], Custom: n.Custom[:0], Unknown: n.Unknown[:0]}
	off := 0
	for {
		if len(b)-off < 4 {
			return r.fail("name resolution records at body offset %d end without an end record", off)
		}
		typ := NameRecordType(r.e.u16(b[off:]))
		size := int(r.e.u16(b[off+2:]))
		start := off + 4
		if typ == NameRecordEnd {
			off = start + (size+3)&^3
			if off > len(b) {
				return r.fail("end record at body offset %d runs past the end of the block", start-4)
			}
			break
		}
		if start+size > len(b) {
			return r.fail("name record at body offset %d has length %d, which runs past the end of the block", off, size)
		}
		val := b[start : start+size]
		rec := NameRecord{Type: typ}
		addrLen := 0
		switch typ {
		case NameRecordIPv4:
			addrLen = 4
		case NameRecordIPv6:
			addrLen = 16
		case NameRecordEUI48:
			addrLen = 6
		case NameRecordEUI64:
			addrLen = 8
		}
		if addrLen == 0 {
			rec.Value = append([]byte(nil), val...)
		} else {
			if size < addrLen {
				return r.fail("name record of type %d at body offset %d has length %d, too short for its address", typ, off, size)
			}
			rec.Addr = append([]byte(nil), val[:addrLen]...)
			rec.Names = splitNames(val[addrLen:])
		}
		n.Records = append(n.Records, rec)
		off = start + (size+3)&^3
		if off > len(b) {
			off = len(b)
		}
	}
	return r.options(b[off:], off, func(code uint16, val []byte) error {
		switch code {
		case OptComment:
			n.Comments = append(n.Comments, val)
		case OptNSDNSName:
			n.DNSName = string(val)
		case OptNSDNSIPv4Addr:
			if err := r.wantLen("ns_dnsIP4addr", val, 4); err != nil {
				return err
			}
			n.DNSIPv4Addr = netip.AddrFrom4([4]byte(val))
		case OptNSDNSIPv6Addr:
			if err := r.wantLen("ns_dnsIP6addr", val, 16); err != nil {
				return err
			}
			n.DNSIPv6Addr = netip.AddrFrom16([16]byte(val))
		default:
			if ok, err := r.customOption(code, val, &n.Custom); ok {
				return err
			}
			n.Unknown = append(n.Unknown, RawOption{Code: code, Value: val})
		}
		return nil
	})
}

// splitNames splits zero-terminated names.
func splitNames(b []byte) []string {
	var names []string
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i > 0 {
			names = append(names, string(b[:i]))
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return names
}

func (r *Reader) decodeSecrets() error {
	b := r.body
	if len(b) < 8 {
		return r.fail("body of %d bytes is shorter than a decryption secrets header (8)", len(b))
	}
	d := &r.secrets
	*d = DecryptionSecrets{Comments: d.Comments[:0], Custom: d.Custom[:0], Unknown: d.Unknown[:0]}
	d.SecretsType = r.e.u32(b)
	size := r.e.u32(b[4:])
	if uint64(size) > uint64(len(b)-8) {
		return r.fail("secrets length %d exceeds the %d bytes left in the block", size, len(b)-8)
	}
	d.Data = b[8 : 8+size]
	optStart := 8 + int((size+3)&^3)
	if optStart > len(b) {
		return r.fail("secrets padding runs past the end of the block")
	}
	return r.options(b[optStart:], optStart, func(code uint16, val []byte) error {
		if code == OptComment {
			d.Comments = append(d.Comments, val)
			return nil
		}
		if ok, err := r.customOption(code, val, &d.Custom); ok {
			return err
		}
		d.Unknown = append(d.Unknown, RawOption{Code: code, Value: val})
		return nil
	})
}
