package pcapng

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

var le = binary.LittleEndian

// Writer writes a little-endian pcap-ng file.
//
// Each block is built completely in memory first. An unbuffered Writer
// (NewWriter) hands every block to the underlying writer in one Write call;
// a buffered one (NewWriterSize) collects whole blocks and writes them when
// its buffer is full or Flush is called. Either way the output only ever
// ends between blocks, unless the underlying writer itself fails half way.
//
// Errors from the underlying writer are sticky. Invalid input (an option
// that is too long, an unknown interface, a packet above the snapshot
// length) is refused with an error and nothing is written; the Writer
// stays usable.
type Writer struct {
	w       io.Writer
	buf     []byte // whole blocks not yet written
	bufSize int    // write when buf reaches this size; 0 = after every block
	err     error
	ifaces  []writerInterface
	scratch []byte // the block being built
}

// blockRoom is the room a buffered Writer keeps after its buffer's
// bufSize bytes: a block starts in place at the end of the buffer when at
// least this much is left (one packet at the largest snap length record
// takes and its comments), else in a scratch buffer and is copied.
const blockRoom = 64 << 10

type writerInterface struct {
	snapLen uint32
	resol   Resolution
	offset  int64
}

// NewWriter returns an unbuffered Writer that has written the section
// header block for sec (which may be nil) to w.
func NewWriter(w io.Writer, sec *Section) (*Writer, error) {
	return NewWriterSize(w, sec, 0)
}

// NewWriterSize returns a Writer that collects whole blocks in a buffer of
// about bufSize bytes and writes them when it is full or when Flush is
// called. Call Flush before closing w.
func NewWriterSize(w io.Writer, sec *Section, bufSize int) (*Writer, error) {
	wr := &Writer{w: w, bufSize: bufSize}
	if err := wr.NewSection(sec); err != nil {
		return nil, err
	}
	return wr, nil
}

// BufferTaker is an io.Writer that can take a buffered Writer's buffer
// instead of a copy of it: TakeBuffer owns b from then on (b holds whole
// blocks) and returns an empty buffer, which the Writer fills next.
type BufferTaker interface {
	TakeBuffer(b []byte) ([]byte, error)
}

// Flush writes the buffered blocks. An underlying writer that is a
// BufferTaker takes the buffer itself.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	var err error
	if bt, ok := w.w.(BufferTaker); ok {
		var next []byte
		next, err = bt.TakeBuffer(w.buf)
		w.buf = next[:0]
	} else {
		_, err = w.w.Write(w.buf)
		w.buf = w.buf[:0]
	}
	if err != nil {
		w.err = fmt.Errorf("pcapng: write: %w", err)
	}
	return w.err
}

// Buffered returns the number of bytes in whole blocks not yet written.
func (w *Writer) Buffered() int { return len(w.buf) }

// begin starts a block of type t in the scratch buffer with room for the
// fixed part of its body.
func (w *Writer) begin(t BlockType) []byte {
	b := w.scratch[:0]
	if w.bufSize > 0 && cap(w.buf)-len(w.buf) >= blockRoom {
		// Built in place, at the end of the buffer: finish then only
		// extends it, instead of copying the block there.
		b = w.buf[len(w.buf):len(w.buf)]
	}
	b = le.AppendUint32(b, uint32(t))
	b = le.AppendUint32(b, 0) // length, filled in by finish
	return b
}

// finish completes the block in b (adding the end-of-options marker if
// options were added) and writes or buffers it.
func (w *Writer) finish(b []byte, hasOptions bool) error {
	if hasOptions {
		b = append(b, 0, 0, 0, 0)
	}
	n := len(b) + 4
	if n > math.MaxUint32 {
		return fmt.Errorf("pcapng: block of %d bytes is too large", n)
	}
	b = le.AppendUint32(b, uint32(n))
	le.PutUint32(b[4:], uint32(n))
	inPlace := w.bufSize > 0 && cap(w.buf)-len(w.buf) >= len(b) && &b[0] == &w.buf[len(w.buf):cap(w.buf)][0]
	if !inPlace {
		w.scratch = b
	}
	if w.err != nil {
		return w.err
	}
	if w.bufSize <= 0 {
		if _, err := w.w.Write(b); err != nil {
			w.err = fmt.Errorf("pcapng: write: %w", err)
		}
		return w.err
	}
	switch {
	case inPlace:
		w.buf = w.buf[:len(w.buf)+len(b)]
	case cap(w.buf) < w.bufSize+blockRoom:
		// Room for the buffer and a block built in place after it.
		buf := make([]byte, len(w.buf), w.bufSize+blockRoom)
		copy(buf, w.buf)
		w.buf = append(buf, b...)
	default:
		w.buf = append(w.buf, b...)
	}
	if len(w.buf) >= w.bufSize {
		return w.Flush()
	}
	return nil
}

// appendPadded appends data and zero padding to a multiple of 4 bytes.
func appendPadded(b, data []byte) []byte {
	b = append(b, data...)
	if r := len(data) & 3; r != 0 {
		b = append(b, make([]byte, 4-r)...)
	}
	return b
}

// opt appends one option. Values over 65535 bytes are refused.
func opt(b []byte, code uint16, val []byte) ([]byte, error) {
	if len(val) > math.MaxUint16 {
		return b, fmt.Errorf("pcapng: option %d of %d bytes: %w", code, len(val), ErrOptionTooLong)
	}
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, uint16(len(val)))
	return appendPadded(b, val), nil
}

func optString(b []byte, code uint16, s string) ([]byte, error) {
	if len(s) > math.MaxUint16 {
		return b, fmt.Errorf("pcapng: option %d of %d bytes: %w", code, len(s), ErrOptionTooLong)
	}
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, uint16(len(s)))
	b = append(b, s...)
	if r := len(s) & 3; r != 0 {
		b = append(b, make([]byte, 4-r)...)
	}
	return b, nil
}

func optU32(b []byte, code uint16, v uint32) []byte {
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, 4)
	return le.AppendUint32(b, v)
}

func optU64(b []byte, code uint16, v uint64) []byte {
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, 8)
	return le.AppendUint64(b, v)
}

// optCommon appends comments, custom and unknown options.
func optCommon(b []byte, comments []string, custom []CustomOption, unknown []RawOption) ([]byte, error) {
	var err error
	for _, c := range comments {
		if b, err = optString(b, OptComment, c); err != nil {
			return b, err
		}
	}
	return optCustomUnknown(b, custom, unknown)
}

func optCustomUnknown(b []byte, custom []CustomOption, unknown []RawOption) ([]byte, error) {
	var err error
	for _, c := range custom {
		if len(c.Data)+4 > math.MaxUint16 {
			return b, fmt.Errorf("pcapng: custom option %d of %d bytes: %w", c.Code, len(c.Data)+4, ErrOptionTooLong)
		}
		b = le.AppendUint16(b, c.Code)
		b = le.AppendUint16(b, uint16(len(c.Data)+4))
		b = le.AppendUint32(b, c.PEN)
		b = appendPadded(b, c.Data)
	}
	for _, u := range unknown {
		if u.Code == OptEndOfOpt {
			return b, fmt.Errorf("pcapng: option code 0 is the end-of-options marker: %w", ErrInvalidOption)
		}
		if b, err = opt(b, u.Code, u.Value); err != nil {
			return b, err
		}
	}
	return b, nil
}

func optByteComments(b []byte, comments [][]byte) ([]byte, error) {
	var err error
	for _, c := range comments {
		if b, err = opt(b, OptComment, c); err != nil {
			return b, err
		}
	}
	return b, nil
}

// NewSection writes a section header block for sec (which may be nil);
// the interfaces described before are forgotten.
func (w *Writer) NewSection(sec *Section) error {
	if sec == nil {
		sec = &Section{}
	}
	b := w.begin(BlockSectionHeader)
	b = le.AppendUint32(b, byteOrderMagic)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint64(b, math.MaxUint64) // section length not specified
	fixed := len(b)
	var err error
	if sec.Hardware != "" {
		if b, err = optString(b, OptSHBHardware, sec.Hardware); err != nil {
			return err
		}
	}
	if sec.OS != "" {
		if b, err = optString(b, OptSHBOS, sec.OS); err != nil {
			return err
		}
	}
	if sec.UserApplication != "" {
		if b, err = optString(b, OptSHBUserAppl, sec.UserApplication); err != nil {
			return err
		}
	}
	if b, err = optCommon(b, sec.Comments, sec.Custom, sec.Unknown); err != nil {
		return err
	}
	if err := w.finish(b, len(b) > fixed); err != nil {
		return err
	}
	w.ifaces = w.ifaces[:0]
	return nil
}

// AddInterface writes an interface description block and returns the
// interface's id in the current section.
func (w *Writer) AddInterface(ifc *Interface) (uint32, error) {
	if ifc.SnapLen > MaxCaptureLength {
		return 0, fmt.Errorf("pcapng: interface snapshot length %d: %w (maximum %d)", ifc.SnapLen, ErrPacketTooLarge, MaxCaptureLength)
	}
	// Check the resolution can express the present day.
	if _, err := ifc.TSResolution.fromTime(timeCheck, 0); err != nil {
		return 0, fmt.Errorf("pcapng: interface resolution %v: %w", ifc.TSResolution, err)
	}
	b := w.begin(BlockInterfaceDescription)
	b = le.AppendUint16(b, uint16(ifc.LinkType))
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, ifc.SnapLen)
	fixed := len(b)
	var err error
	for _, s := range []struct {
		code uint16
		val  string
	}{{OptIfName, ifc.Name}, {OptIfDescription, ifc.Description}, {OptIfOS, ifc.OS}, {OptIfHardware, ifc.Hardware}, {OptIfIANATzname, ifc.IANATzname}} {
		if s.val != "" {
			if b, err = optString(b, s.code, s.val); err != nil {
				return 0, err
			}
		}
	}
	for _, a := range ifc.IPv4Addrs {
		if !a.Addr.Is4() || !a.Mask.Is4() {
			return 0, fmt.Errorf("pcapng: if_IPv4addr %v/%v is not an IPv4 address and mask: %w", a.Addr, a.Mask, ErrInvalidOption)
		}
		v := append(a.Addr.AsSlice(), a.Mask.AsSlice()...)
		b, _ = opt(b, OptIfIPv4Addr, v)
	}
	for _, p := range ifc.IPv6Addrs {
		if !p.Addr().Is6() || p.Bits() < 0 {
			return 0, fmt.Errorf("pcapng: if_IPv6addr %v is not an IPv6 prefix: %w", p, ErrInvalidOption)
		}
		a := p.Addr().As16()
		b, _ = opt(b, OptIfIPv6Addr, append(a[:], byte(p.Bits())))
	}
	if ifc.MAC != nil {
		if len(ifc.MAC) != 6 {
			return 0, fmt.Errorf("pcapng: if_MACaddr %v is not 6 bytes: %w", ifc.MAC, ErrInvalidOption)
		}
		b, _ = opt(b, OptIfMACAddr, ifc.MAC)
	}
	if ifc.EUI != nil {
		if len(ifc.EUI) != 8 {
			return 0, fmt.Errorf("pcapng: if_EUIaddr %v is not 8 bytes: %w", ifc.EUI, ErrInvalidOption)
		}
		b, _ = opt(b, OptIfEUIAddr, ifc.EUI)
	}
	if ifc.Speed != 0 {
		b = optU64(b, OptIfSpeed, ifc.Speed)
	}
	if ifc.TxSpeed != 0 {
		b = optU64(b, OptIfTxSpeed, ifc.TxSpeed)
	}
	if ifc.RxSpeed != 0 {
		b = optU64(b, OptIfRxSpeed, ifc.RxSpeed)
	}
	if ifc.TSResolution.set {
		b, _ = opt(b, OptIfTsresol, []byte{ifc.TSResolution.Byte()})
	}
	if ifc.Tzone != 0 {
		b = optU32(b, OptIfTzone, uint32(ifc.Tzone))
	}
	if ifc.Filter != nil {
		if len(ifc.Filter) == 0 {
			return 0, fmt.Errorf("pcapng: if_filter needs a filter type byte: %w", ErrInvalidOption)
		}
		if b, err = opt(b, OptIfFilter, ifc.Filter); err != nil {
			return 0, err
		}
	}
	if ifc.HasFCSLen {
		b, _ = opt(b, OptIfFCSLen, []byte{ifc.FCSLen})
	}
	if ifc.TSOffset != 0 {
		b = optU64(b, OptIfTsoffset, uint64(ifc.TSOffset))
	}
	if b, err = optCommon(b, ifc.Comments, ifc.Custom, ifc.Unknown); err != nil {
		return 0, err
	}
	if err := w.finish(b, len(b) > fixed); err != nil {
		return 0, err
	}
	w.ifaces = append(w.ifaces, writerInterface{snapLen: ifc.SnapLen, resol: ifc.TSResolution, offset: ifc.TSOffset})
	return uint32(len(w.ifaces) - 1), nil
}

func (w *Writer) iface(id uint32) (*writerInterface, error) {
	if uint64(id) >= uint64(len(w.ifaces)) {
		return nil, fmt.Errorf("pcapng: interface %d (%d described): %w", id, len(w.ifaces), ErrUnknownInterface)
	}
	return &w.ifaces[id], nil
}

// WritePacket writes p as an enhanced packet block. p.Type and
// p.Interface are ignored; the timestamp is converted to the interface's
// resolution.
func (w *Writer) WritePacket(p *Packet) error {
	ifc, err := w.iface(p.InterfaceID)
	if err != nil {
		return err
	}
	caplen := len(p.Data)
	if caplen > MaxCaptureLength || (ifc.snapLen != 0 && uint64(caplen) > uint64(ifc.snapLen)) {
		return fmt.Errorf("pcapng: packet of %d bytes on interface %d (snapshot length %d): %w", caplen, p.InterfaceID, ifc.snapLen, ErrPacketTooLarge)
	}
	ts, err := ifc.resol.fromTime(p.Timestamp, ifc.offset)
	if err != nil {
		return fmt.Errorf("pcapng: packet timestamp: %w", err)
	}
	orig := p.OriginalLength
	if orig < uint32(caplen) {
		orig = uint32(caplen)
	}
	b := w.begin(BlockEnhancedPacket)
	b = le.AppendUint32(b, p.InterfaceID)
	b = le.AppendUint32(b, uint32(ts>>32))
	b = le.AppendUint32(b, uint32(ts))
	b = le.AppendUint32(b, uint32(caplen))
	b = le.AppendUint32(b, orig)
	b = appendPadded(b, p.Data)
	fixed := len(b)
	o := &p.Options
	if b, err = optByteComments(b, o.Comments); err != nil {
		return err
	}
	if o.HasFlags {
		b = optU32(b, OptEPBFlags, o.Flags)
	}
	for _, h := range o.Hashes {
		if len(h) == 0 {
			return fmt.Errorf("pcapng: epb_hash needs an algorithm byte: %w", ErrInvalidOption)
		}
		if b, err = opt(b, OptEPBHash, h); err != nil {
			return err
		}
	}
	if o.HasDropCount {
		b = optU64(b, OptEPBDropCount, o.DropCount)
	}
	if o.HasPacketID {
		b = optU64(b, OptEPBPacketID, o.PacketID)
	}
	if o.HasQueue {
		b = optU32(b, OptEPBQueue, o.Queue)
	}
	for _, v := range o.Verdicts {
		if len(v) == 0 || ((v[0] == VerdictLinuxTC || v[0] == VerdictLinuxXDP) && len(v) != 9) {
			return fmt.Errorf("pcapng: epb_verdict of %d bytes: want a type byte, and 8 bytes of data for tc and XDP verdicts: %w", len(v), ErrInvalidOption)
		}
		if b, err = opt(b, OptEPBVerdict, v); err != nil {
			return err
		}
	}
	if o.HasProcessID {
		b = le.AppendUint16(b, OptEPBProcessIDThreadID)
		b = le.AppendUint16(b, 8)
		b = le.AppendUint32(b, o.ProcessID)
		b = le.AppendUint32(b, o.ThreadID)
	}
	if b, err = optCustomUnknown(b, o.Custom, o.Unknown); err != nil {
		return err
	}
	return w.finish(b, len(b) > fixed)
}

// WriteSimplePacket writes p as a simple packet block on interface 0 (only
// its data and original length are written).
func (w *Writer) WriteSimplePacket(p *Packet) error {
	ifc, err := w.iface(0)
	if err != nil {
		return err
	}
	caplen := len(p.Data)
	if caplen > MaxCaptureLength || (ifc.snapLen != 0 && uint64(caplen) > uint64(ifc.snapLen)) {
		return fmt.Errorf("pcapng: packet of %d bytes on interface 0 (snapshot length %d): %w", caplen, ifc.snapLen, ErrPacketTooLarge)
	}
	orig := p.OriginalLength
	if orig < uint32(caplen) {
		orig = uint32(caplen)
	}
	if orig > uint32(caplen) && (ifc.snapLen == 0 || uint32(caplen) < ifc.snapLen) {
		// A reader derives the captured length from the snapshot
		// length: it would read padding as packet data.
		return fmt.Errorf("pcapng: simple packet block: %d of %d bytes captured is only valid when the snapshot length (%d) cut it", caplen, orig, ifc.snapLen)
	}
	b := w.begin(BlockSimplePacket)
	b = le.AppendUint32(b, orig)
	b = appendPadded(b, p.Data)
	return w.finish(b, false)
}

// WriteInterfaceStatistics writes an interface statistics block.
func (w *Writer) WriteInterfaceStatistics(s *InterfaceStatistics) error {
	ifc, err := w.iface(s.InterfaceID)
	if err != nil {
		return err
	}
	tsOpt := func(b []byte, code uint16, t uint64) []byte {
		b = le.AppendUint16(b, code)
		b = le.AppendUint16(b, 8)
		b = le.AppendUint32(b, uint32(t>>32))
		return le.AppendUint32(b, uint32(t))
	}
	ts, err := ifc.resol.fromTime(s.Timestamp, ifc.offset)
	if err != nil {
		return fmt.Errorf("pcapng: statistics timestamp: %w", err)
	}
	b := w.begin(BlockInterfaceStatistics)
	b = le.AppendUint32(b, s.InterfaceID)
	b = le.AppendUint32(b, uint32(ts>>32))
	b = le.AppendUint32(b, uint32(ts))
	fixed := len(b)
	if b, err = optByteComments(b, s.Comments); err != nil {
		return err
	}
	if s.HasStartTime {
		t, err := ifc.resol.fromTime(s.StartTime, ifc.offset)
		if err != nil {
			return fmt.Errorf("pcapng: isb_starttime: %w", err)
		}
		b = tsOpt(b, OptISBStartTime, t)
	}
	if s.HasEndTime {
		t, err := ifc.resol.fromTime(s.EndTime, ifc.offset)
		if err != nil {
			return fmt.Errorf("pcapng: isb_endtime: %w", err)
		}
		b = tsOpt(b, OptISBEndTime, t)
	}
	for _, c := range []struct {
		has  bool
		code uint16
		v    uint64
	}{
		{s.HasIfRecv, OptISBIfRecv, s.IfRecv},
		{s.HasIfDrop, OptISBIfDrop, s.IfDrop},
		{s.HasFilterAccept, OptISBFilterAccept, s.FilterAccept},
		{s.HasOSDrop, OptISBOSDrop, s.OSDrop},
		{s.HasUsrDeliv, OptISBUsrDeliv, s.UsrDeliv},
	} {
		if c.has {
			b = optU64(b, c.code, c.v)
		}
	}
	if b, err = optCustomUnknown(b, s.Custom, s.Unknown); err != nil {
		return err
	}
	return w.finish(b, len(b) > fixed)
}

// WriteNameResolution writes a name resolution block.
func (w *Writer) WriteNameResolution(n *NameResolution) error {
	b := w.begin(BlockNameResolution)
	for _, rec := range n.Records {
		var val []byte
		switch rec.Type {
		case NameRecordEnd:
			return fmt.Errorf("pcapng: name record type 0 is the end marker")
		case NameRecordIPv4, NameRecordIPv6, NameRecordEUI48, NameRecordEUI64:
			want := map[NameRecordType]int{NameRecordIPv4: 4, NameRecordIPv6: 16, NameRecordEUI48: 6, NameRecordEUI64: 8}[rec.Type]
			if len(rec.Addr) != want {
				return fmt.Errorf("pcapng: name record of type %d has a %d-byte address, want %d", rec.Type, len(rec.Addr), want)
			}
			val = append(val, rec.Addr...)
			for _, name := range rec.Names {
				val = append(append(val, name...), 0)
			}
		default:
			val = rec.Value
		}
		if len(val) > math.MaxUint16 {
			return fmt.Errorf("pcapng: name record of %d bytes: %w", len(val), ErrOptionTooLong)
		}
		b = le.AppendUint16(b, uint16(rec.Type))
		b = le.AppendUint16(b, uint16(len(val)))
		b = appendPadded(b, val)
	}
	b = append(b, 0, 0, 0, 0) // end of records
	fixed := len(b)
	var err error
	if b, err = optByteComments(b, n.Comments); err != nil {
		return err
	}
	if n.DNSName != "" {
		if b, err = optString(b, OptNSDNSName, n.DNSName); err != nil {
			return err
		}
	}
	if n.DNSIPv4Addr.Is4() {
		b, _ = opt(b, OptNSDNSIPv4Addr, n.DNSIPv4Addr.AsSlice())
	}
	if n.DNSIPv6Addr.Is6() {
		b, _ = opt(b, OptNSDNSIPv6Addr, n.DNSIPv6Addr.AsSlice())
	}
	if b, err = optCustomUnknown(b, n.Custom, n.Unknown); err != nil {
		return err
	}
	return w.finish(b, len(b) > fixed)
}

// WriteDecryptionSecrets writes a decryption secrets block.
func (w *Writer) WriteDecryptionSecrets(d *DecryptionSecrets) error {
	if uint64(len(d.Data)) > math.MaxUint32-64 {
		return fmt.Errorf("pcapng: decryption secrets of %d bytes are too large", len(d.Data))
	}
	b := w.begin(BlockDecryptionSecrets)
	b = le.AppendUint32(b, d.SecretsType)
	b = le.AppendUint32(b, uint32(len(d.Data)))
	b = appendPadded(b, d.Data)
	fixed := len(b)
	var err error
	if b, err = optByteComments(b, d.Comments); err != nil {
		return err
	}
	if b, err = optCustomUnknown(b, d.Custom, d.Unknown); err != nil {
		return err
	}
	return w.finish(b, len(b) > fixed)
}

// WriteCustomBlock writes a custom block. c.Type must be BlockCustom or
// BlockCustomNoCopy; c.Data is padded to a multiple of 4 bytes.
func (w *Writer) WriteCustomBlock(c *CustomBlock) error {
	if c.Type != BlockCustom && c.Type != BlockCustomNoCopy {
		return fmt.Errorf("pcapng: %v is not a custom block type", c.Type)
	}
	b := w.begin(c.Type)
	b = le.AppendUint32(b, c.PEN)
	b = appendPadded(b, c.Data)
	return w.finish(b, false)
}
